//! A remote in a shared folder (NFS, SMB, a synced drive), written with std: each upload goes to
//! a unique temporary name inside the remote and is renamed into place, so readers on other
//! machines never see half a file.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::store::{Listed, RemoteStore, StoreError};

pub struct DirectoryStore {
    root: PathBuf,
}

static UPLOAD_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DirectoryStore {
    pub fn new(root: PathBuf) -> DirectoryStore {
        DirectoryStore { root }
    }

    fn path_of(&self, path: &str) -> PathBuf {
        path.split('/')
            .fold(self.root.clone(), |joined, part| joined.join(part))
    }

    /// Told apart from a missing object: the whole folder is gone (an unmounted share).
    fn check_root(&self) -> Result<(), StoreError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(StoreError::Unreachable(format!(
                "folder `{}` does not exist (hint: is the share mounted?)",
                self.root.display()
            )))
        }
    }

    fn failed(&self, action: &str, path: &Path, error: std::io::Error) -> StoreError {
        let message = format!("cannot {action} `{}`: {error}", path.display());
        if error.kind() == ErrorKind::PermissionDenied {
            StoreError::Refused(message)
        } else {
            StoreError::Failed(message)
        }
    }
}

impl RemoteStore for DirectoryStore {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let file = self.path_of(path);
        match std::fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => self.check_root().map(|()| None),
            Err(error) => Err(self.failed("read", &file, error)),
        }
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        let file = self.path_of(path);
        match std::fs::metadata(&file) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == ErrorKind::NotFound => self.check_root().map(|()| None),
            Err(error) => Err(self.failed("read", &file, error)),
        }
    }

    /// The first push creates the remote's folder, but only inside a folder that exists: a
    /// share that is not mounted must not be replaced by a local folder of the same name.
    fn prepare_for_upload(&self) -> Result<(), StoreError> {
        if !self.root.is_dir() && self.root.parent().is_some_and(Path::is_dir) {
            std::fs::create_dir(&self.root)
                .or_else(|error| {
                    if self.root.is_dir() {
                        Ok(())
                    } else {
                        Err(error)
                    }
                })
                .map_err(|error| self.failed("create", &self.root, error))?;
        }
        self.check_root()
    }

    fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check_root()?;
        let destination = self.path_of(path);
        let temporary_dir = self.root.join("tmp");
        for dir in [
            destination.parent().expect("object paths have a parent"),
            &temporary_dir,
        ] {
            std::fs::create_dir_all(dir).map_err(|error| self.failed("create", dir, error))?;
        }
        // Unique across processes and machines sharing the folder: host, process, counter.
        let unique = format!(
            ".{}-{}-{}-{}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id(),
            UPLOAD_COUNTER.fetch_add(1, Ordering::Relaxed),
            destination
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("object")
        );
        let temporary = temporary_dir.join(unique);
        let result = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &destination)
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&temporary);
            return Err(self.failed("write", &destination, error));
        }
        Ok(())
    }

    fn list(&self, folder: &str) -> Result<Vec<Listed>, StoreError> {
        self.check_root()?;
        let start = self.path_of(folder);
        if !start.exists() {
            return Ok(Vec::new());
        }
        let mut listed = Vec::new();
        for entry in walkdir::WalkDir::new(&start).sort_by_file_name() {
            let entry = entry.map_err(|error| {
                StoreError::Failed(format!("cannot list `{}`: {error}", start.display()))
            })?;
            if !entry.file_type().is_file() || entry.file_name().to_string_lossy().starts_with('.')
            {
                continue;
            }
            let relative = entry
                .path()
                .strip_prefix(&self.root)
                .expect("walked under the root");
            let path = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let metadata = entry.metadata().map_err(|error| {
                StoreError::Failed(format!("cannot read `{}`: {error}", entry.path().display()))
            })?;
            listed.push(Listed {
                path,
                size: metadata.len(),
                modified: metadata.modified().ok().or(Some(SystemTime::UNIX_EPOCH)),
            });
        }
        Ok(listed)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let file = self.path_of(path);
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                Err(self.failed("remove", &file, error))
            }
            _ => Ok(()),
        }
    }
}
