//! The IDX format of MNIST and Fashion-MNIST: `train-images-idx3-ubyte` and friends, gzipped or
//! not.
//!
//! A file starts with two zero bytes, a type byte (0x08 = unsigned bytes), the number of
//! dimensions, then each dimension as a big-endian u32, then the data. Images are 3-dimensional
//! (count, rows, columns), labels 1-dimensional.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;

#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` looks gzipped but cannot be decompressed: {source}")]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not an IDX {expected} file: it starts with {found:02x?}, not {wanted:02x?}"
    )]
    BadMagic {
        path: PathBuf,
        expected: &'static str,
        found: Vec<u8>,
        wanted: [u8; 4],
    },
    #[error("`{path}` is truncated: its header promises {expected} bytes but it holds {actual}")]
    Truncated {
        path: PathBuf,
        expected: usize,
        actual: usize,
    },
    #[error("`{path}` has {extra} bytes after the data its header describes")]
    TrailingBytes { path: PathBuf, extra: usize },
    #[error("`{images}` holds {image_count} images but `{labels}` holds {label_count} labels")]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        image_count: usize,
        label_count: usize,
    },
    #[error("`{path}` holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("no `{name}` (or `{name}.gz`) in `{dir}`")]
    MissingFile { dir: PathBuf, name: String },
}

const IMAGES_MAGIC: [u8; 4] = [0, 0, 0x08, 3];
const LABELS_MAGIC: [u8; 4] = [0, 0, 0x08, 1];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a file, decompressing it if it starts with the gzip magic (whatever its name).
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = std::fs::read(path).map_err(|source| IdxError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    gunzip_if_gzipped(path, raw)
}

/// `bytes` decompressed if they are gzip, else unchanged. `path` only names them in errors.
pub fn gunzip_if_gzipped(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut decompressed = Vec::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut decompressed)
        .map_err(|source| IdxError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(decompressed)
}

/// Images from IDX bytes: (count, rows, columns, pixels).
fn parse_images(path: &Path, bytes: &[u8]) -> Result<(usize, usize, usize, Vec<u8>), IdxError> {
    let dims = parse_header(path, bytes, IMAGES_MAGIC, "image")?;
    let (count, rows, columns) = (dims[0], dims[1], dims[2]);
    let data_len = count
        .checked_mul(rows)
        .and_then(|product| product.checked_mul(columns))
        .unwrap_or(usize::MAX);
    let data = checked_data(path, bytes, 4 + 4 * 3, data_len)?;
    if count == 0 || rows == 0 || columns == 0 {
        return Err(IdxError::Empty {
            path: path.to_path_buf(),
            what: "images",
        });
    }
    Ok((count, rows, columns, data.to_vec()))
}

fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u32>, IdxError> {
    let dims = parse_header(path, bytes, LABELS_MAGIC, "label")?;
    let data = checked_data(path, bytes, 4 + 4, dims[0])?;
    Ok(data.iter().map(|&label| u32::from(label)).collect())
}

fn parse_header(
    path: &Path,
    bytes: &[u8],
    wanted: [u8; 4],
    expected: &'static str,
) -> Result<Vec<usize>, IdxError> {
    if bytes.len() < 4 || bytes[..4] != wanted {
        return Err(IdxError::BadMagic {
            path: path.to_path_buf(),
            expected,
            found: bytes[..bytes.len().min(4)].to_vec(),
            wanted,
        });
    }
    let dimensions = usize::from(wanted[3]);
    let header_len = 4 + 4 * dimensions;
    if bytes.len() < header_len {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected: header_len,
            actual: bytes.len(),
        });
    }
    Ok(bytes[4..header_len]
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes(chunk.try_into().expect("chunks of four")) as usize)
        .collect())
}

