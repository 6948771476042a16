//! How tpipe reaches a remote and whose records it takes from it: credentials, a lab's CA, a
//! client certificate, the key that signs what it pushes, and the keys it trusts. Read from
//! `~/.config/tpipe/config.toml`, the project's `tpipe.toml` and `TPIPE_*` variables (each
//! overriding the one before); a cluster job gets the resolved settings through its
//! environment ([`AccessSettings::job_environment`]), never through its script.

use std::path::{Path, PathBuf};

use super::credentials::{
    CredentialLookup, CredentialSources, Credentials, EnvironmentCredentials, PASSWORD_VARIABLE,
    TOKEN_VARIABLE, USER_VARIABLE,
};
use super::ConfigProblem;
use crate::signature::{PublicKey, SigningKey, TrustPolicy};

/// A setting and what set it, for messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Named<T> {
    pub value: T,
    pub origin: String,
}

pub const CA_BUNDLE_VARIABLE: &str = "TPIPE_CA_BUNDLE";
pub const CLIENT_CERTIFICATE_VARIABLE: &str = "TPIPE_CLIENT_CERTIFICATE";
pub const CLIENT_KEY_VARIABLE: &str = "TPIPE_CLIENT_KEY";
pub const SIGNING_KEY_VARIABLE: &str = "TPIPE_SIGNING_KEY";
pub const TRUSTED_KEYS_VARIABLE: &str = "TPIPE_TRUSTED_KEYS";
pub const REQUIRE_SIGNATURES_VARIABLE: &str = "TPIPE_REQUIRE_SIGNATURES";

/// Everything but the remote's address that using it needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessSettings {
    pub credentials: CredentialSources,
    /// Extra certificate authorities (PEM bundles): `ca_bundle`, `TPIPE_CA_BUNDLE`,
    /// `SSL_CERT_FILE`. They are added to the system's, never replace them.
    pub ca_bundles: Vec<Named<PathBuf>>,
    /// A client certificate and its key (PEM), for servers that ask for one.
    pub client_certificate: Option<Named<PathBuf>>,
    pub client_key: Option<Named<PathBuf>>,
    /// The secret key `push` signs with.
    pub signing_key: Option<Named<PathBuf>>,
    /// Public keys whose signatures make a fetched record trusted.
    pub trusted_keys: Vec<Named<String>>,
    /// Every source that set `require_signatures`.
    pub require_signatures: Vec<Named<bool>>,
}

/// The keys of a config file this module reads (`config::ConfigFile::access`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct AccessKeys {
    /// A TOML file of credentials per host (user's config only; see `credentials`).
    pub credentials: Option<PathBuf>,
    /// A PEM bundle of certificate authorities to trust besides the system's.
    pub ca_bundle: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that ask for one.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The secret key `push` signs with (`tpipe key generate` writes one).
    pub signing_key: Option<PathBuf>,
    /// Public keys (`name:base64`) whose signature makes a fetched record usable.
    pub trusted_keys: Option<Vec<String>>,
    /// Whether a fetched record needs a trusted signature (default: as soon as a key is trusted).
    pub require_signatures: Option<bool>,
}

/// Whose file a config file is: personal settings (credentials, keys) belong in the user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOwner {
    User,
    Project,
}

