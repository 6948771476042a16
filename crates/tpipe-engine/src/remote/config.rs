//! Which remote a command uses: from the pipeline file, the config files, `TPIPE_REMOTE` and
//! `--remote`, each overriding the one before.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::access::{AccessKeys, AccessSettings, ConfigOwner};
use super::{ConfigProblem, RemoteError, RemoteLocation};

/// A chosen remote.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteSpec {
    pub location: RemoteLocation,
    /// Only read, never written (`remote_read_only = true`, `--remote-read-only`).
    pub read_only: bool,
    /// What named it (`--remote`, `TPIPE_REMOTE`, a config file, the pipeline file), for messages.
    pub origin: String,
}

/// The keys tpipe reads from `tpipe.toml` and `~/.config/tpipe/config.toml`. Other keys are
/// left to other parts of tpipe.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigFile {
    pub remote: Option<String>,
    pub remote_read_only: Option<bool>,
    /// Credentials, CAs and keys: read from the same text as their own type, so `access`
    /// holds them once (a `#[serde(flatten)]` would lose TOML's error locations).
    #[serde(skip)]
    pub access: AccessKeys,
}

impl ConfigFile {
    /// Reads a config file; a missing file is `None`, a malformed one an error naming it.
    pub fn load(path: &Path) -> Result<Option<ConfigFile>, RemoteError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(RemoteError::Config {
                    remote: path.display().to_string(),
                    reason: Box::new(ConfigProblem::ReadFile(error)),
                })
            }
        };
        let malformed = |error| RemoteError::Config {
            remote: path.display().to_string(),
            reason: Box::new(ConfigProblem::Toml(error)),
        };
        let mut config: ConfigFile = toml::from_str(&text).map_err(malformed)?;
        config.access = toml::from_str(&text).map_err(malformed)?;
        Ok(Some(config))
    }
}

/// Everything that may name a remote, lowest precedence first.
#[derive(Clone, Debug, Default)]
pub struct RemoteChoice {
    /// `remote:` in the pipeline file, and that file's folder.
    pub pipeline: Option<(String, PathBuf)>,
    /// `~/.config/tpipe/config.toml` (see [`user_config_path`]).
    pub user_config: Option<PathBuf>,
    /// `tpipe.toml` in the project folder.
    pub project_config: Option<PathBuf>,
    /// `TPIPE_REMOTE`.
    pub environment: Option<String>,
    /// `TPIPE_REMOTE_READ_ONLY=1`.
    pub environment_read_only: bool,
    /// `--remote`.
    pub flag: Option<String>,
    /// `--remote-read-only`.
    pub flag_read_only: bool,
    /// Relative `--remote` and `TPIPE_REMOTE` paths are taken relative to this folder.
    pub working_dir: PathBuf,
}

impl RemoteChoice {
    /// A choice filled from the process environment and the standard config files.
    pub fn from_environment(project_dir: &Path) -> RemoteChoice {
        RemoteChoice {
            user_config: user_config_path(),
            project_config: Some(project_dir.join("tpipe.toml")),
            environment: std::env::var("TPIPE_REMOTE")
                .ok()
                .filter(|text| !text.trim().is_empty()),
            environment_read_only: std::env::var("TPIPE_REMOTE_READ_ONLY")
                .is_ok_and(|value| matches!(value.as_str(), "1" | "true" | "yes")),
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            ..RemoteChoice::default()
        }
    }

    /// The remote in effect, if any. Read-only is sticky: any source that asks for it wins,
    /// whichever source named the remote.
    pub fn resolve(&self) -> Result<Option<RemoteSpec>, RemoteError> {
        let mut chosen: Option<(String, PathBuf, String)> = None;
        let mut read_only = self.flag_read_only || self.environment_read_only;
        if let Some((text, dir)) = &self.pipeline {
            chosen = Some((
                text.clone(),
                dir.clone(),
                "`remote:` in the pipeline file".into(),
            ));
        }
        for path in [&self.user_config, &self.project_config]
            .into_iter()
            .flatten()
        {
            if let Some(config) = ConfigFile::load(path)? {
                read_only |= config.remote_read_only.unwrap_or(false);
                if let Some(text) = config.remote.filter(|text| !text.trim().is_empty()) {
                    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    chosen = Some((text, dir, format!("`{}`", path.display())));
                }
            }
        }
        if let Some(text) = &self.environment {
            chosen = Some((
                text.clone(),
                self.working_dir.clone(),
                "TPIPE_REMOTE".into(),
            ));
        }
        if let Some(text) = &self.flag {
            chosen = Some((text.clone(), self.working_dir.clone(), "--remote".into()));
        }
        let Some((text, dir, origin)) = chosen else {
            return Ok(None);
        };
        let location =
            RemoteLocation::parse(&text, &dir).map_err(|problem| RemoteError::Config {
                remote: without_userinfo(&text),
                reason: Box::new(ConfigProblem::Location {
                    problem,
                    origin: origin.clone(),
                }),
            })?;
        Ok(Some(RemoteSpec {
            location,
            read_only,
            origin,
        }))
    }

    /// The settings of this environment (`RemoteSettings::from_environment`) with those of the
    /// config files added under them: the environment wins, then the project's file, then the
    /// user's.
    pub fn settings(&self, mut settings: RemoteSettings) -> Result<RemoteSettings, RemoteError> {
        settings.access.credentials.user_config = self.user_config.clone();
        for (path, owner) in [
            (&self.user_config, ConfigOwner::User),
            (&self.project_config, ConfigOwner::Project),
        ] {
            let Some(path) = path else { continue };
            if let Some(mut config) = ConfigFile::load(path)? {
                settings
                    .access
                    .add_config_file(path, owner, std::mem::take(&mut config.access))
                    .map_err(|reason| RemoteError::Config {
                        remote: path.display().to_string(),
                        reason: Box::new(reason),
                    })?;
            }
        }
        Ok(settings)
    }
}

/// A URL as it may be shown: `https://user:secret@host/x` → `https://…@host/x`.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…{}", &rest[at..]),
        None => text.to_string(),
    }
}

/// `$XDG_CONFIG_HOME/tpipe/config.toml`, else `~/.config/tpipe/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("tpipe").join("config.toml"))
}

/// Settings that do not name the remote: for S3, every `AWS_*` variable (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …), as
/// object_store's S3 builder reads them; for every remote, how to reach it and whom to trust.
#[derive(Clone, Debug, Default)]
pub struct RemoteSettings {
    pub aws: Vec<(String, String)>,
    pub access: AccessSettings,
}

impl RemoteSettings {
    /// The variables of this process; [`RemoteChoice::settings`] adds the config files.
    pub fn from_environment() -> RemoteSettings {
        let aws = std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect();
        RemoteSettings {
            aws,
            access: AccessSettings::from_environment(),
        }
    }
}
