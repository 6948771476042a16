//! Credentials for HTTP(S) remotes, looked up by host: `TPIPE_REMOTE_TOKEN` or
//! `TPIPE_REMOTE_USER`/`TPIPE_REMOTE_PASSWORD`, then the `credentials` file named in
//! `~/.config/tpipe/config.toml`, then `~/.netrc` (`$NETRC`), the convention curl, pip and git
//! use. Never from a pipeline file; never printed: a [`Secret`] shows as `<hidden>`, and
//! messages name only where a credential came from and the user it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::private_file::{self, PrivateFileError};

/// A password or token. Its `Debug` hides it, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<hidden>")
    }
}

/// What an HTTP remote is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: Secret },
    Bearer { token: Secret },
}

impl Credentials {
    /// The value of the `Authorization` header.
    pub fn authorization(&self) -> String {
        use base64::Engine as _;
        match self {
            Credentials::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()))
            ),
            Credentials::Bearer { token } => format!("Bearer {}", token.expose()),
        }
    }

    /// Who they say we are, with no secret in it.
    pub fn describe(&self) -> String {
        match self {
            Credentials::Basic { user, .. } => format!("the password of user `{user}`"),
            Credentials::Bearer { .. } => "a bearer token".to_string(),
        }
    }
}

/// Credentials and where they were found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

/// `TPIPE_REMOTE_USER`, `TPIPE_REMOTE_PASSWORD`, `TPIPE_REMOTE_TOKEN`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvironmentCredentials {
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
}

pub const USER_VARIABLE: &str = "TPIPE_REMOTE_USER";
pub const PASSWORD_VARIABLE: &str = "TPIPE_REMOTE_PASSWORD";
pub const TOKEN_VARIABLE: &str = "TPIPE_REMOTE_TOKEN";

impl EnvironmentCredentials {
    pub fn from_environment() -> EnvironmentCredentials {
        let variable = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        EnvironmentCredentials {
            user: variable(USER_VARIABLE),
            password: variable(PASSWORD_VARIABLE).map(Secret),
            token: variable(TOKEN_VARIABLE).map(Secret),
        }
    }

    fn credentials(&self) -> Result<Option<Credentials>, CredentialsError> {
        match (&self.user, &self.password, &self.token) {
            (None, None, None) => Ok(None),
            (None, None, Some(token)) => Ok(Some(Credentials::Bearer {
                token: token.clone(),
            })),
            (Some(user), Some(password), None) => Ok(Some(Credentials::Basic {
                user: user.clone(),
                password: password.clone(),
            })),
            (_, _, Some(_)) => Err(CredentialsError::Environment(
                "TPIPE_REMOTE_TOKEN is set together with TPIPE_REMOTE_USER or TPIPE_REMOTE_PASSWORD (hint: set a token or a user and password, not both)",
            )),
            (Some(_), None, None) => Err(CredentialsError::Environment(
                "TPIPE_REMOTE_USER is set without TPIPE_REMOTE_PASSWORD",
            )),
            (None, Some(_), None) => Err(CredentialsError::Environment(
                "TPIPE_REMOTE_PASSWORD is set without TPIPE_REMOTE_USER",
            )),
        }
    }
}

/// Why the credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0}")]
    Environment(&'static str),
    #[error(transparent)]
    PrivateFile(#[from] PrivateFileError),
    #[error("the credentials file `{path}` is not valid: {}", .message.trim_end())]
    FileSyntax { path: PathBuf, message: String },
    #[error("the credentials file `{path}`: the entry for `{host}` needs `user` and `password`, or `token` alone")]
    FileEntry { path: PathBuf, host: String },
    #[error("the credentials file `{path}` (named by {origin}) does not exist")]
    NoSuchFile { path: PathBuf, origin: String },
}

/// One host's entry of a credentials file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// Where credentials are looked for, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialSources {
    pub environment: EnvironmentCredentials,
    /// `credentials = "…"` in the user's config, and what named it.
    pub file: Option<(PathBuf, String)>,
    /// The user's config file, to say where a credentials file would be named.
    pub user_config: Option<PathBuf>,
    /// `$NETRC`, else `~/.netrc`.
    pub netrc: Option<PathBuf>,
}

/// What a lookup found, and where it looked (for the message of a 401).
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialLookup {
    pub found: Option<Found>,
    pub looked: Vec<String>,
}

impl CredentialSources {
    /// The netrc file of this environment: `$NETRC`, else `$HOME/.netrc`.
    pub fn netrc_of_environment() -> Option<PathBuf> {
        std::env::var_os("NETRC")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|value| !value.is_empty())
                    .map(|home| PathBuf::from(home).join(".netrc"))
            })
    }

    /// The credentials for `host` (and `port`, which a credentials file may name).
    pub fn find(
        &self,
        host: &str,
        port: Option<u16>,
    ) -> Result<CredentialLookup, CredentialsError> {
        let mut looked = Vec::new();
        if let Some(credentials) = self.environment.credentials()? {
            return Ok(CredentialLookup {
                found: Some(Found {
                    credentials,
                    source: "the environment (TPIPE_REMOTE_*)".into(),
                }),
                looked,
            });
        }
        looked.push(format!(
            "{TOKEN_VARIABLE}, {USER_VARIABLE} and {PASSWORD_VARIABLE} (not set)"
        ));
        match &self.file {
            Some((path, origin)) => {
                let text = private_file::read(path, "credentials file")?.ok_or_else(|| {
                    CredentialsError::NoSuchFile {
                        path: path.clone(),
                        origin: origin.clone(),
                    }
                })?;
                if let Some(credentials) = from_credentials_file(path, &text, host, port)? {
                    return Ok(CredentialLookup {
                        found: Some(Found {
                            credentials,
                            source: format!("`{}`", path.display()),
                        }),
                        looked,
                    });
                }
                looked.push(format!("`{}` (no entry for `{host}`)", path.display()));
            }
            None => looked.push(match &self.user_config {
                Some(config) => format!(
                    "a credentials file (none named by `credentials` in `{}`)",
                    config.display()
                ),
                None => "a credentials file (no user config file)".into(),
            }),
        }
        if let Some(netrc) = &self.netrc {
            match private_file::read(netrc, "netrc file")? {
                Some(text) => {
                    if let Some((user, password)) = from_netrc(&text, host) {
                        return Ok(CredentialLookup {
                            found: Some(Found {
                                credentials: Credentials::Basic {
                                    user,
                                    password: Secret(password),
                                },
                                source: format!("`{}`", netrc.display()),
                            }),
                            looked,
                        });
                    }
                    looked.push(format!(
                        "`{}` (no `machine {host}` and no `default`)",
                        netrc.display()
                    ));
                }
                None => looked.push(format!("`{}` (no such file)", netrc.display())),
            }
        }
        Ok(CredentialLookup {
            found: None,
            looked,
        })
    }
}