fn truthy(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// `~/…` and paths relative to the folder of the file that named them.
fn resolve_path(path: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(path)
}

impl AccessSettings {
    /// The `TPIPE_*` variables (and `SSL_CERT_FILE`, `NETRC`, `HOME`) of this process.
    pub fn from_environment() -> AccessSettings {
        let variable = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let path = |name: &'static str| {
            variable(name).map(|value| Named {
                value: PathBuf::from(value),
                origin: name.to_string(),
            })
        };
        AccessSettings {
            credentials: CredentialSources {
                environment: EnvironmentCredentials::from_environment(),
                netrc: CredentialSources::netrc_of_environment(),
                ..CredentialSources::default()
            },
            ca_bundles: [path(CA_BUNDLE_VARIABLE), path("SSL_CERT_FILE")]
                .into_iter()
                .flatten()
                .collect(),
            client_certificate: path(CLIENT_CERTIFICATE_VARIABLE),
            client_key: path(CLIENT_KEY_VARIABLE),
            signing_key: path(SIGNING_KEY_VARIABLE),
            trusted_keys: variable(TRUSTED_KEYS_VARIABLE)
                .map(|keys| {
                    keys.split_whitespace()
                        .map(|key| Named {
                            value: key.to_string(),
                            origin: TRUSTED_KEYS_VARIABLE.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            require_signatures: variable(REQUIRE_SIGNATURES_VARIABLE)
                .and_then(|value| truthy(&value))
                .map(|value| Named {
                    value,
                    origin: REQUIRE_SIGNATURES_VARIABLE.to_string(),
                })
                .into_iter()
                .collect(),
        }
    }

    /// Adds a config file's settings under what is already set (call the files in order of
    /// rising precedence after the environment has been read: the environment still wins,
    /// and the project's file wins over the user's). Personal settings in a project's file,
    /// which its team shares, are refused.
    pub fn add_config_file(
        &mut self,
        path: &Path,
        owner: ConfigOwner,
        keys: AccessKeys,
    ) -> Result<(), ConfigProblem> {
        let origin = format!("`{}`", path.display());
        let base = path.parent().unwrap_or(Path::new("."));
        if owner == ConfigOwner::Project {
            for (key, set) in [
                ("credentials", keys.credentials.is_some()),
                ("signing_key", keys.signing_key.is_some()),
                ("client_certificate", keys.client_certificate.is_some()),
                ("client_key", keys.client_key.is_some()),
            ] {
                if set {
                    return Err(ConfigProblem::PersonalSetting {
                        key,
                        file: path.to_path_buf(),
                    });
                }
            }
        }
        let named = |value: PathBuf| Named {
            value: resolve_path(&value, base),
            origin: origin.clone(),
        };
        // The environment was read first and wins; between files, the later (project) wins.
        let from_environment = |setting: &Option<Named<PathBuf>>| {
            setting
                .as_ref()
                .is_some_and(|set| set.origin.starts_with("TPIPE_"))
        };
        if let Some(file) = keys.credentials {
            self.credentials.file = Some((resolve_path(&file, base), origin.clone()));
        }
        if let Some(bundle) = keys.ca_bundle {
            self.ca_bundles.retain(|bundle| {
                bundle.origin.starts_with("TPIPE_") || bundle.origin == "SSL_CERT_FILE"
            });
            self.ca_bundles.push(named(bundle));
        }
        for (setting, value) in [
            (&mut self.client_certificate, keys.client_certificate),
            (&mut self.client_key, keys.client_key),
            (&mut self.signing_key, keys.signing_key),
        ] {
            if let Some(value) = value {
                if !from_environment(setting) {
                    *setting = Some(named(value));
                }
            }
        }
        for key in keys.trusted_keys.unwrap_or_default() {
            self.trusted_keys.push(Named {
                value: key,
                origin: origin.clone(),
            });
        }
        if let Some(value) = keys.require_signatures {
            self.require_signatures.push(Named {
                value,
                origin: origin.clone(),
            });
        }
        Ok(())
    }

    /// `trusted_keys` (from every source together) and `require_signatures`: `true` anywhere
    /// wins; else `false` anywhere; else required as soon as any key is trusted.
    pub fn trust_policy(&self) -> Result<TrustPolicy, ConfigProblem> {
        let mut trusted = Vec::new();
        for key in &self.trusted_keys {
            let parsed = PublicKey::parse(&key.value).map_err(|source| ConfigProblem::Key {
                setting: "trusted_keys",
                origin: key.origin.clone(),
                source,
            })?;
            if !trusted.contains(&parsed) {
                trusted.push(parsed);
            }
        }
        let said = |wanted: bool| {
            self.require_signatures
                .iter()
                .find(|setting| setting.value == wanted)
        };
        let required = match (said(true), said(false)) {
            (Some(_), _) => true,
            (None, Some(_)) => false,
            (None, None) => !trusted.is_empty(),
        };
        if required && trusted.is_empty() {
            let origin = said(true)
                .map(|setting| setting.origin.clone())
                .unwrap_or_default();
            return Err(ConfigProblem::NoTrustedKeys { origin });
        }
        Ok(TrustPolicy::new(trusted, required))
    }

    /// The key `push` signs with, read from its private file.
    pub fn signing_key(&self) -> Result<Option<SigningKey>, ConfigProblem> {
        let Some(setting) = &self.signing_key else {
            return Ok(None);
        };
        let text = crate::private_file::read(&setting.value, "signing key")
            .map_err(ConfigProblem::PrivateFile)?
            .ok_or_else(|| ConfigProblem::MissingFile {
                what: "signing key",
                path: setting.value.clone(),
                origin: setting.origin.clone(),
            })?;
        SigningKey::parse(&text)
            .map(Some)
            .map_err(|source| ConfigProblem::Key {
                setting: "signing_key",
                origin: setting.origin.clone(),
                source,
            })
    }

    /// The credentials for `host`, and where tpipe looked.
    pub fn credentials_for(
        &self,
        host: &str,
        port: Option<u16>,
    ) -> Result<CredentialLookup, ConfigProblem> {
        self.credentials
            .find(host, port)
            .map_err(ConfigProblem::Credentials)
    }

    /// The variables that give a cluster job the access this process resolved for its remote:
    /// the credentials found (`found`), the files named, the trust settings. A job runs
    /// `exec-node` as the same user; the variables travel in its environment, not its script.
    pub fn job_environment(&self, found: Option<&Credentials>) -> Vec<(String, String)> {
        let mut variables = Vec::new();
        match found {
            Some(Credentials::Basic { user, password }) => {
                variables.push((USER_VARIABLE.to_string(), user.clone()));
                variables.push((PASSWORD_VARIABLE.to_string(), password.expose().to_string()));
            }
            Some(Credentials::Bearer { token }) => {
                variables.push((TOKEN_VARIABLE.to_string(), token.expose().to_string()));
            }
            None => {}
        }
        let mut path = |name: &str, setting: Option<&Named<PathBuf>>| {
            if let Some(setting) = setting {
                variables.push((name.to_string(), setting.value.display().to_string()));
            }
        };
        path(
            CA_BUNDLE_VARIABLE,
            self.ca_bundles
                .iter()
                .find(|bundle| bundle.origin != "SSL_CERT_FILE"),
        );
        path(
            CLIENT_CERTIFICATE_VARIABLE,
            self.client_certificate.as_ref(),
        );
        path(CLIENT_KEY_VARIABLE, self.client_key.as_ref());
        path(SIGNING_KEY_VARIABLE, self.signing_key.as_ref());
        if !self.trusted_keys.is_empty() {
            let keys: Vec<&str> = self
                .trusted_keys
                .iter()
                .map(|key| key.value.as_str())
                .collect();
            variables.push((TRUSTED_KEYS_VARIABLE.to_string(), keys.join(" ")));
        }
        if let Ok(policy) = self.trust_policy() {
            variables.push((
                REQUIRE_SIGNATURES_VARIABLE.to_string(),
                if policy.requires_signatures() {
                    "1"
                } else {
                    "0"
                }
                .to_string(),
            ));
        }
        variables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(trusted: &[&str], require: Option<bool>) -> AccessKeys {
        AccessKeys {
            trusted_keys: Some(trusted.iter().map(|key| key.to_string()).collect()),
            require_signatures: require,
            ..AccessKeys::default()
        }
    }

    #[test]
    fn signatures_are_required_once_a_key_is_trusted_and_true_anywhere_wins() {
        let key = SigningKey::generate("ci").unwrap().public_key().to_string();
        let policy = |files: Vec<(ConfigOwner, AccessKeys)>| {
            let mut settings = AccessSettings::default();
            for (owner, keys) in files {
                settings
                    .add_config_file(Path::new("/config.toml"), owner, keys)
                    .unwrap();
            }
            settings.trust_policy()
        };
        assert!(!policy(vec![]).unwrap().requires_signatures());
        assert!(policy(vec![(ConfigOwner::Project, keys(&[&key], None))])
            .unwrap()
            .requires_signatures());
        assert!(
            !policy(vec![(ConfigOwner::Project, keys(&[&key], Some(false)))])
                .unwrap()
                .requires_signatures()
        );
        assert!(policy(vec![
            (ConfigOwner::User, keys(&[&key], Some(true))),
            (ConfigOwner::Project, keys(&[], Some(false))),
        ])
        .unwrap()
        .requires_signatures());
        let error = policy(vec![(ConfigOwner::User, keys(&[], Some(true)))]).unwrap_err();
        assert!(error.to_string().contains("no `trusted_keys`"), "{error}");
        let error = policy(vec![(ConfigOwner::User, keys(&["ci:AAAA"], None))]).unwrap_err();
        assert!(error.to_string().contains("trusted_keys"), "{error}");
    }

    #[test]
    fn personal_settings_in_a_project_file_are_refused() {
        let mut settings = AccessSettings::default();
        let error = settings
            .add_config_file(
                Path::new("/project/tpipe.toml"),
                ConfigOwner::Project,
                AccessKeys {
                    signing_key: Some("key".into()),
                    ..AccessKeys::default()
                },
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("`signing_key`")
                && error.to_string().contains("/project/tpipe.toml"),
            "{error}"
        );
    }

    #[test]
    fn a_job_gets_the_credentials_found_and_the_trust_settings() {
        let key = SigningKey::generate("ci").unwrap().public_key().to_string();
        let mut settings = AccessSettings::default();
        settings
            .add_config_file(
                Path::new("/home/a/.config/tpipe/config.toml"),
                ConfigOwner::User,
                AccessKeys {
                    signing_key: Some("signing.key".into()),
                    ..keys(&[&key], None)
                },
            )
            .unwrap();
        let found = Credentials::Basic {
            user: "alice".into(),
            password: super::super::credentials::Secret::new("pw".into()),
        };
        let variables = settings.job_environment(Some(&found));
        let get = |name: &str| {
            variables
                .iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get(USER_VARIABLE), Some("alice"));
        assert_eq!(get(PASSWORD_VARIABLE), Some("pw"));
        assert_eq!(
            get(SIGNING_KEY_VARIABLE),
            Some("/home/a/.config/tpipe/signing.key")
        );
        assert_eq!(get(TRUSTED_KEYS_VARIABLE), Some(key.as_str()));
        assert_eq!(get(REQUIRE_SIGNATURES_VARIABLE), Some("1"));
    }
}
