//! Remotes: shared stores of cache entries (a directory, WebDAV, S3). The executor only sees
//! this trait; implementations verify everything they download before the cache admits it.

use crate::cache::record::Record;
use crate::cache::Cache;
use crate::hash::ContentHash;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

pub trait Remote: Send + Sync {
    /// How the remote is named in messages (its URL).
    fn describe(&self) -> String;
    /// Downloads the entry for `key` into `cache` after verifying it. `Ok(false)` if the remote
    /// does not have it.
    fn fetch(&self, key: &ContentHash, cache: &Cache) -> Result<bool, RemoteError>;
    /// Uploads a record and its blobs, blobs first.
    fn push(&self, record: &Record, cache: &Cache) -> Result<(), RemoteError>;
}
