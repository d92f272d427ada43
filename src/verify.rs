//! `packsync verify`: every live release checked against what it was built from. Its pack
//! tree is hashed as Git hashes a tree and compared with the Git tree id it records (and, when
//! they differ, file by file with that tree in the pack's repo); its virtualenv is verified
//! again as after its build, every file hashed (not trusting the completion record), and
//! checked for files no distribution installed.
//!
//! The result is recorded (`state_dir/verify.json`, see [`crate::store::Verification`]):
//! `status` shows a tampered pack as `drifted`, and the next `apply` moves the tampered release
//! aside and builds it again from Git.

use std::collections::BTreeSet;

use crate::config::SiteConfig;
use crate::diagnostics::{Diagnose, Report};
use crate::model::{InstalledPack, PackName};
use crate::source::{FileChanges, Repo, hash_dir};
use crate::state::{StateError, StateStore};
use crate::store::{self, Layout, PackVerification, Verification};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("Cannot read what is live")]
    State(#[from] StateError),
    #[error("Cannot record the verification in `{}`", path.display())]
    Record {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for VerifyError {
    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            VerifyError::State(err) => Some(err),
            VerifyError::Record { .. } => None,
        }
    }
}

/// Checks the live release of every pack (of `only`, when given), records the result as the
/// last verification, and returns it.
pub fn verify(
    config: &SiteConfig,
    store: &dyn StateStore,
    only: Option<&BTreeSet<PackName>>,
) -> Result<Verification, VerifyError> {
    let layout = Layout::new(config);
    let records = store.load()?;
    let observed = crate::state::read_installed(&layout, &records, std::iter::empty())?;
    let at = crate::model::now();
    let packs = observed
        .installed
        .packs
        .values()
        .filter(|live| only.is_none_or(|only| only.contains(&live.name)))
        .map(|live| verify_pack(config, &layout, live))
        .collect();
    let verification = Verification { at, packs };
    store::record_verification(&layout.state_dir, &verification).map_err(|source| {
        VerifyError::Record {
            path: layout.state_dir.clone(),
            source,
        }
    })?;
    Ok(verification)
}

fn verify_pack(config: &SiteConfig, layout: &Layout, live: &InstalledPack) -> PackVerification {
    let release = crate::model::ReleaseId::of(&live.revision);
    let mut found = PackVerification {
        pack: live.name.clone(),
        release: release.clone(),
        tampered: false,
        files: FileChanges::default(),
        env: Vec::new(),
        error: None,
    };
    let paths = layout.release(&live.name, &release);
    match hash_dir(&paths.pack) {
        Ok(disk) if live.revision.tree.as_str() == format!("git:{}", disk.tree) => {}
        Ok(disk) => match git_files(config, live) {
            Ok(git) => found.files = FileChanges::between(&git, &disk.files),
            Err(why) => {
                found.tampered = true;
                found.error = Some(format!(
                    "its pack tree is not the Git tree {} it was exported from; which files \
                     differ is unknown: {why}",
                    live.revision.tree
                ));
            }
        },
        Err(err) => found.error = Some(format!("cannot read `{}`: {err}", paths.pack.display())),
    }
    let inputs = match &live.env_inputs {
        Some(inputs) => Ok(inputs.clone()),
        None => store::read_manifest(&paths.dir)
            .map(|manifest| manifest.env_inputs)
            .map_err(|err| Report::new(&err).one_line()),
    };
    match inputs {
        Ok(inputs) => found.env = crate::env::audit(&layout.env(&live.revision.env), &inputs),
        Err(why) => found.error = Some(format!("cannot read what its env was built from: {why}")),
    }
    found.tampered |= !found.files.is_empty() || !found.env.is_empty();
    found
}

/// The files Git has for the live release's pack tree, from the pack's repo in the site
/// config.
fn git_files(
    config: &SiteConfig,
    live: &InstalledPack,
) -> Result<std::collections::BTreeMap<std::path::PathBuf, crate::source::FileId>, String> {
    let pack = config
        .packs
        .iter()
        .find(|pack| pack.name == live.name)
        .ok_or("the pack is no longer in the site config")?;
    let repo = Repo::open(&pack.repo).map_err(|err| Report::new(&err).one_line())?;
    repo.pack_tree(&live.revision.commit, pack.subdir.as_deref())
        .and_then(|tree| tree.files())
        .map_err(|err| Report::new(&err).one_line())
}
