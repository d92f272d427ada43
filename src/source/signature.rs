//! Who signed a commit or a tag, against the keys a site trusts. SSH signatures (`git -c
//! gpg.format=ssh commit -S`, `git tag -s`) are verified in-process (ssh-key) against an
//! allowed-signers file as `git` reads it (`gpg.ssh.allowedSignersFile`, the format of
//! ssh-keygen(1)): principals, the options `namespaces`, `valid-after` and `valid-before`, a
//! key. Nothing runs `git` or `ssh-keygen`.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::{Repo, Resolved, SourceError};

/// The namespace Git signs commits and tags in.
const GIT_NAMESPACE: &str = "git";
const SSH_ARMOR: &[u8] = b"-----BEGIN SSH SIGNATURE-----";
const PGP_ARMOR: &[u8] = b"-----BEGIN PGP SIGNATURE-----";

/// What must be signed for a pack's commit to deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMode {
    /// The commit itself.
    Commit,
    /// The annotated tag the pack's ref names.
    Tag,
    /// Either.
    CommitOrTag,
}

impl SignatureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMode::Commit => "commit",
            SignatureMode::Tag => "tag",
            SignatureMode::CommitOrTag => "commit-or-tag",
        }
    }
}

/// The signatures a pack's source must carry, and whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturePolicy {
    pub mode: SignatureMode,
    pub signers: AllowedSigners,
}

/// The keys of an allowed-signers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSigners {
    pub path: PathBuf,
    signers: Vec<Signer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Signer {
    principals: String,
    key: PublicKey,
    /// `None`: every namespace.
    namespaces: Option<Vec<String>>,
    /// Unix seconds: the signed object's time must be at or after, before.
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// A line of an allowed-signers file that cannot be read: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignersLineError {
    pub line: usize,
    pub message: String,
}

impl AllowedSigners {
    /// Reads the allowed-signers file `text` (from `path`).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SignersLineError> {
        let mut signers = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| SignersLineError {
                line: number + 1,
                message,
            };
            signers.push(parse_signer(line).map_err(error)?);
        }
        Ok(Self {
            path: path.to_path_buf(),
            signers,
        })
    }

    /// Who of these signed `data` with `signature` (an armored signature) at `at` (unix
    /// seconds).
    fn verdict(&self, data: &[u8], signature: &[u8], at: i64) -> Verdict {
        if signature.starts_with(PGP_ARMOR) {
            return Verdict::NotSsh;
        }
        let signature = match SshSig::from_pem(signature) {
            Ok(signature) => signature,
            Err(err) => {
                return Verdict::Invalid(format!("an SSH signature that cannot be read: {err}"));
            }
        };
        let key = PublicKey::from(signature.public_key().clone());
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if signature.namespace() != GIT_NAMESPACE {
            return Verdict::Invalid(format!(
                "signed by {fingerprint} in the namespace `{}`, not `git`",
                signature.namespace()
            ));
        }
        let Some(signer) = self.signers.iter().find(|signer| {
            signer.key.key_data() == signature.public_key()
                && signer
                    .namespaces
                    .as_ref()
                    .is_none_or(|namespaces| namespaces.iter().any(|n| n == GIT_NAMESPACE))
        }) else {
            return Verdict::Untrusted(fingerprint);
        };
        if signer.valid_after.is_some_and(|after| at < after)
            || signer.valid_before.is_some_and(|before| at >= before)
        {
            return Verdict::Invalid(format!(
                "signed by {} ({fingerprint}) outside the key's `valid-after`/`valid-before`",
                signer.principals
            ));
        }
        match signer.key.verify(GIT_NAMESPACE, data, &signature) {
            Ok(()) => Verdict::Trusted(signer.principals.clone()),
            Err(err) => Verdict::Invalid(format!(
                "a signature by {} ({fingerprint}) that does not verify: {err}",
                signer.principals
            )),
        }
    }
}

