//! Decoded image data sets, independent of any ML framework.
//!
//! A [`Dataset`] is a block of u8 pixels (NCHW, row-major) with one label per image. The
//! decoders in the submodules turn files on disk (IDX, CIFAR binary, image folders) or a seed
//! (the synthetic set) into datasets; [`Dataset::to_bytes`] turns one into the canonical bytes
//! the cache stores, so later nodes never decode PNGs or gzip again.
//!
//! Invariant: every decoder is deterministic — the same files (or seed) give the same dataset
//! and therefore the same bytes.

pub mod cifar;
pub mod fashion_mnist;
pub mod idx;
pub mod image_folder;
pub mod rng;
pub mod source;
pub mod split;
pub mod synthetic;

use serde::{Deserialize, Serialize};

/// Images with labels, as decoded from a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Pixel values 0..=255: image after image, channel after channel, row after row.
    pub pixels: Vec<u8>,
    /// One label per image; the index of its class in `class_names`.
    pub labels: Vec<u32>,
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// The name of each class, indexed by label.
    pub class_names: Vec<String>,
    /// A coarser label per image (CIFAR-100 super-classes, synthetic families), if the source
    /// has one; indexes `coarse_names`.
    pub coarse_labels: Option<Vec<u32>>,
    /// Names of the coarse groups; empty when there are no coarse labels.
    pub coarse_names: Vec<String>,
}

/// Why a dataset's fields do not agree with each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("{actual} pixel bytes for {count} images of {channels}×{height}×{width} (expected {expected})")]
    PixelCount {
        actual: usize,
        expected: usize,
        count: usize,
        channels: usize,
        height: usize,
        width: usize,
    },
    #[error("{labels} labels for {count} images")]
    LabelCount { labels: usize, count: usize },
    #[error("image {index} has label {label}, but there are only {classes} classes")]
    LabelOutOfRange {
        index: usize,
        label: u32,
        classes: usize,
    },
    #[error("{labels} coarse labels for {count} images")]
    CoarseLabelCount { labels: usize, count: usize },
    #[error("image {index} has coarse label {label}, but there are only {groups} coarse groups")]
    CoarseLabelOutOfRange {
        index: usize,
        label: u32,
        groups: usize,
    },
    #[error("{names} coarse names but no coarse labels")]
    CoarseNamesWithoutLabels { names: usize },
    #[error(
        "images must have 1 or 3 channels and a non-zero size, not {channels}×{height}×{width}"
    )]
    BadShape {
        channels: usize,
        height: usize,
        width: usize,
    },
}

/// Why bytes could not be read back as a dataset.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    #[error("dataset bytes are truncated: reading {what} needs {needed} bytes but only {available} are left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("these bytes are not an encoded dataset (they do not start with `TPIPEDS`)")]
    BadMagic,
    #[error(
        "dataset encoding version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the dataset header is invalid: {0}")]
    BadHeader(#[source] serde_json::Error),
    #[error("{extra} unexpected bytes after the end of the dataset")]
    TrailingBytes { extra: usize },
    #[error("the decoded dataset is inconsistent: {0}")]
    Inconsistent(#[from] DatasetError),
}

const MAGIC: &[u8; 8] = b"TPIPEDS\0";
/// Bumped whenever the layout of [`Dataset::to_bytes`] changes.
pub const ENCODING_VERSION: u32 = 1;

/// The JSON header of the encoding. Field order is fixed by the struct, so the text is canonical.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
    class_names: Vec<String>,
    /// Present exactly when the dataset has coarse labels.
    coarse_names: Option<Vec<String>>,
}

impl Dataset {
    /// An empty dataset with the given shape and classes (a starting point for `push`).
    pub fn empty(
        channels: usize,
        height: usize,
        width: usize,
        class_names: Vec<String>,
    ) -> Dataset {
        Dataset {
            pixels: Vec::new(),
            labels: Vec::new(),
            count: 0,
            channels,
            height,
            width,
            class_names,
            coarse_labels: None,
            coarse_names: Vec::new(),
        }
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let length = self.image_len();
        &self.pixels[index * length..(index + 1) * length]
    }

