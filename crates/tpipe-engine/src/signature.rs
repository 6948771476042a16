//! Who vouches for a record: ed25519 signatures over a record's key and content digest, and the
//! trust rule a record fetched from a remote must pass. The only module that names ed25519.
//!
//! Keys and signatures are written as Nix writes those of its binary caches: `name:base64`,
//! where the name says whose key it is (`lab-ci-1`) and a record carries its signatures as a
//! list of such strings. What is signed is the record's key (its action: kind, version,
//! parameters, input digests) and its content digest (every output's name, size and blob
//! hash), so a signature covers every byte a build downstream reads; a record's metrics and
//! provenance are what its author says, not what is vouched for.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;

use crate::hash::ContentHash;
use crate::record::{Record, RECORD_FORMAT};

/// Why a key's text is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key's name must be non-empty and hold no `:` or white space, not `{0}` (hint: something like `alice-laptop-1`)")]
    Name(String),
    #[error("not a {what} of the form `name:base64` (hint: `tpipe key generate` writes one)")]
    Shape { what: &'static str },
    #[error("the {what} `{name}` does not decode to {expected} bytes")]
    Bytes {
        what: &'static str,
        name: String,
        expected: usize,
    },
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
}

/// A secret key that signs what `push` uploads.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

/// A public key, as `trusted_keys` lists them.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        Err(KeyError::Name(name.to_string()))
    } else {
        Ok(())
    }
}

/// `name:base64` → the name and exactly `N` decoded bytes.
fn split_key<const N: usize>(
    text: &str,
    what: &'static str,
) -> Result<(String, [u8; N]), KeyError> {
    let (name, encoded) = text
        .trim()
        .split_once(':')
        .ok_or(KeyError::Shape { what })?;
    check_name(name)?;
    let bytes = BASE64
        .decode(encoded)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| KeyError::Bytes {
            what,
            name: name.to_string(),
            expected: N,
        })?;
    Ok((name.to_string(), bytes))
}

/// The bytes a signature covers: the record format, its key and its content digest.
fn signed_message(key: &ContentHash, content: &ContentHash) -> Vec<u8> {
    format!(
        "tpipe-record-{RECORD_FORMAT}:{}:{}",
        key.to_hex(),
        content.to_hex()
    )
    .into_bytes()
}

impl SigningKey {
    /// A new key named `name`, from the operating system's random source.
    pub fn generate(name: &str) -> Result<SigningKey, KeyError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        Ok(SigningKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Reads `name:base64` of the 64 bytes Nix writes (the seed, then the public key).
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let what = "secret key";
        let (name, bytes) = split_key::<64>(text, what)?;
        let key =
            ed25519_dalek::SigningKey::from_keypair_bytes(&bytes).map_err(|_| KeyError::Bytes {
                what,
                name: name.clone(),
                expected: 64,
            })?;
        Ok(SigningKey { name, key })
    }

    /// The text a key file holds (the secret: write it only to a private file).
    pub fn to_secret_text(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(self.key.to_keypair_bytes())
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// This key's signature of a record with `key` and `content`, as a record lists it.
    pub fn sign(&self, key: &ContentHash, content: &ContentHash) -> String {
        let signature = self.key.sign(&signed_message(key, content));
        format!("{}:{}", self.name, BASE64.encode(signature.to_bytes()))
    }

    /// `record` with this key's signature added (once; the others it carries stay).
    pub fn sign_record(&self, record: &mut Record) {
        let signature = self.sign(&record.key, &record.content);
        if !record.signatures.contains(&signature) {
            record.signatures.push(signature);
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SigningKey({}, secret hidden)", self.name)
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let what = "public key";
        let (name, bytes) = split_key::<32>(text, what)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Bytes {
            what,
            name: name.clone(),
            expected: 32,
        })?;
        Ok(PublicKey { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Strict verification: refuses weak keys and malleable signatures, so a signature is
    /// valid for one message only (libsodium, which Nix uses, refuses the same).
    fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}:{}",
            self.name,
            BASE64.encode(self.key.as_bytes())
        )
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "PublicKey({self})")
    }
}

/// What one of a record's signatures is worth to a [`TrustPolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerStatus {
    /// A valid signature by a trusted key.
    Trusted(String),
    /// By a key that is not trusted (its validity unknown: its public key is not at hand).
    NotTrusted(String),
    /// Names a trusted key but does not verify: the record changed after it was signed.
    Mismatch(String),
    /// Not of the form `name:base64` of 64 bytes.
    Unreadable,
}

impl std::fmt::Display for SignerStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerStatus::Trusted(name) => write!(formatter, "`{name}` (trusted)"),
            SignerStatus::NotTrusted(name) => write!(formatter, "`{name}` (not a trusted key)"),
            SignerStatus::Mismatch(name) => {
                write!(formatter, "`{name}` (does NOT match the record)")
            }
            SignerStatus::Unreadable => formatter.write_str("an unreadable signature"),
        }
    }
}

/// Why a fetched record is refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustProblem {
    #[error("it is not signed, and only records signed by a trusted key ({trusted}) are used (hint: whoever pushed it sets `signing_key`; or set `require_signatures = false`)")]
    Unsigned { trusted: String },
    #[error("it is signed by {signers}, not by a trusted key ({trusted}) (hint: add the signer's public key to `trusted_keys` if you trust it)")]
    NotTrusted { signers: String, trusted: String },
    #[error("its signature by `{signer}` does not match its key and content: it was changed after it was signed")]
    Mismatch { signer: String },
}