/// One line: `principals [options] keytype base64 [comment]`.
fn parse_signer(line: &str) -> Result<Signer, String> {
    let tokens = tokens(line);
    let (principals, rest) = tokens
        .split_first()
        .ok_or_else(|| "no principals".to_string())?;
    let (options, key) = match rest.first() {
        Some(first) if !is_key_type(first) => (Some(first.as_str()), &rest[1..]),
        _ => (None, rest),
    };
    let key = PublicKey::from_openssh(&key.join(" "))
        .map_err(|err| format!("no SSH public key after the principals: {err}"))?;
    let mut signer = Signer {
        principals: principals.clone(),
        key,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    for option in options.map(split_options).unwrap_or_default() {
        let (name, value) = option
            .split_once('=')
            .map_or((option.as_str(), None), |(name, value)| {
                (name, Some(value.trim_matches('"')))
            });
        match (name.to_ascii_lowercase().as_str(), value) {
            ("namespaces", Some(value)) => {
                signer.namespaces = Some(value.split(',').map(str::to_string).collect());
            }
            ("valid-after", Some(value)) => signer.valid_after = Some(ssh_time(value)?),
            ("valid-before", Some(value)) => signer.valid_before = Some(ssh_time(value)?),
            ("cert-authority", None) => {
                return Err(
                    "`cert-authority` (SSH certificates) is not supported: list the \
                            signers' keys themselves"
                        .to_string(),
                );
            }
            _ => return Err(format!("unknown option `{option}`")),
        }
    }
    Ok(signer)
}

fn is_key_type(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

/// Whitespace-separated tokens; a double-quoted stretch stays in its token.
fn tokens(line: &str) -> Vec<String> {
    let mut tokens = split_outside_quotes(line, char::is_whitespace);
    tokens.retain(|token| !token.is_empty());
    tokens
}

/// Comma-separated options; a comma inside quotes stays in its option.
fn split_options(options: &str) -> Vec<String> {
    split_outside_quotes(options, |c| c == ',')
}

/// `text` split at each character `separates` says is one, but not between double quotes.
fn split_outside_quotes(text: &str, separates: impl Fn(char) -> bool) -> Vec<String> {
    let mut split = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if separates(c) && !quoted {
            split.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    split.push(current);
    split
}

/// `YYYYMMDD[HHMM[SS]][Z]` (local time without the `Z`; read as UTC here), in unix seconds.
fn ssh_time(value: &str) -> Result<i64, String> {
    let digits = value.trim_end_matches(['Z', 'z']);
    let padded = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_string(),
        _ => return Err(format!("`{value}` is not a time as `YYYYMMDD[HHMM[SS]]`")),
    };
    jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", &padded)
        .and_then(|time| jiff::tz::TimeZone::UTC.to_timestamp(time))
        .map(jiff::Timestamp::as_second)
        .map_err(|err| format!("`{value}` is not a time: {err}"))
}

/// What one signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// By a trusted key: its principals.
    Trusted(String),
    /// By a key the file does not list: its fingerprint.
    Untrusted(String),
    Unsigned,
    /// An `OpenPGP` signature.
    NotSsh,
    Invalid(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Trusted(principals) => write!(f, "signed by {principals}"),
            Verdict::Untrusted(fingerprint) => {
                write!(
                    f,
                    "signed by {fingerprint}, a key the allowed signers do not list"
                )
            }
            Verdict::Unsigned => f.write_str("unsigned"),
            Verdict::NotSsh => f.write_str(
                "signed with OpenPGP, and only SSH signatures are checked (sign with `git -c \
                 gpg.format=ssh`)",
            ),
            Verdict::Invalid(why) => f.write_str(why),
        }
    }
}

impl Repo {
    /// Refuses the commit of `resolved` unless it (or, as `policy` says, the annotated tag
    /// that named it) carries a good signature by one of `policy`'s signers.
    pub fn check_signed(
        &self,
        resolved: &Resolved,
        policy: &SignaturePolicy,
    ) -> Result<(), SourceError> {
        let commit = self.commit_verdict(&resolved.commit, &policy.signers)?;
        let tag = match &resolved.tag {
            Some(tag) => Some(self.tag_verdict(tag, &policy.signers)?),
            None => None,
        };
        let trusted = |verdict: Option<&Verdict>| matches!(verdict, Some(Verdict::Trusted(_)));
        let good = match policy.mode {
            SignatureMode::Commit => trusted(Some(&commit)),
            SignatureMode::Tag => trusted(tag.as_ref()),
            SignatureMode::CommitOrTag => trusted(Some(&commit)) || trusted(tag.as_ref()),
        };
        if good {
            return Ok(());
        }
        let mut found = format!(
            "commit {}: {commit}",
            crate::model::short_commit(&resolved.commit)
        );
        match &tag {
            Some(tag) => {
                let _ = write!(found, "; tag `{}`: {tag}", resolved.label);
            }
            None if policy.mode != SignatureMode::Commit => {
                let _ = write!(found, "; `{}` is not an annotated tag", resolved.label);
            }
            None => {}
        }
        Err(SourceError::NotSigned {
            repo: self.path().to_path_buf(),
            mode: policy.mode.as_str(),
            found,
            signers: policy.signers.path.clone(),
        })
    }

