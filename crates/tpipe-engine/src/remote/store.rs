//! The bytes-level interface a remote is stored on. Paths are `/`-separated and relative to
//! the remote's root (`records/<key>.json`, `blobs/ab/<hash>`).

use std::time::SystemTime;

/// One object found by [`RemoteStore::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The remote cannot be reached at all (refused, timed out, a folder that is not there).
    #[error("{0}")]
    Unreachable(String),
    /// The remote answers but will not let us in (401, 403).
    #[error("{0}")]
    Refused(String),
    /// The server answered this request with an error status (a 5xx, 405, 409, 507, …);
    /// `message` is one short line (status, method, path), never the response's body.
    #[error("{message}")]
    Server { status: u16, message: String },
    /// This request failed (a disk error, a response that does not parse).
    #[error("{0}")]
    Failed(String),
}

/// A place that holds named objects. Implementations make [`put`](RemoteStore::put) atomic:
/// a reader sees the old object, no object, or the whole new one.
pub trait RemoteStore: Send + Sync {
    /// The object's bytes; `None` when there is no such object.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The object's size; `None` when there is no such object.
    fn size(&self, path: &str) -> Result<Option<u64>, StoreError>;
    fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Every object under `folder`, at any depth.
    fn list(&self, folder: &str) -> Result<Vec<Listed>, StoreError>;
    /// Removes an object; removing one that is not there is not an error.
    fn delete(&self, path: &str) -> Result<(), StoreError>;
    /// Called before uploading: a store that can be created on first use (a new folder) is.
    fn prepare_for_upload(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
