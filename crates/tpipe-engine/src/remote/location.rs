//! Where a remote lives, parsed from the text that names it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A remote's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteLocation {
    /// `file:///shared/tpipe-cache` or a plain path: a folder every teammate can reach.
    Directory(PathBuf),
    /// `http://…` or `https://…`: a WebDAV server (for example nginx's dav module).
    WebDav(String),
    /// `s3://bucket/prefix`: an S3-compatible bucket, configured by the usual `AWS_*` variables.
    S3 { bucket: String, prefix: String },
}

/// Why a text names no remote.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocationProblem {
    #[error("the remote is empty (hint: a folder, file:///path, http(s)://host/path or s3://bucket/prefix)")]
    Empty,
    #[error(
        "`{0}` is not an absolute file URL (hint: write `file:///absolute/path` or a plain path)"
    )]
    RelativeFileUrl(String),
    #[error("`{0}` names no host")]
    NoHost(String),
    /// `https://user:password@host/…`: a URL is written in pipeline files, config files and
    /// messages, so it must not carry a secret.
    #[error("a remote's URL must not carry credentials (hint: put them in ~/.netrc, the `credentials` file of ~/.config/tpipe/config.toml, or TPIPE_REMOTE_USER and TPIPE_REMOTE_PASSWORD)")]
    CredentialsInUrl,
    #[error("`{0}` names no bucket (hint: s3://bucket/prefix)")]
    NoBucket(String),
    #[error("unknown kind of remote `{0}://` (hint: a folder, file:///path, http(s)://host/path or s3://bucket/prefix)")]
    UnknownScheme(String),
}

impl RemoteLocation {
    /// Parses `text`; a relative path is taken relative to `base_dir` (the folder of the file
    /// that named it, or the working folder for `--remote` and `TPIPE_REMOTE`).
    pub fn parse(text: &str, base_dir: &Path) -> Result<RemoteLocation, LocationProblem> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LocationProblem::Empty);
        }
        if let Some(rest) = text.strip_prefix("file://") {
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            if !rest.starts_with('/') {
                return Err(LocationProblem::RelativeFileUrl(text.to_string()));
            }
            return Ok(RemoteLocation::Directory(PathBuf::from(rest)));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            let url = text.trim_end_matches('/').to_string();
            let authority = url
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
                .unwrap_or_default();
            if authority.is_empty() {
                return Err(LocationProblem::NoHost(text.to_string()));
            }
            if authority.contains('@') {
                return Err(LocationProblem::CredentialsInUrl);
            }
            return Ok(RemoteLocation::WebDav(url));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LocationProblem::NoBucket(text.to_string()));
            }
            return Ok(RemoteLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(LocationProblem::UnknownScheme(scheme.to_string()));
        }
        Ok(RemoteLocation::Directory(base_dir.join(text)))
    }

    /// Whether this kind of remote needs the `remote` cargo feature.
    pub fn needs_network_clients(&self) -> bool {
        !matches!(self, RemoteLocation::Directory(_))
    }
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteLocation::Directory(path) => write!(formatter, "{}", path.display()),
            RemoteLocation::WebDav(url) => formatter.write_str(url),
            RemoteLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(formatter, "s3://{bucket}")
            }
            RemoteLocation::S3 { bucket, prefix } => write!(formatter, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_parses() {
        let base = Path::new("/project");
        assert_eq!(
            RemoteLocation::parse("file:///shared/c", base).unwrap(),
            RemoteLocation::Directory("/shared/c".into())
        );
        assert_eq!(
            RemoteLocation::parse("shared", base).unwrap(),
            RemoteLocation::Directory("/project/shared".into())
        );
        assert_eq!(
            RemoteLocation::parse("https://dav.example/c/", base).unwrap(),
            RemoteLocation::WebDav("https://dav.example/c".into())
        );
        assert_eq!(
            RemoteLocation::parse("s3://bucket/team/cache/", base).unwrap(),
            RemoteLocation::S3 {
                bucket: "bucket".into(),
                prefix: "team/cache".into()
            }
        );
        assert!(RemoteLocation::parse("ftp://x", base)
            .unwrap_err()
            .to_string()
            .contains("unknown kind of remote `ftp://`"));
        assert!(RemoteLocation::parse("file://relative", base).is_err());
        assert!(RemoteLocation::parse("s3://", base).is_err());
        let with_password = RemoteLocation::parse("https://alice:hunter2@dav.example/c", base)
            .unwrap_err()
            .to_string();
        assert!(
            with_password.contains("must not carry credentials")
                && !with_password.contains("hunter2"),
            "{with_password}"
        );
    }
}