fn checked_data<'a>(
    path: &Path,
    bytes: &'a [u8],
    header_len: usize,
    data_len: usize,
) -> Result<&'a [u8], IdxError> {
    let expected = header_len.saturating_add(data_len);
    if bytes.len() < expected {
        return Err(IdxError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual: bytes.len(),
        });
    }
    if bytes.len() > expected {
        return Err(IdxError::TrailingBytes {
            path: path.to_path_buf(),
            extra: bytes.len() - expected,
        });
    }
    Ok(&bytes[header_len..])
}

/// A dataset from already-decompressed IDX bytes; the paths only name the files in errors.
/// Classes are named by their number ("0", "1", …) up to the largest label.
pub fn decode_idx_pair(
    images_path: &Path,
    images: &[u8],
    labels_path: &Path,
    labels: &[u8],
) -> Result<Dataset, IdxError> {
    let (count, height, width, pixels) = parse_images(images_path, images)?;
    let labels_vec = parse_labels(labels_path, labels)?;
    if labels_vec.len() != count {
        return Err(IdxError::CountMismatch {
            images: images_path.to_path_buf(),
            labels: labels_path.to_path_buf(),
            image_count: count,
            label_count: labels_vec.len(),
        });
    }
    let classes = labels_vec
        .iter()
        .max()
        .map_or(0, |&largest| largest as usize + 1);
    let dataset = Dataset {
        pixels,
        labels: labels_vec,
        count,
        channels: 1,
        height,
        width,
        class_names: (0..classes).map(|class| class.to_string()).collect(),
        coarse_labels: None,
        coarse_names: Vec::new(),
    };
    debug_assert_eq!(dataset.validate(), Ok(()));
    Ok(dataset)
}

/// Loads an IDX image file and its label file (each gzipped or not).
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<Dataset, IdxError> {
    let image_bytes = read_maybe_gzipped(images)?;
    let label_bytes = read_maybe_gzipped(labels)?;
    decode_idx_pair(images, &image_bytes, labels, &label_bytes)
}

/// The four files of an MNIST-layout directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl IdxFiles {
    pub fn all(&self) -> [&Path; 4] {
        [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
    }
}

/// The standard file names, without `.gz`.
pub const IDX_FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Finds `name`, `name.gz`, or the dotted variant (`train-images.idx3-ubyte`) some archives use.
fn find_variant(dir: &Path, name: &str) -> Option<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
    .into_iter()
    .map(|candidate| dir.join(candidate))
    .find(|candidate| candidate.is_file())
}

/// The four IDX files in `dir`, or an error naming the first one missing.
pub fn find_idx_files(dir: &Path) -> Result<IdxFiles, IdxError> {
    let mut found = Vec::with_capacity(4);
    for name in IDX_FILE_NAMES {
        let path = find_variant(dir, name).ok_or_else(|| IdxError::MissingFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })?;
        found.push(path);
    }
    let [train_images, train_labels, test_images, test_labels] =
        found.try_into().expect("four names");
    Ok(IdxFiles {
        train_images,
        train_labels,
        test_images,
        test_labels,
    })
}

