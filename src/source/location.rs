//! Where a pack's repo lives: the site config's `source` string made into a local path.

use std::path::{Component, Path, PathBuf};

use super::SourceError;

/// Turns the site config's `source` into the path of a local repo.
///
/// Accepts a `file://` URL, an absolute path, or a path relative to `base_dir` (the site
/// config's folder). Refuses remote URLs (`https://`, `ssh://`, `git://`, `git@host:repo`):
/// packsync works offline from repos cloned onto the host.
pub fn local_path(source: &str, base_dir: &Path) -> Result<PathBuf, SourceError> {
    let trimmed = source.trim();
    if trimmed.is_empty() {
        return Err(SourceError::EmptySource);
    }
    if has_scheme(trimmed, "file") {
        return file_url_path(trimmed);
    }
    if is_remote(trimmed) {
        return Err(SourceError::Remote {
            given: source.to_owned(),
        });
    }
    let path = Path::new(trimmed);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    // `./clush` reads better in messages as `<base>/clush` than `<base>/./clush`.
    let relative: PathBuf = path
        .components()
        .filter(|component| *component != Component::CurDir)
        .collect();
    Ok(base_dir.join(relative))
}

/// Whether `source` starts with `scheme:` (case-insensitive, as URL schemes are).
fn has_scheme(source: &str, scheme: &str) -> bool {
    source
        .get(..=scheme.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(&format!("{scheme}:")))
}

/// Whether Git would fetch `source` over a network: any `scheme://` URL, or the scp-like
/// `[user@]host:path`, which Git recognises by a colon with no slash before it.
fn is_remote(source: &str) -> bool {
    if source.contains("://") {
        return true;
    }
    source
        .find(':')
        .is_some_and(|colon| !source[..colon].contains('/'))
}

fn file_url_path(source: &str) -> Result<PathBuf, SourceError> {
    let not_local = || SourceError::FileUrl {
        given: source.to_owned(),
    };
    let url = url::Url::parse(source).map_err(|_| not_local())?;
    // `to_file_path` accepts only an empty host or `localhost`, which is what makes the URL local.
    url.to_file_path().map_err(|()| not_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(source: &str) -> Result<PathBuf, SourceError> {
        local_path(source, Path::new("/etc/packsync"))
    }

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(
            local("file:///srv/git/clush").unwrap(),
            Path::new("/srv/git/clush")
        );
        assert_eq!(
            local("FILE://localhost/srv/git/my%20pack").unwrap(),
            Path::new("/srv/git/my pack")
        );
    }

    #[test]
    fn file_urls_with_a_host_are_refused() {
        // Two slashes make `srv` the host: a common slip for `file:///srv/...`.
        assert!(matches!(
            local("file://srv/git/clush"),
            Err(SourceError::FileUrl { given }) if given == "file://srv/git/clush"
        ));
    }

    #[test]
    fn relative_paths_start_at_the_base_dir() {
        assert_eq!(
            local("./git/clush").unwrap(),
            Path::new("/etc/packsync/git/clush")
        );
        assert_eq!(
            local("../git/clush").unwrap(),
            Path::new("/etc/packsync/../git/clush")
        );
        assert_eq!(
            local(" /srv/git/clush ").unwrap(),
            Path::new("/srv/git/clush")
        );
    }

    #[test]
    fn paths_with_a_colon_after_a_slash_are_local() {
        assert_eq!(local("/srv/git/a:b").unwrap(), Path::new("/srv/git/a:b"));
        assert_eq!(local("./a:b").unwrap(), Path::new("/etc/packsync/a:b"));
    }

    #[test]
    fn remote_urls_are_refused() {
        for source in [
            "https://github.com/StackStorm-Exchange/stackstorm-clush",
            "http://git.example.com/clush.git",
            "ssh://git@git.example.com/clush.git",
            "git://git.example.com/clush.git",
            "git+ssh://git.example.com/clush.git",
            "git@github.com:StackStorm-Exchange/stackstorm-clush.git",
            "gitserver:clush.git",
        ] {
            assert!(
                matches!(local(source), Err(SourceError::Remote { given }) if given == source),
                "{source} should be refused"
            );
        }
    }

    #[test]
    fn empty_sources_are_refused() {
        assert!(matches!(local("  "), Err(SourceError::EmptySource)));
    }
}