/// A credentials file's entry for `host:port`, else for `host`.
fn from_credentials_file(
    path: &Path,
    text: &str,
    host: &str,
    port: Option<u16>,
) -> Result<Option<Credentials>, CredentialsError> {
    let entries: BTreeMap<String, FileEntry> =
        toml::from_str(text).map_err(|error| CredentialsError::FileSyntax {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
    let with_port = port.map(|port| format!("{host}:{port}"));
    let Some((name, entry)) = with_port
        .iter()
        .map(String::as_str)
        .chain([host])
        .find_map(|name| entries.get(name).map(|entry| (name, entry)))
    else {
        return Ok(None);
    };
    match (&entry.user, &entry.password, &entry.token) {
        (Some(user), Some(password), None) => Ok(Some(Credentials::Basic {
            user: user.clone(),
            password: Secret(password.clone()),
        })),
        (None, None, Some(token)) => Ok(Some(Credentials::Bearer {
            token: Secret(token.clone()),
        })),
        _ => Err(CredentialsError::FileEntry {
            path: path.to_path_buf(),
            host: name.to_string(),
        }),
    }
}

/// The login and password a netrc text gives `host`: its `machine` entry, else `default`.
/// (`account` is read past; a `macdef` runs to the next empty line.)
fn from_netrc(text: &str, host: &str) -> Option<(String, String)> {
    #[derive(Default)]
    struct Entry {
        machine: Option<String>,
        login: Option<String>,
        password: Option<String>,
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut in_macro = false;
    for line in text.lines() {
        if in_macro {
            in_macro = !line.trim().is_empty();
            continue;
        }
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "machine" => entries.push(Entry {
                    machine: words.next().map(str::to_string),
                    ..Entry::default()
                }),
                "default" => entries.push(Entry::default()),
                "login" | "password" | "account" => {
                    let value = words.next().map(str::to_string);
                    if let Some(entry) = entries.last_mut() {
                        match word {
                            "login" => entry.login = value,
                            "password" => entry.password = value,
                            _ => {}
                        }
                    }
                }
                "macdef" => {
                    in_macro = true;
                    break;
                }
                _ => {}
            }
        }
    }
    let usable = |entry: &&Entry| entry.login.is_some() && entry.password.is_some();
    let entry = entries
        .iter()
        .filter(usable)
        .find(|entry| entry.machine.as_deref() == Some(host))
        .or_else(|| {
            entries
                .iter()
                .filter(usable)
                .find(|entry| entry.machine.is_none())
        })?;
    Some((entry.login.clone()?, entry.password.clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries_are_found_by_machine_then_default() {
        let text = "machine other.example login bob password one\n\
                    macdef init\n  cd /pub\n  machine evil login x password y\n\n\
                    machine dav.example\n  login alice\n  account lab\n  password two\n\
                    default login anyone password three\n";
        assert_eq!(
            from_netrc(text, "dav.example"),
            Some(("alice".into(), "two".into()))
        );
        assert_eq!(
            from_netrc(text, "evil"),
            Some(("anyone".into(), "three".into())),
            "a macro's body is not an entry"
        );
        assert_eq!(from_netrc("machine a login b\n", "a"), None);
    }

    #[test]
    fn a_credentials_file_names_hosts_with_or_without_a_port() {
        let path = Path::new("credentials.toml");
        let text = "[\"dav.example\"]\nuser = \"alice\"\npassword = \"p\"\n\n[\"dav.example:8443\"]\ntoken = \"t\"\n";
        assert_eq!(
            from_credentials_file(path, text, "dav.example", Some(8443)).unwrap(),
            Some(Credentials::Bearer {
                token: Secret("t".into())
            })
        );
        assert!(matches!(
            from_credentials_file(path, text, "dav.example", Some(443)).unwrap(),
            Some(Credentials::Basic { .. })
        ));
        assert_eq!(
            from_credentials_file(path, text, "other", None).unwrap(),
            None
        );
        let error = from_credentials_file(path, "[h]\nuser = \"a\"\n", "h", None).unwrap_err();
        assert!(error.to_string().contains("needs `user` and `password`"));
        let error = from_credentials_file(path, "[h]\npasword = \"a\"\n", "h", None).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let credentials = Credentials::Basic {
            user: "alice".into(),
            password: Secret("hunter2".into()),
        };
        let shown = format!("{credentials:?} {}", credentials.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(credentials.authorization(), "Basic YWxpY2U6aHVudGVyMg==");
    }
}
