//! WebDAV and S3 remotes through object_store. Its API is async; each store owns a small
//! current-thread tokio runtime and blocks on it, so the rest of tpipe stays synchronous (rayon
//! threads may call in side by side: tokio hands the runtime's driver between them).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use super::store::{Listed, RemoteStore, StoreError};
use super::{ConfigProblem, RemoteSettings};

/// How long to wait for a connection: a dead host fails the run's first lookup quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a transfer may stall without receiving a byte; large blobs may take longer in all.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ObjectStoreRemote {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_read_timeout(READ_TIMEOUT)
        .with_timeout_disabled()
        .with_pool_idle_timeout(Duration::from_secs(30))
}

/// A couple of quick retries for a blip; not minutes of them against a server that is down.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ConfigProblem> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(ConfigProblem::Runtime)
}

impl ObjectStoreRemote {
    /// A WebDAV server: GET, PUT (the server writes a temporary file and renames it), DELETE,
    /// and PROPFIND for listing.
    pub fn webdav(url: &str) -> Result<ObjectStoreRemote, ConfigProblem> {
        // object_store's HTTP store names listed objects by their whole path on the server, so
        // it is rooted at the server and the URL's path becomes a prefix that listing strips.
        let after_scheme = url
            .find("://")
            .map(|at| at + 3)
            .ok_or_else(|| ConfigProblem::NotAUrl(url.to_string()))?;
        let (server, folder) = match url[after_scheme..].find('/') {
            Some(slash) => url.split_at(after_scheme + slash),
            None => (url, ""),
        };
        let store = HttpBuilder::new()
            .with_url(server)
            .with_client_options(client_options().with_allow_http(true))
            .with_retry(retry_config())
            .build()
            .map_err(ConfigProblem::Client)?;
        let folder = folder.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if folder.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, folder))
        };
        Ok(ObjectStoreRemote {
            store,
            runtime: runtime()?,
        })
    }

    /// An S3-compatible bucket; endpoint, region and credentials come from `AWS_*` settings.
    pub fn s3(
        bucket: &str,
        prefix: &str,
        settings: &RemoteSettings,
    ) -> Result<ObjectStoreRemote, ConfigProblem> {
        // Without credentials object_store would ask the EC2 metadata service, which off EC2
        // hangs until it times out. Only go there when the environment says so.
        let has = |name: &str| {
            settings
                .aws
                .iter()
                .any(|(key, value)| key == name && !value.is_empty())
        };
        let credentials_named = has("AWS_ACCESS_KEY_ID")
            || has("AWS_SKIP_SIGNATURE")
            || has("AWS_METADATA_ENDPOINT")
            || has("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            || has("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            || has("AWS_WEB_IDENTITY_TOKEN_FILE");
        if !credentials_named {
            return Err(ConfigProblem::NoS3Credentials);
        }
        let mut builder = AmazonS3Builder::new()
            .with_client_options(client_options())
            .with_retry(retry_config());
        for (name, value) in &settings.aws {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(ConfigProblem::Client)?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(ObjectStoreRemote {
            store,
            runtime: runtime()?,
        })
    }

    fn list_into(&self, prefix: ObjectPath, listed: &mut Vec<Listed>) -> Result<(), StoreError> {
        let result = match self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(classify(error)),
        };
        for object in result.objects {
            listed.push(Listed {
                path: object.location.to_string(),
                size: object.size,
                modified: Some(SystemTime::from(object.last_modified)),
            });
        }
        for folder in result.common_prefixes {
            self.list_into(folder, listed)?;
        }
        Ok(())
    }
}

/// Connection failures and timeouts mean the remote is out of reach, 401 and 403 that it will
/// not have us; anything else (404 aside, a 500) is a failure of this one request.
fn classify(error: object_store::Error) -> StoreError {
    match &error {
        object_store::Error::PermissionDenied { path, .. } => {
            return StoreError::Refused(format!("permission denied (HTTP 403) for `{path}`"));
        }
        object_store::Error::Unauthenticated { path, .. } => {
            return StoreError::Refused(format!("not authenticated (HTTP 401) for `{path}`"));
        }
        _ => {}
    }
    use object_store::client::{HttpError, HttpErrorKind};
    let mut unreachable = false;
    let mut deepest = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            unreachable |= matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            );
        }
        deepest = current.to_string();
        source = current.source();
    }
    if unreachable {
        // The innermost cause ("Connection refused", "operation timed out") says it best.
        StoreError::Unreachable(deepest)
    } else {
        StoreError::Failed(error.to_string())
    }
}

impl RemoteStore for ObjectStoreRemote {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let location = ObjectPath::from(path);
        let result = self.runtime.block_on(async {
            let response = self.store.get(&location).await?;
            response.bytes().await
        });
        match result {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(classify(error)),
        }
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        match self
            .runtime
            .block_on(self.store.head(&ObjectPath::from(path)))
        {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(classify(error)),
        }
    }

    fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.runtime
            .block_on(
                self.store
                    .put(&ObjectPath::from(path), PutPayload::from(bytes)),
            )
            .map(|_| ())
            .map_err(classify)
    }

    fn list(&self, folder: &str) -> Result<Vec<Listed>, StoreError> {
        let mut listed = Vec::new();
        self.list_into(ObjectPath::from(folder), &mut listed)?;
        Ok(listed)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        match self
            .runtime
            .block_on(self.store.delete(&ObjectPath::from(path)))
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(classify(error)),
        }
    }
}
