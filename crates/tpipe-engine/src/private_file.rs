//! Files that hold secrets (a credentials file, `~/.netrc`, a signing key): read only when no
//! one but their owner can read or write them, as ssh treats a private key, and created so.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a secret file is not read.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot read {what} `{path}`: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} `{path}` can be read or written by others (mode {mode:04o}); tpipe reads no secret from such a file, as ssh refuses such a key (hint: `chmod 600 {path}`)")]
    TooOpen {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("cannot write {what} `{path}`: {source}")]
    Write {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} `{path}` exists already; tpipe does not overwrite it (hint: name another file)"
    )]
    Exists { what: &'static str, path: PathBuf },
}

/// The text of a secret file; `Ok(None)` when there is no such file. `what` names it in
/// messages ("credentials file", "signing key").
pub fn read(path: &Path, what: &'static str) -> Result<Option<String>, PrivateFileError> {
    let read_error = |source| PrivateFileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(read_error(error)),
    };
    check_mode(path, &metadata, what)?;
    std::fs::read_to_string(path).map(Some).map_err(read_error)
}

#[cfg(unix)]
fn check_mode(
    path: &Path,
    metadata: &std::fs::Metadata,
    what: &'static str,
) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::TooOpen {
            what,
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata, _: &'static str) -> Result<(), PrivateFileError> {
    Ok(())
}

/// Creates `path` (and its folder) readable and writable by its owner only, and writes `text`;
/// an existing file is never replaced.
pub fn create(path: &Path, text: &str, what: &'static str) -> Result<(), PrivateFileError> {
    let write_error = |source| PrivateFileError::Write {
        what,
        path: path.to_path_buf(),
        source,
    };
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(write_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(PrivateFileError::Exists {
                what,
                path: path.to_path_buf(),
            })
        }
        Err(error) => return Err(write_error(error)),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_file_others_can_read_is_refused_and_a_created_one_is_private() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("deep/secret");
        create(&path, "hush", "signing key").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read(&path, "signing key").unwrap().as_deref(), Some("hush"));
        assert!(matches!(
            create(&path, "other", "signing key"),
            Err(PrivateFileError::Exists { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read(&path, "signing key").unwrap_err().to_string();
        assert!(
            error.contains("mode 0644") && error.contains("chmod 600"),
            "{error}"
        );
        assert!(read(&folder.path().join("none"), "signing key")
            .unwrap()
            .is_none());
    }
}
