//! The checks a downloaded entry must pass before the cache admits any of it, and where an
//! entry's parts live on a remote.

use crate::hash::ContentHash;
use crate::record::{OutputRef, Record};

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
pub fn check_record(key: &ContentHash, bytes: &[u8]) -> Result<Record, String> {
    let record = crate::cache::parse_record(key, bytes)
        .map_err(|reason| format!("record unreadable: {reason}"))?;
    for name in record.outputs.keys() {
        check_output_name(name)?;
    }
    Ok(record)
}

fn check_output_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with(|first: char| first.is_whitespace());
    if plain {
        Ok(())
    } else {
        Err(format!(
            "output name `{}` is not a plain file name",
            name.escape_debug()
        ))
    }
}

/// A downloaded blob: exactly the size the record says, and hashing to its name.
pub fn check_blob(output: &str, reference: &OutputRef, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() as u64 != reference.size {
        return Err(format!(
            "output `{output}` (blob {}) has {} bytes where the record says {} (a truncated or unfinished upload)",
            reference.blob.short(),
            bytes.len(),
            reference.size
        ));
    }
    let actual = ContentHash::of_bytes(bytes);
    if actual != reference.blob {
        return Err(format!(
            "output `{output}` (blob {}) is corrupt: its content hashes to {}",
            reference.blob.short(),
            actual.short()
        ));
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
            .contains("has 1 bytes where the record says 2"));
        assert!(check_blob("value", &reference, b"42")
            .unwrap_err()
            .contains("is corrupt"));
    }
}
