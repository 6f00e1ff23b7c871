//! [`PersistentStore`]: the in-memory store, with completed uploads also saved to a directory.
//!
//! Reads are served from memory as always. A completed upload is checked against the memory
//! store's limits, written to a temporary file in its destination directory, flushed to disk,
//! renamed over the destination (atomic on POSIX file systems), and only then published in
//! memory; a failure at any step leaves the old file on disk and in memory. Names map onto
//! paths below the root one `/`-separated component at a time; a name with an empty, `.` or
//! `..` component, or a backslash, is refused, and so is a destination whose directory
//! resolves (through links) outside the root. This module does not load the directory at
//! startup; that is the caller's choice.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::{MemoryStore, MemoryUpload, Store, StoreError, Upload};

/// A [`MemoryStore`] whose completed uploads are also written into a directory.
#[derive(Debug, Clone)]
pub struct PersistentStore {
    /// Where files are served from.
    memory: MemoryStore,
    /// The directory uploads are saved in (canonical).
    root: PathBuf,
}

impl PersistentStore {
    /// Wraps `memory`, saving uploads under `root` (which must exist).
    pub fn new(memory: MemoryStore, root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            memory,
            root: root.canonicalize()?,
        })
    }

    /// The memory store behind it.
    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }
}

/// The path for `name` below `root`, if the name stays inside it.
fn path_below(root: &Path, name: &str) -> Result<PathBuf, StoreError> {
    let mut path = root.to_path_buf();
    for part in name.split('/') {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if !part.contains('\\') => path.push(c),
            _ => return Err(StoreError::InvalidName),
        }
    }
    Ok(path)
}

/// An upload reserved in memory and bound for a file under the root.
#[derive(Debug)]
pub struct PersistentUpload {
    /// The memory reservation (one writer per name).
    memory: MemoryUpload,
    /// The canonical root.
    root: PathBuf,
    /// The destination file.
    path: PathBuf,
}

#[async_trait]
impl Store for PersistentStore {
    type Upload = PersistentUpload;

    async fn read(&self, name: &str) -> Result<Bytes, StoreError> {
        self.memory.read(name).await
    }

    async fn begin_upload(
        &self,
        name: &str,
        overwrite: bool,
    ) -> Result<PersistentUpload, StoreError> {
        let path = path_below(&self.root, name)?;
        let memory = self.memory.begin_upload(name, overwrite).await?;
        Ok(PersistentUpload {
            memory,
            root: self.root.clone(),
            path,
        })
    }

    fn max_file_size(&self) -> u64 {
        self.memory.max_file_size()
    }
}

#[async_trait]
impl Upload for PersistentUpload {
    fn reserve(&mut self, len: u64) -> Result<(), StoreError> {
        self.memory.reserve(len)
    }

    async fn publish(self, contents: Bytes) -> Result<(), StoreError> {
        self.memory.check(contents.len() as u64)?;
        let (root, path, data) = (self.root.clone(), self.path.clone(), contents.clone());
        tokio::task::spawn_blocking(move || save_atomically(&root, &path, &data))
            .await
            .map_err(|e| StoreError::Io {
                disk_full: false,
                message: e.to_string(),
            })??;
        self.memory.publish(contents).await
    }
}

/// Distinguishes temporary files of concurrent uploads within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` through a temporary file and a rename.
fn save_atomically(root: &Path, path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let io_error = |e: std::io::Error| StoreError::Io {
        disk_full: e.kind() == std::io::ErrorKind::StorageFull,
        message: e.to_string(),
    };
    let dir = path.parent().ok_or(StoreError::InvalidName)?;
    create_dirs_inside(root, dir, io_error)?;
    let file_name = path.file_name().ok_or(StoreError::InvalidName)?;
    let temp = dir.join(format!(
        ".{}.memtftpd-{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(e));
    }
    Ok(())
}

/// Creates `dir` (below `root`) one component at a time. A link inside the root could point
/// anywhere, so each existing component is checked to resolve inside the root before anything
/// is created beneath it.
fn create_dirs_inside(
    root: &Path,
    dir: &Path,
    io_error: impl Fn(std::io::Error) -> StoreError,
) -> Result<(), StoreError> {
    let relative = dir
        .strip_prefix(root)
        .map_err(|_| StoreError::InvalidName)?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(_) => {
                if !current.canonicalize().map_err(&io_error)?.starts_with(root) {
                    return Err(StoreError::InvalidName);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&current) {
                    Ok(()) => {}
                    // Another upload made it meanwhile: fine, it is a real directory.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_error(e)),
                }
            }
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::StoreLimits;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("memtftpd-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_completed_upload_is_saved_and_served() {
        let dir = scratch("saved");
        let store = PersistentStore::new(MemoryStore::default(), &dir).unwrap();
        let upload = store.begin_upload("cfg/router1.conf", true).await.unwrap();
        upload
            .publish(Bytes::from_static(b"hostname r1"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.join("cfg/router1.conf")).unwrap(),
            b"hostname r1"
        );
        assert_eq!(store.read("cfg/router1.conf").await.unwrap(), "hostname r1");
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("cfg")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn names_that_would_leave_the_root_are_refused() {
        let dir = scratch("escape");
        let store = PersistentStore::new(MemoryStore::default(), &dir).unwrap();
        for name in [
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a/",
            "/etc/passwd",
        ] {
            assert_eq!(
                store.begin_upload(name, true).await.unwrap_err(),
                StoreError::InvalidName,
                "{name}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_out_of_the_root_is_not_followed_for_writing() {
        let outside = scratch("outside-target");
        let dir = scratch("link");
        std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
        let store = PersistentStore::new(MemoryStore::default(), &dir).unwrap();
        let upload = store.begin_upload("out/x", true).await.unwrap();
        let err = upload.publish(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(err, StoreError::InvalidName);
        assert!(!outside.join("x").exists());
        let upload = store.begin_upload("out/sub/x", true).await.unwrap();
        assert!(upload.publish(Bytes::from_static(b"x")).await.is_err());
        assert!(
            !outside.join("sub").exists(),
            "no directory made outside the root"
        );
        assert!(store.memory().get("out/x").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[tokio::test]
    async fn an_upload_over_the_limits_touches_neither_disk_nor_memory() {
        let dir = scratch("limits");
        let memory = MemoryStore::new(StoreLimits::default().with_max_file_size(2));
        let store = PersistentStore::new(memory, &dir).unwrap();
        let upload = store.begin_upload("big", true).await.unwrap();
        assert!(upload.publish(Bytes::from_static(b"123")).await.is_err());
        assert!(!dir.join("big").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