/// Loads the train and test sets of an MNIST-layout directory. Both get the same class names
/// (numbers up to the largest label in either set).
pub fn load_idx_dir(dir: &Path) -> Result<super::TrainTest, IdxError> {
    let files = find_idx_files(dir)?;
    let mut train = load_idx_pair(&files.train_images, &files.train_labels)?;
    let mut test = load_idx_pair(&files.test_images, &files.test_labels)?;
    let classes = train.num_classes().max(test.num_classes());
    let names: Vec<String> = (0..classes).map(|class| class.to_string()).collect();
    train.class_names = names.clone();
    test.class_names = names;
    Ok(super::TrainTest { train, test })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn image_file_bytes(count: u32, rows: u32, columns: u32, pixels: &[u8]) -> Vec<u8> {
        let mut bytes = IMAGES_MAGIC.to_vec();
        for dimension in [count, rows, columns] {
            bytes.extend_from_slice(&dimension.to_be_bytes());
        }
        bytes.extend_from_slice(pixels);
        bytes
    }

    pub(crate) fn label_file_bytes(labels: &[u8]) -> Vec<u8> {
        let mut bytes = LABELS_MAGIC.to_vec();
        bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        bytes.extend_from_slice(labels);
        bytes
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Writes the four files of a tiny MNIST-layout directory (3 train, 2 test images of 2×2).
    pub(crate) fn write_idx_dir(dir: &Path, gzipped: bool) {
        let files = [
            image_file_bytes(3, 2, 2, &[0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]),
            label_file_bytes(&[0, 2, 1]),
            image_file_bytes(2, 2, 2, &[5, 5, 5, 5, 6, 6, 6, 6]),
            label_file_bytes(&[3, 0]),
        ];
        for (name, bytes) in IDX_FILE_NAMES.iter().zip(files) {
            if gzipped {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn loads_plain_and_gzipped_directories_alike() {
        let plain = tempfile::tempdir().unwrap();
        write_idx_dir(plain.path(), false);
        let zipped = tempfile::tempdir().unwrap();
        write_idx_dir(zipped.path(), true);
        let from_plain = load_idx_dir(plain.path()).unwrap();
        assert_eq!(from_plain, load_idx_dir(zipped.path()).unwrap());

        let train = &from_plain.train;
        assert_eq!(
            (train.count, train.channels, train.height, train.width),
            (3, 1, 2, 2)
        );
        assert_eq!(train.image(1), &[10, 11, 12, 13]);
        assert_eq!(train.labels, vec![0, 2, 1]);
        // The test set has label 3, so both sets get four classes.
        assert_eq!(train.class_names, vec!["0", "1", "2", "3"]);
        assert_eq!(from_plain.test.labels, vec![3, 0]);
        assert_eq!(from_plain.test.class_names, train.class_names);
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_idx_dir(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let error = load_idx_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.starts_with("no `t10k-labels-idx1-ubyte` (or `t10k-labels-idx1-ubyte.gz`) in"),
            "{error}"
        );
    }

    #[test]
    fn swapped_files_are_reported_by_their_magic() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let labels = dir.path().join("labels");
        std::fs::write(&images, label_file_bytes(&[1])).unwrap();
        std::fs::write(&labels, image_file_bytes(1, 1, 1, &[0])).unwrap();
        let error = load_idx_pair(&images, &labels).unwrap_err().to_string();
        assert!(error.contains("images` is not an IDX image file: it starts with [00, 00, 08, 01], not [00, 00, 08, 03]"), "{error}");
    }

    #[test]
    fn truncated_and_overlong_files_are_errors() {
        let path = Path::new("train-images-idx3-ubyte");
        let short = image_file_bytes(2, 2, 2, &[0; 7]);
        let error = decode_idx_pair(path, &short, path, &label_file_bytes(&[0, 0]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`train-images-idx3-ubyte` is truncated: its header promises 24 bytes but it holds 23"
        );
        let long = image_file_bytes(1, 2, 2, &[0; 5]);
        assert!(matches!(
            decode_idx_pair(path, &long, path, &label_file_bytes(&[0])),
            Err(IdxError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            decode_idx_pair(path, &[0, 0], path, &[]),
            Err(IdxError::BadMagic { .. })
        ));
    }

    #[test]
    fn counts_must_agree() {
        let images = image_file_bytes(2, 1, 1, &[0, 1]);
        let error = decode_idx_pair(
            Path::new("i"),
            &images,
            Path::new("l"),
            &label_file_bytes(&[0]),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            IdxError::CountMismatch {
                image_count: 2,
                label_count: 1,
                ..
            }
        ));
    }

    #[test]
    fn corrupt_gzip_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gz");
        let mut bytes = gzip(&image_file_bytes(1, 1, 1, &[0]));
        bytes.truncate(12);
        std::fs::write(&path, bytes).unwrap();
        let error = read_maybe_gzipped(&path).unwrap_err().to_string();
        assert!(
            error.contains("broken.gz` looks gzipped but cannot be decompressed"),
            "{error}"
        );
    }
}