    /// Appends one image; `pixels` must hold exactly one image.
    pub fn push(&mut self, pixels: &[u8], label: u32) {
        assert_eq!(
            pixels.len(),
            self.image_len(),
            "an image of the wrong size was pushed"
        );
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
        self.count += 1;
    }

    /// How many images each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }

    /// Checks that the fields agree: sizes, label ranges, coarse labels.
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !matches!(self.channels, 1 | 3) || self.height == 0 || self.width == 0 {
            return Err(DatasetError::BadShape {
                channels: self.channels,
                height: self.height,
                width: self.width,
            });
        }
        let expected = self.count * self.image_len();
        if self.pixels.len() != expected {
            return Err(DatasetError::PixelCount {
                actual: self.pixels.len(),
                expected,
                count: self.count,
                channels: self.channels,
                height: self.height,
                width: self.width,
            });
        }
        if self.labels.len() != self.count {
            return Err(DatasetError::LabelCount {
                labels: self.labels.len(),
                count: self.count,
            });
        }
        if let Some((index, &label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label as usize >= self.num_classes())
        {
            return Err(DatasetError::LabelOutOfRange {
                index,
                label,
                classes: self.num_classes(),
            });
        }
        match &self.coarse_labels {
            Some(coarse) => {
                if coarse.len() != self.count {
                    return Err(DatasetError::CoarseLabelCount {
                        labels: coarse.len(),
                        count: self.count,
                    });
                }
                let groups = self.coarse_names.len();
                if let Some((index, &label)) = coarse
                    .iter()
                    .enumerate()
                    .find(|(_, &label)| label as usize >= groups)
                {
                    return Err(DatasetError::CoarseLabelOutOfRange {
                        index,
                        label,
                        groups,
                    });
                }
            }
            None if !self.coarse_names.is_empty() => {
                return Err(DatasetError::CoarseNamesWithoutLabels {
                    names: self.coarse_names.len(),
                });
            }
            None => {}
        }
        Ok(())
    }

