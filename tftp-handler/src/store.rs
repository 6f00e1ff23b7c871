//! Where files live: the [`Store`] trait and the in-memory [`MemoryStore`].
//!
//! A read takes the file's bytes as a cheap [`Bytes`] clone: every reader of a file shares one
//! buffer, and no transfer copies it. An upload first reserves its name ([`Store::begin_upload`]):
//! one writer per name, so a second upload of the same name is refused while the first runs.
//! The upload's contents are built privately by the transfer and handed over whole to
//! [`Upload::publish`], which replaces the file atomically; an upload dropped without
//! publishing (failed, timed out, cancelled) leaves the previous file, or no file, in place,
//! and frees the name. Readers during an upload keep seeing the previous complete version.
//!
//! The trait is async and small so that other backends (a directory, object storage) can
//! implement it; this module does not know about transfers or packets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use thiserror::Error;

use crate::packet::ErrorCode;

/// A place files are read from and uploaded to.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// An upload in progress; dropping it without [`Upload::publish`] abandons it.
    type Upload: Upload;

    /// The whole contents of `name`.
    async fn read(&self, name: &str) -> Result<Bytes, StoreError>;

    /// Reserves `name` for one upload. Fails if another upload of `name` is in progress, or if
    /// `name` exists and `overwrite` is false.
    async fn begin_upload(&self, name: &str, overwrite: bool) -> Result<Self::Upload, StoreError>;

    /// The largest file an upload may create, in bytes.
    fn max_file_size(&self) -> u64;
}

/// One reserved upload.
#[async_trait]
pub trait Upload: Send + 'static {
    /// The upload has grown to `len` bytes: count them against the store's limits now, so
    /// that an upload which cannot fit is stopped early instead of at its last block. Lengths
    /// only grow; what is reserved is released when the upload is published or dropped.
    fn reserve(&mut self, len: u64) -> Result<(), StoreError>;

    /// Replaces the file with `contents`, atomically, and frees the name.
    async fn publish(self, contents: Bytes) -> Result<(), StoreError>;
}

/// Why a store operation failed. Each maps onto a TFTP error code ([`StoreError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such file.
    #[error("file not found")]
    NotFound,
    /// The file exists and may not be replaced.
    #[error("file already exists")]
    AlreadyExists,
    /// Another upload of the same name is in progress.
    #[error("another upload of this file is in progress")]
    UploadInProgress,
    /// The file is larger than the per-file limit.
    #[error("file too large: the limit is {limit} bytes")]
    FileTooLarge {
        /// The per-file limit in bytes.
        limit: u64,
    },
    /// Publishing would take the store past its total size limit.
    #[error("store full: the limit is {limit} bytes in total")]
    StoreFull {
        /// The store's total limit in bytes.
        limit: u64,
    },
    /// The name cannot be stored by this backend (for a directory: it would leave it).
    #[error("invalid file name for this store")]
    InvalidName,
    /// The backend failed to write.
    #[error("cannot save the file: {message}")]
    Io {
        /// True when the device is full (reported as ERROR 3).
        disk_full: bool,
        /// What failed.
        message: String,
    },
}

impl StoreError {
    /// The TFTP error code to report (RFC 1350 section 5).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::FileNotFound,
            Self::AlreadyExists => ErrorCode::FileExists,
            Self::UploadInProgress | Self::InvalidName => ErrorCode::AccessViolation,
            Self::FileTooLarge { .. } | Self::StoreFull { .. } => ErrorCode::DiskFull,
            Self::Io {
                disk_full: true, ..
            } => ErrorCode::DiskFull,
            Self::Io { .. } => ErrorCode::NotDefined,
        }
    }
}

/// Size limits of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// The largest file an upload may create, in bytes.
    pub max_file_size: u64,
    /// The most bytes all files together may hold, counting uploads in progress; an upload
    /// that would pass it is refused.
    pub max_total_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_file_size: 1 << 30,
            max_total_bytes: 4 << 30,
        }
    }
}

impl StoreLimits {
    /// Sets [`max_file_size`](Self::max_file_size).
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Sets [`max_total_bytes`](Self::max_total_bytes).
    pub fn with_max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }
}

/// Files in memory, in a concurrent map. Cheap to clone: clones share the files.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// Shared with every clone and every [`MemoryUpload`].
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Published files.
    files: DashMap<String, Bytes>,
    /// Names with an upload in progress.
    uploading: DashMap<String, ()>,
    /// Sum of the lengths of `files`.
    total_bytes: AtomicU64,
    /// Bytes reserved by uploads in progress.
    in_flight_bytes: AtomicU64,
    /// Size limits.
    limits: StoreLimits,
}

