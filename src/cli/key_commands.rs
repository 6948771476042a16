//! `tpipe key generate NAME` and `tpipe key public FILE`: the ed25519 keys that sign what
//! `push` uploads, written as Nix writes the keys of its binary caches (`name:base64`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{exit, Failure};
use crate::signature::SigningKey;

/// Where a new key goes by default: beside the user's config file.
fn default_key_path(name: &str) -> Option<PathBuf> {
    let config = crate::remote::config::user_config_path()?;
    Some(config.parent()?.join(format!("{name}.key")))
}

pub fn generate(name: &str, output: Option<&Path>, out: &mut impl Write) -> Result<u8, Failure> {
    let key = SigningKey::generate(name).map_err(Failure::usage)?;
    let path = match output {
        Some(path) => path.to_path_buf(),
        None => default_key_path(name).ok_or_else(|| {
            Failure::usage(
                "no config folder (HOME and XDG_CONFIG_HOME are unset): pass `--output FILE`",
            )
        })?,
    };
    let mut secret = key.to_secret_text();
    secret.push('\n');
    crate::private_file::create(&path, &secret, "signing key").map_err(Failure::failed)?;
    let public = key.public_key();
    let shown = std::fs::canonicalize(&path).unwrap_or(path);
    writeln!(
        out,
        "wrote the secret key `{name}` to `{}` (readable by you only: keep it there)",
        shown.display()
    )?;
    writeln!(out, "public key: {public}")?;
    writeln!(
        out,
        "\nto sign what you push, add to ~/.config/tpipe/config.toml:\n  signing_key = \"{}\"",
        shown.display()
    )?;
    writeln!(
        out,
        "to use what it signs, add to trusted_keys (your config or the project's tpipe.toml):\n  trusted_keys = [\"{public}\"]"
    )?;
    Ok(exit::SUCCESS)
}

pub fn public(file: &Path, out: &mut impl Write) -> Result<u8, Failure> {
    let text = crate::private_file::read(file, "signing key")
        .map_err(Failure::failed)?
        .ok_or_else(|| Failure::usage(format!("no such file `{}`", file.display())))?;
    let key = SigningKey::parse(&text)
        .map_err(|error| Failure::usage(format!("`{}`: {error}", file.display())))?;
    writeln!(out, "{}", key.public_key())?;
    Ok(exit::SUCCESS)
}
