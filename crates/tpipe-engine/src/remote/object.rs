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

use super::access::AccessSettings;
use super::credentials::Found;
use super::store::{Listed, RemoteStore, StoreError};
use super::{ConfigProblem, RemoteSettings};

/// How long to wait for a connection: a dead host fails the run's first lookup quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a transfer may stall without receiving a byte; large blobs may take longer in all.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ObjectStoreRemote {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    /// Said after a 401: what tpipe sent, or where it looked for credentials.
    authentication_note: String,
}

/// object_store's HTTP store with a client built here: object_store's options have no client
/// certificate, and the credentials go in as a default header marked sensitive.
#[derive(Debug)]
struct Connector(reqwest::Client);

impl object_store::client::HttpConnector for Connector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<object_store::client::HttpClient> {
        Ok(object_store::client::HttpClient::new(self.0.clone()))
    }
}

fn read_named_file(
    setting: &super::access::Named<std::path::PathBuf>,
    what: &'static str,
) -> Result<Vec<u8>, ConfigProblem> {
    std::fs::read(&setting.value).map_err(|error| ConfigProblem::Certificate {
        what,
        path: setting.value.clone(),
        origin: setting.origin.clone(),
        cause: error.to_string(),
    })
}

/// The certificates of every CA bundle the settings name (`ca_bundle`, `SSL_CERT_FILE`), parsed
/// by the client that takes them: reqwest's for WebDAV, object_store's for S3.
fn lab_certificates<Certificate, Error: std::fmt::Display>(
    access: &AccessSettings,
    parse: impl Fn(&[u8]) -> Result<Vec<Certificate>, Error>,
) -> Result<Vec<Certificate>, ConfigProblem> {
    let mut certificates = Vec::new();
    for bundle in &access.ca_bundles {
        let bytes = read_named_file(bundle, "CA bundle")?;
        certificates.extend(parse(&bytes).map_err(|error| ConfigProblem::Certificate {
            what: "CA bundle",
            path: bundle.value.clone(),
            origin: bundle.origin.clone(),
            cause: error.to_string(),
        })?);
    }
    Ok(certificates)
}

/// The WebDAV client: the timeouts below, the credentials found for the host, the lab's CAs on
/// top of the system's, and the client certificate if one is set.
fn http_client(
    access: &AccessSettings,
    credentials: Option<&Found>,
) -> Result<reqwest::Client, ConfigProblem> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("tpipe/", env!("CARGO_PKG_VERSION")));
    if let Some(found) = credentials {
        let mut value = reqwest::header::HeaderValue::from_str(&found.credentials.authorization())
            .map_err(|_| ConfigProblem::UnsendableCredentials {
                origin: found.source.clone(),
            })?;
        // Kept out of debug output and of HTTP/2 header compression tables.
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    builder = builder.tls_certs_merge(lab_certificates(
        access,
        reqwest::Certificate::from_pem_bundle,
    )?);
    match (&access.client_certificate, &access.client_key) {
        (Some(certificate), Some(key)) => {
            let mut pem = read_named_file(certificate, "client certificate")?;
            pem.push(b'\n');
            let key_text = crate::private_file::read(&key.value, "client key")
                .map_err(ConfigProblem::PrivateFile)?
                .ok_or_else(|| ConfigProblem::MissingFile {
                    what: "client key",
                    path: key.value.clone(),
                    origin: key.origin.clone(),
                })?;
            pem.extend_from_slice(key_text.as_bytes());
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|error| ConfigProblem::Certificate {
                    what: "client certificate",
                    path: certificate.value.clone(),
                    origin: certificate.origin.clone(),
                    cause: error.to_string(),
                })?;
            builder = builder.identity(identity);
        }
        (Some(_), None) => return Err(ConfigProblem::HalfClientIdentity("client_certificate")),
        (None, Some(_)) => return Err(ConfigProblem::HalfClientIdentity("client_key")),
        (None, None) => {}
    }
    builder
        .build()
        .map_err(|error| ConfigProblem::HttpClient(error.to_string()))
}

