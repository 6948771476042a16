//! The node limit a pipeline is read under: `max_nodes = N` in `~/.config/tpipe/config.toml`,
//! then in the project's `tpipe.toml` (the later wins), then `--max-nodes` (or
//! `TPIPE_MAX_NODES`). `0` means no limit. The spec layer applies it ([`Limits`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::spec::{Limits, DEFAULT_MAX_NODES};

/// A config file whose `max_nodes` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
}

/// The keys of a config file this module reads; other keys belong to other parts of tpipe.
#[derive(Debug, Default, Deserialize)]
struct LimitKeys {
    max_nodes: Option<u64>,
}

/// `0` (no limit) as the largest count there is.
fn limit_of(max_nodes: u64) -> u64 {
    if max_nodes == 0 {
        u64::MAX
    } else {
        max_nodes
    }
}

/// The limits from `files` (lowest precedence first; a missing file is skipped) and the
/// command line's `flag`.
pub fn configured_limits(files: &[PathBuf], flag: Option<u64>) -> Result<Limits, LimitsError> {
    let mut limits = Limits::default();
    for path in files {
        if let Some(max_nodes) = max_nodes_in(path)? {
            limits.max_nodes = limit_of(max_nodes);
        }
    }
    if let Some(max_nodes) = flag {
        limits.max_nodes = limit_of(max_nodes);
    }
    Ok(limits)
}

fn max_nodes_in(path: &Path) -> Result<Option<u64>, LimitsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LimitsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let keys: LimitKeys = toml::from_str(&text).map_err(|source| LimitsError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(keys.max_nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_file_overrides_the_user_file_and_the_flag_both() {
        let folder = tempfile::tempdir().unwrap();
        let user = folder.path().join("config.toml");
        let project = folder.path().join("tpipe.toml");
        let missing = folder.path().join("missing.toml");
        std::fs::write(&user, "max_nodes = 5\nremote = \"x\"\n").unwrap();
        std::fs::write(&project, "max_nodes = 7\n").unwrap();
        let files = [user.clone(), project.clone(), missing];
        assert_eq!(configured_limits(&files, None).unwrap().max_nodes, 7);
        assert_eq!(configured_limits(&files, Some(9)).unwrap().max_nodes, 9);
        assert_eq!(
            configured_limits(&files, Some(0)).unwrap().max_nodes,
            u64::MAX
        );
        assert_eq!(
            configured_limits(&[], None).unwrap().max_nodes,
            DEFAULT_MAX_NODES
        );
        std::fs::write(&project, "max_nodes = -1\n").unwrap();
        let error = configured_limits(&files, None).unwrap_err().to_string();
        assert!(error.contains("tpipe.toml"), "{error}");
    }
}
