//! Preloading a directory into the store at startup.
//!
//! Every regular file below the root becomes a file named by its path relative to the root,
//! with `/` between components. Symbolic links are followed only when they resolve to a
//! regular file inside the root; anything else (links out of the root, sockets, devices,
//! names that are not UTF-8 or break the name rules) is skipped with a warning. Nothing
//! outside the root is ever read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tftp_handler::{MemoryStore, names};
use tracing::warn;

/// What a preload did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) skipped: usize,
}

/// Loads every file under `root` into `store`.
pub(crate) fn load_dir(root: &Path, store: &MemoryStore) -> io::Result<Loaded> {
    let root = root.canonicalize()?;
    let mut loaded = Loaded::default();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            match classify(&root, &path) {
                Some(Kind::Dir(real)) => pending.push(real),
                Some(Kind::File(real)) => match name_for(&root, &path) {
                    Some(name) => {
                        let contents = fs::read(&real)?;
                        loaded.files += 1;
                        loaded.bytes += contents.len() as u64;
                        store.insert(name, Bytes::from(contents));
                    }
                    None => {
                        warn!(path = %path.display(), "skipped: name is not valid UTF-8 or breaks the name rules");
                        loaded.skipped += 1;
                    }
                },
                None => loaded.skipped += 1,
            }
        }
    }
    Ok(loaded)
}

enum Kind {
    Dir(PathBuf),
    File(PathBuf),
}

/// What `path` is, after following links, if it is a directory or regular file inside `root`.
fn classify(root: &Path, path: &Path) -> Option<Kind> {
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) => {
            warn!(path = %path.display(), "skipped: {e}");
            return None;
        }
    };
    if !real.starts_with(root) {
        warn!(path = %path.display(), target = %real.display(), "skipped: link leads outside the root");
        return None;
    }
    let meta = fs::metadata(&real).ok()?;
    if meta.is_dir() {
        // A link back to an ancestor would loop forever: only descend into real directories.
        if fs::symlink_metadata(path).ok()?.is_symlink() {
            warn!(path = %path.display(), "skipped: link to a directory");
            return None;
        }
        Some(Kind::Dir(real))
    } else if meta.is_file() {
        Some(Kind::File(real))
    } else {
        warn!(path = %path.display(), "skipped: not a regular file");
        None
    }
}

/// The store name for `path` (below `root`): its components joined by `/`.
fn name_for(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    let name = parts?.join("/");
    names::normalize(&name).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("memtftpd-preload-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn nested_files_are_named_by_relative_path() {
        let dir = scratch("nested");
        fs::create_dir_all(dir.join("pxelinux.cfg")).unwrap();
        fs::write(dir.join("pxelinux.0"), b"boot").unwrap();
        fs::write(dir.join("pxelinux.cfg/default"), b"menu").unwrap();
        let store = MemoryStore::default();
        let loaded = load_dir(&dir, &store).unwrap();
        assert_eq!(loaded.files, 2);
        assert_eq!(store.get("pxelinux.0").unwrap(), "boot");
        assert_eq!(store.get("pxelinux.cfg/default").unwrap(), "menu");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_root_are_skipped_and_links_inside_followed() {
        let outside = scratch("outside");
        fs::write(outside.join("secret"), b"no").unwrap();
        let dir = scratch("links");
        fs::write(dir.join("real"), b"yes").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("escape")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("alias")).unwrap();
        let store = MemoryStore::default();
        let loaded = load_dir(&dir, &store).unwrap();
        assert!(store.get("escape").is_none());
        assert_eq!(store.get("alias").unwrap(), "yes");
        assert_eq!(loaded.skipped, 1);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
