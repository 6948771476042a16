//! Content hashing. This is the only module that names the hash algorithm (blake3): everything
//! else talks about [`ContentHash`] and [`KeyHasher`], so changing the algorithm is a one-file
//! change plus a bump of [`KEY_SCHEME_VERSION`].

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// Bumped whenever the way keys are derived changes, so old cache records are simply misses.
pub const KEY_SCHEME_VERSION: u32 = 2;

/// A 256-bit content hash, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Hashes a file by streaming it; memory use does not grow with the file.
    pub fn of_file(path: &Path) -> std::io::Result<ContentHash> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(ContentHash(*hasher.finalize().as_bytes()))
    }

    pub fn to_hex(&self) -> String {
        String::from_utf8(self.hex_bytes().to_vec()).expect("hex digits are ASCII")
    }

    /// The hex digits without an allocation (keys hash them for every input blob).
    pub fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (index, byte) in self.0.iter().enumerate() {
            text[2 * index] = DIGITS[usize::from(byte >> 4)];
            text[2 * index + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        text
    }

    /// The first 12 hex digits: enough to tell keys apart on screen.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex_bytes();
        formatter.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ContentHash({})", self.short())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a content hash (expected 64 hex digits)")]
pub struct ParseHashError(String);

impl FromStr for ContentHash {
    type Err = ParseHashError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ParseHashError(text.to_string()));
        }
        // Every byte is an ASCII hex digit (checked above).
        let value = |digit: u8| match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        };
        let mut bytes = [0u8; 32];
        for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            bytes[index] = value(pair[0]) << 4 | value(pair[1]);
        }
        Ok(ContentHash(bytes))
    }
}

// Written and read as 64 hex digits without an allocation: a plan or a no-op run writes and
// reads a few of them per node.
impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex_bytes();
        serializer.serialize_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexDigits;
        impl serde::de::Visitor<'_> for HexDigits {
            type Value = ContentHash;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                // What `String` says, so a damaged record reads as it did.
                formatter.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ContentHash, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexDigits)
    }
}

/// Builds a hash from labelled parts. Every part is length-prefixed, so two different sequences
/// of parts can never produce the same byte stream.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    pub fn new(domain: &str) -> KeyHasher {
        let mut hasher = KeyHasher(blake3::Hasher::new());
        hasher.part("domain", domain.as_bytes());
        hasher.part("scheme", &KEY_SCHEME_VERSION.to_le_bytes());
        hasher
    }

    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update(&(label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let hash = ContentHash::of_bytes(b"tpipe");
        assert_eq!(hash.to_hex().parse::<ContentHash>().unwrap(), hash);
        assert!("xyz".parse::<ContentHash>().is_err());
    }

    #[test]
    fn parts_are_length_prefixed() {
        let joined = KeyHasher::new("t").part("a", b"bc").finish();
        let split = KeyHasher::new("t").part("ab", b"c").finish();
        assert_ne!(joined, split);
    }
}