impl MemoryStore {
    /// An empty store with `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                ..Inner::default()
            }),
        }
    }

    /// Adds or replaces a file directly (preloading). Limits are the operator's business
    /// here and are not checked; the bytes count towards the total.
    pub fn insert(&self, name: impl Into<String>, contents: Bytes) {
        self.inner.replace(name.into(), contents);
    }

    /// The contents of `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        // Clone the Bytes out so that no map guard outlives this call.
        self.inner.files.get(name).map(|file| file.value().clone())
    }

    /// Removes `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        match self.inner.files.remove(name) {
            Some((_, old)) => {
                self.inner
                    .total_bytes
                    .fetch_sub(old.len() as u64, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// How many files are stored.
    pub fn len(&self) -> usize {
        self.inner.files.len()
    }

    /// True when no file is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.files.is_empty()
    }

    /// Uploads in progress (each holds its name until it is published or abandoned).
    pub fn uploads_in_progress(&self) -> usize {
        self.inner.uploading.len()
    }

    /// Bytes held by all files.
    pub fn total_bytes(&self) -> u64 {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    /// The store's limits.
    pub fn limits(&self) -> StoreLimits {
        self.inner.limits
    }
}

impl Inner {
    /// Puts `contents` under `name` and keeps `total_bytes` in step.
    fn replace(&self, name: String, contents: Bytes) {
        let new_len = contents.len() as u64;
        let old_len = self
            .files
            .insert(name, contents)
            .map_or(0, |old| old.len() as u64);
        self.total_bytes.fetch_add(new_len, Ordering::Relaxed);
        self.total_bytes.fetch_sub(old_len, Ordering::Relaxed);
    }
}

#[async_trait]
impl Store for MemoryStore {
    type Upload = MemoryUpload;

    async fn read(&self, name: &str) -> Result<Bytes, StoreError> {
        self.get(name).ok_or(StoreError::NotFound)
    }

    async fn begin_upload(&self, name: &str, overwrite: bool) -> Result<MemoryUpload, StoreError> {
        if !overwrite && self.inner.files.contains_key(name) {
            return Err(StoreError::AlreadyExists);
        }
        match self.inner.uploading.entry(name.to_owned()) {
            Entry::Occupied(_) => Err(StoreError::UploadInProgress),
            Entry::Vacant(slot) => {
                slot.insert(());
                Ok(MemoryUpload {
                    inner: Arc::clone(&self.inner),
                    name: name.to_owned(),
                    overwrite,
                    reserved: 0,
                })
            }
        }
    }

    fn max_file_size(&self) -> u64 {
        self.inner.limits.max_file_size
    }
}

/// A reserved upload into a [`MemoryStore`]. Dropping it frees the name.
#[derive(Debug)]
pub struct MemoryUpload {
    /// The store it publishes into.
    inner: Arc<Inner>,
    /// The reserved name.
    name: String,
    /// Whether an existing file may be replaced.
    overwrite: bool,
    /// Bytes this upload holds in the store's in-flight count.
    reserved: u64,
}

impl MemoryUpload {
    /// Whether contents of `len` bytes could be published now (limits and overwrite policy).
    /// [`Upload::publish`] checks again; this lets a wrapper check before doing its own work.
    pub fn check(&self, len: u64) -> Result<(), StoreError> {
        let limits = self.inner.limits;
        if len > limits.max_file_size {
            return Err(StoreError::FileTooLarge {
                limit: limits.max_file_size,
            });
        }
        // The name is reserved, so no other upload can change this entry meanwhile; the
        // budget check is racy only against preloading and removal, which are operator acts.
        let old_len = match self.inner.files.get(&self.name) {
            Some(_) if !self.overwrite => return Err(StoreError::AlreadyExists),
            Some(old) => old.len() as u64,
            None => 0,
        };
        // Other uploads' reservations count; this upload's own becomes the file.
        let others_in_flight = self
            .inner
            .in_flight_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.reserved);
        let total_after = self
            .inner
            .total_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(old_len)
            + len
            + others_in_flight;
        if total_after > limits.max_total_bytes {
            return Err(StoreError::StoreFull {
                limit: limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// The reserved name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl Upload for MemoryUpload {
    fn reserve(&mut self, len: u64) -> Result<(), StoreError> {
        let limits = self.inner.limits;
        if len > limits.max_file_size {
            return Err(StoreError::FileTooLarge {
                limit: limits.max_file_size,
            });
        }
        let Some(more) = len.checked_sub(self.reserved).filter(|&more| more > 0) else {
            return Ok(());
        };
        let in_flight = self
            .inner
            .in_flight_bytes
            .fetch_add(more, Ordering::Relaxed)
            + more;
        if self.inner.total_bytes.load(Ordering::Relaxed) + in_flight > limits.max_total_bytes {
            self.inner
                .in_flight_bytes
                .fetch_sub(more, Ordering::Relaxed);
            return Err(StoreError::StoreFull {
                limit: limits.max_total_bytes,
            });
        }
        self.reserved = len;
        Ok(())
    }

    async fn publish(mut self, contents: Bytes) -> Result<(), StoreError> {
        self.check(contents.len() as u64)?;
        self.inner.replace(self.name.clone(), contents);
        // The reservation has become the file: give it back now, not at drop, so that a
        // publish racing with this one does not count these bytes twice.
        self.inner
            .in_flight_bytes
            .fetch_sub(std::mem::take(&mut self.reserved), Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for MemoryUpload {
    fn drop(&mut self) {
        self.inner
            .in_flight_bytes
            .fetch_sub(self.reserved, Ordering::Relaxed);
        self.inner.uploading.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn readers_share_the_stored_bytes() {
        let store = MemoryStore::default();
        store.insert("a", Bytes::from_static(b"hello"));
        let one = store.read("a").await.unwrap();
        let two = store.read("a").await.unwrap();
        assert_eq!(one.as_ptr(), two.as_ptr(), "no copy per reader");
    }

    #[tokio::test]
    async fn a_missing_file_is_not_found() {
        let store = MemoryStore::default();
        assert_eq!(store.read("nope").await, Err(StoreError::NotFound));
    }

    #[tokio::test]
    async fn a_published_upload_replaces_the_file() {
        let store = MemoryStore::default();
        store.insert("a", Bytes::from_static(b"v1"));
        let upload = store.begin_upload("a", true).await.unwrap();
        assert_eq!(
            store.read("a").await.unwrap(),
            "v1",
            "readers see v1 during the upload"
        );
        upload.publish(Bytes::from_static(b"v2!")).await.unwrap();
        assert_eq!(store.read("a").await.unwrap(), "v2!");
        assert_eq!(store.total_bytes(), 3);
    }

    #[tokio::test]
    async fn an_abandoned_upload_leaves_the_old_file_and_frees_the_name() {
        let store = MemoryStore::default();
        store.insert("a", Bytes::from_static(b"v1"));
        drop(store.begin_upload("a", true).await.unwrap());
        assert_eq!(store.read("a").await.unwrap(), "v1");
        assert!(
            store.begin_upload("a", true).await.is_ok(),
            "name is free again"
        );
    }

    #[tokio::test]
    async fn a_second_upload_of_the_same_name_is_refused() {
        let store = MemoryStore::default();
        let _first = store.begin_upload("a", true).await.unwrap();
        assert_eq!(
            store.begin_upload("a", true).await.unwrap_err(),
            StoreError::UploadInProgress
        );
        assert!(store.begin_upload("b", true).await.is_ok());
    }

    #[tokio::test]
    async fn without_overwrite_an_existing_file_is_refused() {
        let store = MemoryStore::default();
        store.insert("a", Bytes::from_static(b"v1"));
        assert_eq!(
            store.begin_upload("a", false).await.unwrap_err(),
            StoreError::AlreadyExists
        );
    }

    #[tokio::test]
    async fn an_upload_past_the_file_size_limit_is_not_published() {
        let store = MemoryStore::new(StoreLimits::default().with_max_file_size(4));
        let upload = store.begin_upload("a", true).await.unwrap();
        let err = upload
            .publish(Bytes::from_static(b"12345"))
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::FileTooLarge { limit: 4 });
        assert_eq!(err.code(), ErrorCode::DiskFull);
        assert!(store.get("a").is_none());
    }

    #[tokio::test]
    async fn uploads_in_progress_count_against_the_total_budget() {
        let store = MemoryStore::new(StoreLimits::default().with_max_total_bytes(10));
        store.insert("a", Bytes::from_static(b"1234"));
        let mut first = store.begin_upload("b", true).await.unwrap();
        first.reserve(4).unwrap();
        let mut second = store.begin_upload("c", true).await.unwrap();
        assert_eq!(second.reserve(3), Err(StoreError::StoreFull { limit: 10 }));
        second.reserve(2).unwrap();
        drop(first);
        second.reserve(6).unwrap();
        second.publish(Bytes::from_static(b"123456")).await.unwrap();
        assert_eq!(store.total_bytes(), 10);
        assert_eq!(store.inner.in_flight_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn reserving_past_the_file_size_limit_fails() {
        let store = MemoryStore::new(StoreLimits::default().with_max_file_size(4));
        let mut upload = store.begin_upload("a", true).await.unwrap();
        assert_eq!(
            upload.reserve(5),
            Err(StoreError::FileTooLarge { limit: 4 })
        );
    }

    #[tokio::test]
    async fn an_upload_past_the_total_budget_is_not_published() {
        let store = MemoryStore::new(StoreLimits::default().with_max_total_bytes(6));
        store.insert("a", Bytes::from_static(b"1234"));
        let upload = store.begin_upload("b", true).await.unwrap();
        let err = upload
            .publish(Bytes::from_static(b"123"))
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::StoreFull { limit: 6 });
        // Replacing a file counts only the difference.
        let upload = store.begin_upload("a", true).await.unwrap();
        upload.publish(Bytes::from_static(b"123456")).await.unwrap();
        assert_eq!(store.total_bytes(), 6);
    }
}