    /// The images at `indices`, in that order, with the same classes.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let length = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * length);
        for &index in indices {
            pixels.extend_from_slice(self.image(index));
        }
        Dataset {
            pixels,
            labels: indices.iter().map(|&index| self.labels[index]).collect(),
            count: indices.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
            coarse_labels: self
                .coarse_labels
                .as_ref()
                .map(|coarse| indices.iter().map(|&index| coarse[index]).collect()),
            coarse_names: self.coarse_names.clone(),
        }
    }

    /// The canonical encoding: the same dataset always gives the same bytes.
    ///
    /// Layout: `TPIPEDS\0`, version (u32 LE), header length (u32 LE), a JSON header (shape and
    /// names), then the pixels, then each label as u32 LE, then each coarse label (if any).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            count: self.count,
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
            coarse_names: self
                .coarse_labels
                .as_ref()
                .map(|_| self.coarse_names.clone()),
        };
        let header = serde_json::to_vec(&header).expect("a header always serialises");
        let coarse_len = self.coarse_labels.as_ref().map_or(0, Vec::len);
        let mut bytes = Vec::with_capacity(
            16 + header.len() + self.pixels.len() + 4 * (self.labels.len() + coarse_len),
        );
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&ENCODING_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&self.pixels);
        for label in &self.labels {
            bytes.extend_from_slice(&label.to_le_bytes());
        }
        for label in self.coarse_labels.iter().flatten() {
            bytes.extend_from_slice(&label.to_le_bytes());
        }
        bytes
    }

    /// Reads bytes written by [`Dataset::to_bytes`], checking every length and label.
    pub fn from_bytes(bytes: &[u8]) -> Result<Dataset, EncodingError> {
        let mut reader = ByteReader { bytes, position: 0 };
        if reader.take("the magic number", MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
            return Err(EncodingError::BadMagic);
        }
        let version = reader.u32("the version")?;
        if version != ENCODING_VERSION {
            return Err(EncodingError::UnsupportedVersion {
                found: version,
                supported: ENCODING_VERSION,
            });
        }
        let header_len = reader.u32("the header length")? as usize;
        let header: Header = serde_json::from_slice(reader.take("the header", header_len)?)
            .map_err(EncodingError::BadHeader)?;
        let pixel_len = header
            .count
            .checked_mul(header.channels)
            .and_then(|product| product.checked_mul(header.height))
            .and_then(|product| product.checked_mul(header.width))
            .ok_or(EncodingError::Truncated {
                what: "the pixels",
                needed: usize::MAX,
                available: reader.remaining(),
            })?;
        let pixels = reader.take("the pixels", pixel_len)?.to_vec();
        let labels = reader.u32_list("the labels", header.count)?;
        let coarse_labels = match header.coarse_names {
            Some(_) => Some(reader.u32_list("the coarse labels", header.count)?),
            None => None,
        };
        if reader.remaining() > 0 {
            return Err(EncodingError::TrailingBytes {
                extra: reader.remaining(),
            });
        }
        let dataset = Dataset {
            pixels,
            labels,
            count: header.count,
            channels: header.channels,
            height: header.height,
            width: header.width,
            class_names: header.class_names,
            coarse_labels,
            coarse_names: header.coarse_names.unwrap_or_default(),
        };
        dataset.validate()?;
        Ok(dataset)
    }
}

/// Reads a byte slice front to back, reporting what it was reading when bytes run out.
struct ByteReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, what: &'static str, needed: usize) -> Result<&'a [u8], EncodingError> {
        if needed > self.remaining() {
            return Err(EncodingError::Truncated {
                what,
                needed,
                available: self.remaining(),
            });
        }
        let slice = &self.bytes[self.position..self.position + needed];
        self.position += needed;
        Ok(slice)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, EncodingError> {
        let bytes = self.take(what, 4)?;
        Ok(u32::from_le_bytes(
            bytes.try_into().expect("took four bytes"),
        ))
    }

    fn u32_list(&mut self, what: &'static str, count: usize) -> Result<Vec<u32>, EncodingError> {
        let needed = count.saturating_mul(4);
        let bytes = self.take(what, needed)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes(chunk.try_into().expect("chunks of four")))
            .collect())
    }
}