/// The host and port a URL names (`https://host:8443/x` → `host`, 8443).
fn host_and_port(server: &str) -> (String, Option<u16>) {
    let authority = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    if let Some(bracketed) = authority.strip_prefix('[') {
        // An IPv6 address: `[::1]:8080`.
        let (address, rest) = bracketed.split_once(']').unwrap_or((bracketed, ""));
        return (
            address.to_string(),
            rest.strip_prefix(':').and_then(|port| port.parse().ok()),
        );
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().ok()),
        None => (authority.to_string(), None),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
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
    /// and PROPFIND for listing. Returns the remote and the credentials it sends.
    pub fn webdav(
        url: &str,
        access: &AccessSettings,
    ) -> Result<(ObjectStoreRemote, Option<Found>), ConfigProblem> {
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
        let (host, port) = host_and_port(server);
        let lookup = access.credentials_for(&host, port)?;
        if let Some(found) = &lookup.found {
            if url.starts_with("http://") && !is_loopback(&host) {
                return Err(ConfigProblem::CredentialsOverHttp {
                    what: format!("{} from {}", found.credentials.describe(), found.source),
                    host,
                });
            }
        }
        let authentication_note = match &lookup.found {
            Some(found) => format!(
                "; tpipe sent {} from {}",
                found.credentials.describe(),
                found.source
            ),
            None => format!(
                "; tpipe sent no credentials: it looked in {}",
                lookup.looked.join(", ")
            ),
        };
        let client = http_client(access, lookup.found.as_ref())?;
        let store = HttpBuilder::new()
            .with_url(server)
            .with_client_options(client_options().with_allow_http(true))
            .with_http_connector(Connector(client))
            .with_retry(retry_config())
            .build()
            .map_err(ConfigProblem::Client)?;
        let folder = folder.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if folder.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, folder))
        };
        Ok((
            ObjectStoreRemote {
                store,
                runtime: runtime()?,
                authentication_note,
            },
            lookup.found,
        ))
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
        // A lab's own CA serves a MinIO or Ceph endpoint as it serves a WebDAV server.
        let mut options = client_options();
        for certificate in
            lab_certificates(&settings.access, object_store::Certificate::from_pem_bundle)?
        {
            options = options.with_root_certificate(certificate);
        }
        let mut builder = AmazonS3Builder::new()
            .with_client_options(options)
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
            authentication_note:
                " (hint: S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .into(),
        })
    }

    fn classify(&self, error: object_store::Error) -> StoreError {
        classify(error, &self.authentication_note)
    }

    fn list_into(&self, prefix: ObjectPath, listed: &mut Vec<Listed>) -> Result<(), StoreError> {
        let result = match self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(self.classify(error)),
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
/// not have us; an error status is one short line (a server's HTML error page is never shown);
/// anything else is a failure of this one request.
fn classify(error: object_store::Error, authentication_note: &str) -> StoreError {
    match &error {
        object_store::Error::PermissionDenied { path, .. } => {
            return StoreError::Refused(format!("permission denied (HTTP 403) for `{path}`"));
        }
        object_store::Error::Unauthenticated { path, .. } => {
            return StoreError::Refused(format!(
                "not authenticated (HTTP 401) for `{path}`{authentication_note}"
            ));
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
        let mut cause = first_line(&deepest);
        if cause.contains("certificate") {
            cause.push_str(" (hint: a lab's own CA goes in `ca_bundle` in ~/.config/tpipe/config.toml, or SSL_CERT_FILE)");
        }
        return StoreError::Unreachable(cause);
    }
    let text = error.to_string();
    match status_of(&text) {
        Some((status, reason)) => StoreError::Server {
            status,
            message: format!("HTTP {status} {reason}"),
        },
        None => StoreError::Failed(first_line(&text)),
    }
}

/// object_store says `… Server returned non-2xx status code: 500 Internal Server Error: <body>`;
/// its error type is private, so the status is read from that text.
fn status_of(text: &str) -> Option<(u16, String)> {
    let after = text.split("status code: ").nth(1)?;
    let status: u16 = after.get(..3)?.parse().ok()?;
    let reason = after[3..]
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Some((status, reason))
}

/// The first line of a message, at most 200 characters: a server's body never floods a terminal.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
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
            Err(error) => Err(self.classify(error)),
        }
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        match self
            .runtime
            .block_on(self.store.head(&ObjectPath::from(path)))
        {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.classify(error)),
        }
    }

    fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.runtime
            .block_on(
                self.store
                    .put(&ObjectPath::from(path), PutPayload::from(bytes)),
            )
            .map(|_| ())
            .map_err(|error| self.classify(error))
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
            Err(error) => Err(self.classify(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_error_page_becomes_one_short_line() {
        let text = "Generic HTTP error: Error performing PUT http://127.0.0.1:1/c/blobs/ab/x in 3ms - Server returned non-2xx status code: 500 Internal Server Error: <html>\r\n<head><title>500</title></head>\r\n</html>";
        assert_eq!(
            status_of(text),
            Some((500, "Internal Server Error".to_string()))
        );
        assert_eq!(status_of("Connection refused"), None);
        assert_eq!(first_line("one\ntwo"), "one");
        assert_eq!(first_line(&"x".repeat(500)).chars().count(), 201);
    }

    #[test]
    fn hosts_and_ports_come_from_the_server_url() {
        assert_eq!(
            host_and_port("https://dav.example:8443"),
            ("dav.example".into(), Some(8443))
        );
        assert_eq!(
            host_and_port("https://dav.example"),
            ("dav.example".into(), None)
        );
        assert_eq!(
            host_and_port("http://[::1]:8080"),
            ("::1".into(), Some(8080))
        );
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && !is_loopback("dav.example"));
    }
}
