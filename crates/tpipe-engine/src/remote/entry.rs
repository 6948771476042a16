//! The checks a downloaded entry must pass before the cache admits any of it, and where an
//! entry's parts live on a remote.

use crate::cache::RecordProblem;
use crate::hash::ContentHash;
use crate::record::{OutputRef, Record};

/// Why a downloaded entry is refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("record unreadable: {0}")]
    Record(#[from] RecordProblem),
    #[error("output name `{}` is not a plain file name", .0.escape_debug())]
    OutputName(String),
    #[error("output `{output}` (blob {blob}) is missing on the remote")]
    MissingBlob { output: String, blob: String },
    #[error("output `{output}` (blob {blob}) has {actual} bytes where the record says {expected} (a truncated or unfinished upload)")]
    Truncated {
        output: String,
        blob: String,
        actual: usize,
        expected: u64,
    },
    #[error("output `{output}` (blob {blob}) is corrupt: its content hashes to {actual}")]
    Corrupt {
        output: String,
        blob: String,
        actual: String,
    },
    /// Whole and consistent, but not vouched for by a trusted key (see `signature`).
    #[error("{0}")]
    Untrusted(#[from] crate::signature::TrustProblem),
}

pub fn record_path(key: &ContentHash) -> String {
    format!("records/{key}.json")
}

pub fn blob_path(hash: &ContentHash) -> String {
    let hex = hash.to_hex();
    format!("blobs/{}/{hex}", &hex[..2])
}

/// A record downloaded for `key`: it parses, names `key`, its content digest matches its
/// outputs, and its blob names are hashes (the parser admits nothing else, so no blob can name a
/// path outside the cache). Output names become file names when outputs are published, so they
/// must be plain names too.
pub fn check_record(key: &ContentHash, bytes: &[u8]) -> Result<Record, EntryProblem> {
    let record = crate::cache::parse_record(key, bytes)?;
    for name in record.outputs.keys() {
        check_output_name(name)?;
    }
    Ok(record)
}

fn check_output_name(name: &str) -> Result<(), EntryProblem> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with(|first: char| first.is_whitespace());
    if plain {
        Ok(())
    } else {
        Err(EntryProblem::OutputName(name.to_string()))
    }
}

/// A downloaded blob: exactly the size the record says, and hashing to its name.
pub fn check_blob(output: &str, reference: &OutputRef, bytes: &[u8]) -> Result<(), EntryProblem> {
    if bytes.len() as u64 != reference.size {
        return Err(EntryProblem::Truncated {
            output: output.to_string(),
            blob: reference.blob.short(),
            actual: bytes.len(),
            expected: reference.size,
        });
    }
    let actual = ContentHash::of_bytes(bytes);
    if actual != reference.blob {
        return Err(EntryProblem::Corrupt {
            output: output.to_string(),
            blob: reference.blob.short(),
            actual: actual.short(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_must_be_plain() {
        for good in ["weights.safetensors", "value", "figure-2.png"] {
            assert!(check_output_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../escape",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "nul\0",
        ] {
            assert!(check_output_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blobs_are_checked_for_size_then_hash() {
        let reference = OutputRef {
            blob: ContentHash::of_bytes(b"41"),
            size: 2,
        };
        assert!(check_blob("value", &reference, b"41").is_ok());
        assert!(check_blob("value", &reference, b"4")
            .unwrap_err()
            .to_string()
            .contains("has 1 bytes where the record says 2"));
        assert!(check_blob("value", &reference, b"42")
            .unwrap_err()
            .to_string()
            .contains("is corrupt"));
    }
}