/// Both halves a source provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainTest {
    pub train: Dataset,
    pub test: Dataset,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small dataset with two classes and coarse labels, for tests across the data layer.
    pub(crate) fn sample_dataset() -> Dataset {
        let mut dataset = Dataset::empty(1, 2, 3, vec!["cat".into(), "dog".into(), "ship".into()]);
        for index in 0..5u8 {
            dataset.push(
                &[index, index + 1, index + 2, 200, 201, 255 - index],
                u32::from(index % 3),
            );
        }
        dataset.coarse_labels = Some(
            dataset
                .labels
                .iter()
                .map(|&label| u32::from(label == 2))
                .collect(),
        );
        dataset.coarse_names = vec!["animal".into(), "vehicle".into()];
        dataset
    }

    #[test]
    fn encoding_round_trips() {
        let dataset = sample_dataset();
        assert_eq!(Dataset::from_bytes(&dataset.to_bytes()).unwrap(), dataset);
        let mut plain = dataset.clone();
        plain.coarse_labels = None;
        plain.coarse_names.clear();
        assert_eq!(Dataset::from_bytes(&plain.to_bytes()).unwrap(), plain);
    }

    #[test]
    fn encoding_is_byte_stable() {
        let bytes = sample_dataset().to_bytes();
        assert_eq!(bytes, sample_dataset().to_bytes());
        // Pinned so that an accidental layout change is noticed (and ENCODING_VERSION bumped).
        let header = br#"{"count":5,"channels":1,"height":2,"width":3,"class_names":["cat","dog","ship"],"coarse_names":["animal","vehicle"]}"#;
        assert_eq!(&bytes[..8], b"TPIPEDS\0");
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &(header.len() as u32).to_le_bytes());
        assert_eq!(&bytes[16..16 + header.len()], header);
        assert_eq!(bytes.len(), 16 + header.len() + 5 * 6 + 5 * 4 + 5 * 4);
        assert_eq!(
            crate::hash::ContentHash::of_bytes(&bytes),
            crate::hash::ContentHash::of_bytes(&Dataset::from_bytes(&bytes).unwrap().to_bytes())
        );
    }

    #[test]
    fn truncated_bytes_are_reported_with_what_was_missing() {
        let bytes = sample_dataset().to_bytes();
        for cut in [0, 5, 10, 14, 30, bytes.len() - 41, bytes.len() - 1] {
            let error = Dataset::from_bytes(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    error,
                    EncodingError::Truncated { .. } | EncodingError::BadMagic
                ),
                "cut at {cut}: {error}"
            );
        }
        let error = Dataset::from_bytes(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("reading the coarse labels needs 20 bytes but only 19 are left"),
            "{error}"
        );
    }

    #[test]
    fn invalid_bytes_are_rejected() {
        let bytes = sample_dataset().to_bytes();
        assert!(matches!(
            Dataset::from_bytes(b"PNG not a dataset at all"),
            Err(EncodingError::BadMagic)
        ));

        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(
            Dataset::from_bytes(&newer),
            Err(EncodingError::UnsupportedVersion {
                found: 7,
                supported: 1
            })
        ));

        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Dataset::from_bytes(&longer),
            Err(EncodingError::TrailingBytes { extra: 1 })
        ));

        let mut bad_header = bytes.clone();
        bad_header[16] = b'[';
        assert!(matches!(
            Dataset::from_bytes(&bad_header),
            Err(EncodingError::BadHeader(_))
        ));

        // The first label (0) becomes 9, beyond the three classes.
        let mut bad_label = bytes.clone();
        let labels_start = bytes.len() - 40;
        bad_label[labels_start] = 9;
        let error = Dataset::from_bytes(&bad_label).unwrap_err().to_string();
        assert!(
            error.contains("image 0 has label 9, but there are only 3 classes"),
            "{error}"
        );
    }

    #[test]
    fn validate_catches_disagreeing_fields() {
        let mut dataset = sample_dataset();
        dataset.pixels.pop();
        assert!(matches!(
            dataset.validate(),
            Err(DatasetError::PixelCount { .. })
        ));
        let mut dataset = sample_dataset();
        dataset.coarse_labels.as_mut().unwrap()[4] = 2;
        assert!(matches!(
            dataset.validate(),
            Err(DatasetError::CoarseLabelOutOfRange {
                index: 4,
                label: 2,
                groups: 2
            })
        ));
        let mut dataset = sample_dataset();
        dataset.channels = 2;
        assert!(matches!(
            dataset.validate(),
            Err(DatasetError::BadShape { .. })
        ));
    }

    #[test]
    fn select_keeps_images_labels_and_coarse_labels_together() {
        let dataset = sample_dataset();
        let picked = dataset.select(&[4, 1]);
        assert_eq!(picked.count, 2);
        assert_eq!(picked.image(0), dataset.image(4));
        assert_eq!(picked.image(1), dataset.image(1));
        assert_eq!(picked.labels, vec![1, 1]);
        assert_eq!(picked.coarse_labels, Some(vec![0, 0]));
        assert_eq!(picked.class_counts(), vec![0, 2, 0]);
        picked.validate().unwrap();
    }
}
