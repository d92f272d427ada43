//! The sha256 cache of mirror files, so that a re-scan reads no file that did not change.
//!
//! A file counts as unchanged while its name, size and modification time (in nanoseconds) are
//! what they were when it was hashed, the rule of Git's index and of make. The cache is only a
//! cache: a missing, unreadable or unwritable one costs time, never correctness of the scan.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What the cache file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// The mirror folder the entries describe: entries of another folder are not trusted.
    mirror: PathBuf,
    files: BTreeMap<String, CachedHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedHash {
    size: u64,
    mtime_ns: u64,
    sha256: String,
}

/// The cache as loaded, and the entries of the files seen by this scan.
#[derive(Debug)]
pub(super) struct HashCache {
    path: Option<PathBuf>,
    mirror: PathBuf,
    loaded: BTreeMap<String, CachedHash>,
    seen: BTreeMap<String, CachedHash>,
}

impl HashCache {
    /// Reads the cache at `path`; a missing or unreadable cache is an empty one.
    pub(super) fn load(path: Option<&Path>, mirror: &Path) -> Self {
        let loaded = path
            .and_then(|path| read_cache(path, mirror))
            .unwrap_or_default();
        Self {
            path: path.map(Path::to_path_buf),
            mirror: mirror.to_path_buf(),
            loaded,
            seen: BTreeMap::new(),
        }
    }

    /// The hex sha256 of the mirror file `file_name` at `path`, read from the cache while the
    /// file's size and mtime are those it was hashed with.
    pub(super) fn sha256(
        &mut self,
        file_name: &str,
        path: &Path,
        metadata: &Metadata,
    ) -> io::Result<String> {
        let mtime = mtime_ns(metadata);
        if let (Some(mtime), Some(cached)) = (mtime, self.loaded.get(file_name))
            && cached.size == metadata.len()
            && cached.mtime_ns == mtime
        {
            self.seen.insert(file_name.to_string(), cached.clone());
            return Ok(cached.sha256.clone());
        }
        let (sha256, after) = hash_file(path)?;
        // A file still being written (copied into the mirror during the scan) changes under
        // the hasher: its hash is right for no version of the file, so it is not remembered.
        let unchanged = after.len() == metadata.len() && mtime_ns(&after) == mtime;
        match mtime {
            Some(mtime_ns) if unchanged => {
                self.seen.insert(
                    file_name.to_string(),
                    CachedHash {
                        size: metadata.len(),
                        mtime_ns,
                        sha256: sha256.clone(),
                    },
                );
            }
            _ => tracing::debug!(path = %path.display(), "not caching the hash of this file"),
        }
        Ok(sha256)
    }

    /// Writes the cache when this scan changed it (a file was hashed, or one left the mirror).
    /// A cache that cannot be written is logged and otherwise ignored.
    pub(super) fn save(self) {
        let Some(path) = &self.path else { return };
        if self.seen == self.loaded {
            return;
        }
        let cache = CacheFile {
            mirror: self.mirror,
            files: self.seen,
        };
        let json = serde_json::to_vec(&cache).expect("the hash cache serialises to JSON");
        match crate::fsx::write_atomic(path, &json) {
            Ok(()) => {
                let files = cache.files.len();
                tracing::debug!(path = %path.display(), files, "mirror hash cache written");
            }
            // An unprivileged `check` against a root-owned state dir, or a state dir that does not
            // exist yet: expected, so not worth a warning.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::PermissionDenied
                        | io::ErrorKind::ReadOnlyFilesystem
                        | io::ErrorKind::NotFound
                ) =>
            {
                tracing::debug!(%error, "mirror hash cache not written");
            }
            Err(error) => tracing::warn!(%error, "mirror hash cache not written"),
        }
    }
}

/// The entries of the cache at `path` when it describes `mirror`.
fn read_cache(path: &Path, mirror: &Path) -> Option<BTreeMap<String, CachedHash>> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::debug!(%error, "mirror hash cache not read");
            return None;
        }
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(cache) if cache.mirror == mirror => Some(cache.files),
        Ok(cache) => {
            tracing::debug!(cached = %cache.mirror.display(), "mirror hash cache is of another folder");
            None
        }
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "mirror hash cache is not valid");
            None
        }
    }
}

/// The hex sha256 of the file at `path`.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    hash_file(path).map(|(sha256, _)| sha256)
}

/// Nanoseconds since the Unix epoch, when the platform has them and the file is not older.
fn mtime_ns(metadata: &Metadata) -> Option<u64> {
    let since_epoch = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_nanos()).ok()
}

/// The hex sha256 of the file at `path`, read in chunks (mirror files can be large), and the
/// file's metadata once it is read.
fn hash_file(path: &Path) -> io::Result<(String, Metadata)> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let metadata = file.metadata()?;
    Ok((crate::model::hex(&hasher.finalize()), metadata))
}
