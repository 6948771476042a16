//! What `tpipe run --detach` submitted, per pipeline: the backend and node → job id, in
//! `detached-jobs/<pipeline id>.json` of the cache, so `plan` can show those jobs and a later
//! `run` waits for them instead of submitting their nodes again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ClusterError;
use crate::cache::Cache;
use crate::hash::ContentHash;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetachedJobs {
    /// The pipeline file, for people reading the file.
    pub pipeline: String,
    /// The cluster backend the jobs are on (its `name`).
    pub backend: String,
    pub jobs: BTreeMap<String, String>,
}

fn path(cache: &Cache, pipeline_id: &ContentHash) -> PathBuf {
    cache
        .root()
        .join("detached-jobs")
        .join(format!("{}.json", pipeline_id.to_hex()))
}

impl DetachedJobs {
    /// The jobs of the last `--detach` of this pipeline; none when there was none (or the file
    /// is unreadable: it only saves resubmitting).
    pub fn load(cache: &Cache, pipeline_id: &ContentHash) -> DetachedJobs {
        std::fs::read(path(cache, pipeline_id))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, cache: &Cache, pipeline_id: &ContentHash) -> Result<(), ClusterError> {
        let path = path(cache, pipeline_id);
        let folder = path.parent().expect("the file is in a folder");
        std::fs::create_dir_all(folder).map_err(|source| ClusterError::Folder {
            path: folder.to_path_buf(),
            source,
        })?;
        let bytes = serde_json::to_vec_pretty(self).expect("job lists always serialise");
        crate::cache::write_atomically(&cache.temporary_dir(), &path, &bytes).map_err(|source| {
            ClusterError::Write {
                path: path.clone(),
                source,
            }
        })
    }

    /// Forgets the jobs: a run attached to them and they are over.
    pub fn remove(cache: &Cache, pipeline_id: &ContentHash) {
        let _ = std::fs::remove_file(path(cache, pipeline_id));
    }
}