    fn commit_verdict(
        &self,
        commit: &str,
        signers: &AllowedSigners,
    ) -> Result<Verdict, SourceError> {
        let oid =
            git2::Oid::from_str(commit).map_err(|source| self.git_error("a commit", source))?;
        let at = self
            .git()
            .find_commit(oid)
            .map_err(|source| self.git_error("a commit", source))?
            .committer()
            .when()
            .seconds();
        match self.git().extract_signature(&oid, None) {
            Ok((signature, data)) => Ok(signers.verdict(&data, &signature, at)),
            Err(err) if err.code() == git2::ErrorCode::NotFound => Ok(Verdict::Unsigned),
            Err(source) => Err(self.git_error("the signature of a commit", source)),
        }
    }

    fn tag_verdict(&self, tag: &str, signers: &AllowedSigners) -> Result<Verdict, SourceError> {
        let oid = git2::Oid::from_str(tag).map_err(|source| self.git_error("a tag", source))?;
        let at = self
            .git()
            .find_tag(oid)
            .map_err(|source| self.git_error("a tag", source))?
            .tagger()
            .map_or(0, |tagger| tagger.when().seconds());
        let odb = self
            .git()
            .odb()
            .map_err(|source| self.git_error("the object database", source))?;
        let object = odb
            .read(oid)
            .map_err(|source| self.git_error("a tag", source))?;
        // A tag's signature is the end of its message; what it signs is all before it.
        let data = object.data();
        let start = [SSH_ARMOR, PGP_ARMOR]
            .iter()
            .filter_map(|armor| find(data, armor))
            .min();
        Ok(match start {
            Some(start) => signers.verdict(&data[..start], &data[start..], at),
            None => Verdict::Unsigned,
        })
    }
}

/// Where `needle` starts in `haystack`, at the start of a line.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .find(|(at, window)| *window == needle && (*at == 0 || haystack[at - 1] == b'\n'))
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfmbJ6o5j6cVcrjnPvdC8uUZ1pCtUwVz3Bp1XcKyq5C";

    #[test]
    fn allowed_signers_lines_read_as_ssh_keygen_reads_them() {
        let text = format!(
            "# the release managers\n\
             alice@example.com {KEY} alice\n\
             bob@example.com,carol@example.com namespaces=\"git,file\",valid-after=\"20240101\" {KEY}\n"
        );
        let signers = AllowedSigners::parse(Path::new("signers"), &text).unwrap();
        assert_eq!(signers.signers.len(), 2);
        assert_eq!(signers.signers[0].principals, "alice@example.com");
        assert_eq!(signers.signers[0].namespaces, None);
        assert_eq!(
            signers.signers[1].namespaces,
            Some(vec!["git".to_string(), "file".to_string()])
        );
        assert_eq!(signers.signers[1].valid_after, Some(1_704_067_200));

        for (line, why) in [
            ("alice@example.com", "no SSH public key"),
            (
                "alice@example.com ssh-ed25519 notbase64",
                "no SSH public key",
            ),
            (&format!("a@b cert-authority {KEY}"), "`cert-authority`"),
            (&format!("a@b frobnicate {KEY}"), "unknown option"),
            (&format!("a@b valid-before=\"2024\" {KEY}"), "not a time"),
        ] {
            let err =
                AllowedSigners::parse(Path::new("signers"), &format!("\n{line}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{line}");
            assert!(err.message.contains(why), "{line}: {}", err.message);
        }
    }
}
