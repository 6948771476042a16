//! Remotes: shared stores of cache entries (a directory, WebDAV, S3) that teammates point at.
//!
//! The executor only sees the [`Remote`] trait. Its one implementation, [`StoreRemote`], lays
//! entries out like the cache (`blobs/ab/<hash>`, `records/<key>.json`) on a [`RemoteStore`]:
//! a directory written with std, or object_store's WebDAV and S3 clients (the `remote` feature).
//!
//! Contract:
//! - A fetched entry is admitted into the cache only after its record parses, names the key asked
//!   for and has a content digest that matches its outputs, its output names are plain file
//!   names, and every blob has the size the record says and hashes to its name. Blobs go into
//!   the cache first, the record last.
//! - An upload writes blobs first and the record last, each one atomically, so nobody sees a
//!   record whose blobs are missing or half-written. Two teammates pushing the same node leave
//!   one whole entry (the last rename or PUT wins).
//! - During a run a remote failure is a warning and the node builds locally; after the first
//!   failure to reach a remote, the run stops asking it.
//! - A read-only remote is never written; nothing is ever deleted from a remote except by
//!   `tpipe cache gc --remote` after a dry run.

pub mod access;
pub mod config;
pub mod credentials;
mod directory;
mod entry;
pub use entry::EntryProblem;
pub mod gc;
pub mod location;
#[cfg(feature = "remote")]
mod object;
mod store;
mod store_remote;
pub mod transfer;
pub mod verify;

use std::path::PathBuf;

use crate::cache::{Cache, CacheError};
use crate::hash::ContentHash;
use crate::record::Record;

pub use config::{RemoteChoice, RemoteSettings, RemoteSpec};
pub use location::RemoteLocation;
pub use store::{Listed, RemoteStore, StoreError};
pub use store_remote::{FetchOutcome, PushOutcome, StoreRemote};

/// Why a remote could not be used. Every message names the remote.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote `{remote}` cannot be used: {reason}")]
    Config {
        remote: String,
        /// Boxed: a large problem would make every `Result` of a remote as large.
        reason: Box<ConfigProblem>,
    },
    #[error("cannot reach remote `{remote}`: {cause}")]
    Unreachable { remote: String, cause: String },
    #[error("remote `{remote}` refused access: {cause} (hint: check the credentials and the server's permissions)")]
    Refused { remote: String, cause: String },
    /// Uploads failed in a way that the next ones will too (a server that cannot store what
    /// it is sent): said once, then the run stops pushing to it.
    #[error(
        "stopped pushing to remote `{remote}` for the rest of this run: {cause} (hint: {hint})"
    )]
    StoppedPushing {
        remote: String,
        cause: String,
        hint: &'static str,
    },
    /// An upload not tried because pushing stopped earlier in this run (said once already).
    #[error("not pushed to remote `{remote}`: pushing stopped earlier in this run")]
    NotPushing { remote: String },
    #[error("remote `{remote}`: cannot {action} `{path}`: {cause}")]
    Transfer {
        remote: String,
        action: &'static str,
        path: String,
        cause: String,
    },
    #[error("remote `{remote}`: entry {key} is refused: {reason}")]
    Invalid {
        remote: String,
        key: String,
        reason: EntryProblem,
    },
    #[error("remote `{remote}` is read-only (hint: drop `remote_read_only` / `--remote-read-only` to write to it)")]
    ReadOnly { remote: String },
    #[error("remote `{remote}`: local cache: {source}")]
    Cache { remote: String, source: CacheError },
    #[error("remote `{remote}` failed earlier in this run; not asking it again")]
    GaveUp { remote: String },
}