/// Whose signatures a fetched record needs: `trusted_keys` and `require_signatures`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustPolicy {
    trusted: Vec<PublicKey>,
    required: bool,
}

impl TrustPolicy {
    pub fn new(trusted: Vec<PublicKey>, required: bool) -> TrustPolicy {
        TrustPolicy { trusted, required }
    }

    pub fn trusted_keys(&self) -> &[PublicKey] {
        &self.trusted
    }

    pub fn requires_signatures(&self) -> bool {
        self.required
    }

    /// Each of the record's signatures, judged.
    pub fn signers(&self, record: &Record) -> Vec<SignerStatus> {
        let message = signed_message(&record.key, &record.content);
        record
            .signatures
            .iter()
            .map(|text| {
                let Ok((name, signature)) = split_key::<64>(text, "signature") else {
                    return SignerStatus::Unreadable;
                };
                let mut named = self
                    .trusted
                    .iter()
                    .filter(|key| key.name == name)
                    .peekable();
                if named.peek().is_none() {
                    SignerStatus::NotTrusted(name)
                } else if named.any(|key| key.verifies(&message, &signature)) {
                    SignerStatus::Trusted(name)
                } else {
                    SignerStatus::Mismatch(name)
                }
            })
            .collect()
    }

    /// Whether a record fetched from a remote may be used: with signatures required, one valid
    /// signature by a trusted key; in any case no signature by a trusted key that fails (a
    /// record changed after it was signed is refused even where signatures are optional).
    /// Returns the trusted signer, if any.
    pub fn check(&self, record: &Record) -> Result<Option<String>, TrustProblem> {
        let signers = self.signers(record);
        if let Some(name) = signers.iter().find_map(|status| match status {
            SignerStatus::Trusted(name) => Some(name.clone()),
            _ => None,
        }) {
            return Ok(Some(name));
        }
        if let Some(signer) = signers.iter().find_map(|status| match status {
            SignerStatus::Mismatch(name) => Some(name.clone()),
            _ => None,
        }) {
            return Err(TrustProblem::Mismatch { signer });
        }
        if !self.required {
            return Ok(None);
        }
        let trusted = self
            .trusted
            .iter()
            .map(|key| format!("`{}`", key.name))
            .collect::<Vec<_>>()
            .join(", ");
        if signers.is_empty() {
            return Err(TrustProblem::Unsigned { trusted });
        }
        let signers = signers
            .iter()
            .map(|status| match status {
                SignerStatus::NotTrusted(name) => format!("`{name}`"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(TrustProblem::NotTrusted { signers, trusted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metrics, Provenance};

    fn record(content: &[u8]) -> Record {
        Record {
            format: RECORD_FORMAT,
            key: ContentHash::of_bytes(b"key"),
            node: "n".into(),
            kind: "number".into(),
            kind_version: 1,
            params: Default::default(),
            inputs: vec![],
            external: vec![],
            outputs: Default::default(),
            content: ContentHash::of_bytes(content),
            metrics: Metrics::from_value(&serde_json::json!({})),
            headline: None,
            signatures: vec![],
            provenance: Provenance::default(),
        }
    }

    #[test]
    fn keys_round_trip_through_their_text() {
        let key = SigningKey::generate("alice-1").unwrap();
        let again = SigningKey::parse(&key.to_secret_text()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = PublicKey::parse(&key.public_key().to_string()).unwrap();
        assert_eq!(public, key.public_key());
        assert!(format!("{key:?}").contains("secret hidden"));
        assert!(SigningKey::generate("a:b").is_err());
        assert!(PublicKey::parse("alice-1:AAAA").is_err());
        assert!(PublicKey::parse("no colon").is_err());
    }

    #[test]
    fn the_trust_rule_takes_a_trusted_signature_and_refuses_the_rest() {
        let ci = SigningKey::generate("ci").unwrap();
        let laptop = SigningKey::generate("laptop").unwrap();
        let policy = TrustPolicy::new(vec![ci.public_key()], true);

        let mut signed = record(b"outputs");
        ci.sign_record(&mut signed);
        ci.sign_record(&mut signed);
        assert_eq!(
            signed.signatures.len(),
            1,
            "signing twice adds one signature"
        );
        assert_eq!(policy.check(&signed).unwrap().as_deref(), Some("ci"));

        let unsigned = record(b"outputs");
        assert!(matches!(
            policy.check(&unsigned),
            Err(TrustProblem::Unsigned { .. })
        ));

        let mut by_laptop = record(b"outputs");
        laptop.sign_record(&mut by_laptop);
        let problem = policy.check(&by_laptop).unwrap_err().to_string();
        assert!(
            problem.contains("signed by `laptop`, not by a trusted key (`ci`)"),
            "{problem}"
        );

        let mut tampered = signed.clone();
        tampered.content = ContentHash::of_bytes(b"other outputs");
        assert!(matches!(
            policy.check(&tampered),
            Err(TrustProblem::Mismatch { .. })
        ));

        // Without `require_signatures`, unsigned and unknown signers pass; a broken trusted
        // signature still does not.
        let lenient = TrustPolicy::new(vec![ci.public_key()], false);
        assert_eq!(lenient.check(&unsigned).unwrap(), None);
        assert_eq!(lenient.check(&by_laptop).unwrap(), None);
        assert!(lenient.check(&tampered).is_err());
        assert_eq!(
            lenient.signers(&tampered),
            vec![SignerStatus::Mismatch("ci".into())]
        );
    }
}