/// Why a remote cannot be set up (before anything is sent to it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("cannot read the config file: {0}")]
    ReadFile(std::io::Error),
    #[error("the config file is not valid TOML: {}", .0.to_string().trim_end())]
    Toml(toml::de::Error),
    #[error("{problem} (named by {origin})")]
    Location {
        problem: location::LocationProblem,
        origin: String,
    },
    #[error("this tpipe was built without the `remote` feature, which http(s):// and s3:// remotes need (hint: rebuild with `--features remote`, or share a folder instead)")]
    NotCompiledIn,
    #[error("`{0}` is not a URL")]
    NotAUrl(String),
    #[error("no S3 credentials (hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_SKIP_SIGNATURE=true for a public bucket, or AWS_METADATA_ENDPOINT to use an instance role)")]
    NoS3Credentials,
    /// The network client refused the settings.
    #[cfg(feature = "remote")]
    #[error("{0}")]
    Client(object_store::Error),
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    #[error("`{key}` names a personal secret and belongs in ~/.config/tpipe/config.toml, not in `{}`, which the project shares", file.display())]
    PersonalSetting { key: &'static str, file: PathBuf },
    #[error("`{setting}` (from {origin}): {source}")]
    Key {
        setting: &'static str,
        origin: String,
        source: crate::signature::KeyError,
    },
    #[error("`require_signatures = true` (from {origin}) but no `trusted_keys` are set (hint: add the public keys you trust, as `tpipe key generate` prints them)")]
    NoTrustedKeys { origin: String },
    #[error(transparent)]
    PrivateFile(crate::private_file::PrivateFileError),
    #[error("the {what} `{}` (named by {origin}) does not exist", path.display())]
    MissingFile {
        what: &'static str,
        path: PathBuf,
        origin: String,
    },
    #[error(transparent)]
    Credentials(credentials::CredentialsError),
    #[error(
        "refusing to send credentials ({what}) over plain http:// to `{host}` (hint: use https://)"
    )]
    CredentialsOverHttp { what: String, host: String },
    #[error("cannot read the {what} `{}` (named by {origin}): {cause}", path.display())]
    Certificate {
        what: &'static str,
        path: PathBuf,
        origin: String,
        cause: String,
    },
    #[error("`client_certificate` and `client_key` go together (only {0} is set)")]
    HalfClientIdentity(&'static str),
    #[error("the credentials from {origin} hold characters an HTTP header cannot carry (hint: a token or password of printable ASCII)")]
    UnsendableCredentials { origin: String },
    #[error("cannot set up HTTPS with these certificates: {0}")]
    HttpClient(String),
}

impl RemoteError {
    /// The message without the object it concerns, so that failures of many entries for one
    /// reason read as one line.
    pub fn without_path(&self) -> String {
        match self {
            RemoteError::Transfer {
                remote,
                action,
                cause,
                ..
            } => format!("remote `{remote}`: cannot {action}: {cause}"),
            RemoteError::Invalid { remote, reason, .. } => {
                format!("remote `{remote}`: refused: {reason}")
            }
            other => other.to_string(),
        }
    }

    /// Whether the whole remote is out of use (down, or refusing us), as opposed to one entry
    /// being bad: the rest of a run stops asking it, and a push or pull stops.
    pub fn is_remote_wide(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. }
                | RemoteError::Refused { .. }
                | RemoteError::GaveUp { .. }
        )
    }
}

pub trait Remote: Send + Sync {
    /// How the remote is named in messages (its URL).
    fn describe(&self) -> String;
    /// Downloads the entry for `key` into `cache` after verifying it. `Ok(false)` if the remote
    /// does not have it.
    fn fetch(&self, key: &ContentHash, cache: &Cache) -> Result<bool, RemoteError>;
    /// The record for `key` alone, checked (it names `key`, its digest matches its outputs),
    /// with nothing downloaded into a cache: what a run needs of a node whose artifacts stay on
    /// the remote.
    fn fetch_record(&self, key: &ContentHash) -> Result<Option<Record>, RemoteError>;
    /// Uploads a record and its blobs, blobs first.
    fn push(&self, record: &Record, cache: &Cache) -> Result<(), RemoteError>;
    /// Variables that let a process of the same user elsewhere (a cluster job) reach this
    /// remote as this one does and apply the same trust rule: they go into the job's
    /// environment, never into its script.
    fn job_environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Fetches from `remote` every upstream entry whose blobs `action` reads and `cache` lacks, so
/// a build on a machine that has only the action can read its inputs. Returns a line for each
/// input it fetched or could not fetch, for the caller to show.
pub fn fetch_missing_inputs(
    action: &crate::action::Action,
    cache: &Cache,
    remote: &dyn Remote,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (slot, inputs) in &action.inputs {
        for (index, input) in inputs.iter().enumerate() {
            let complete = input
                .outputs
                .values()
                .all(|reference| cache.blob_is_intact(reference).unwrap_or(false));
            if complete {
                continue;
            }
            let Some(upstream) = action.upstream(slot, index) else {
                continue;
            };
            match remote.fetch(&upstream.key, cache) {
                Ok(true) => lines.push(format!(
                    "fetched input `{}` from {}",
                    upstream.node,
                    remote.describe()
                )),
                Ok(false) => lines.push(format!(
                    "warning: input `{}` is neither here nor on {}",
                    upstream.node,
                    remote.describe()
                )),
                Err(error) => lines.push(format!("warning: input `{}`: {error}", upstream.node)),
            }
        }
    }
    lines
}
