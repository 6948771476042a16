//! CIFAR-10 and CIFAR-100 in their binary versions (Krizhevsky 2009).
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`,
//! `batches.meta.txt`; each record is one label byte and 3072 pixel bytes (the red, green and
//! blue 32×32 planes, row-major — already the NCHW layout of a [`Dataset`]).
//!
//! CIFAR-100 (`cifar-100-binary/`): `train.bin`, `test.bin`, `coarse_label_names.txt`,
//! `fine_label_names.txt`; each record is a coarse label byte, a fine label byte and 3072 pixels.

use std::path::{Path, PathBuf};

use super::{Dataset, TrainTest};

const SIDE: usize = 32;
const IMAGE_LEN: usize = 3 * SIDE * SIDE;

pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
pub const CIFAR10_NAMES_FILE: &str = "batches.meta.txt";
/// The folder the official archive unpacks to; accepted inside the given folder.
pub const CIFAR10_FOLDER: &str = "cifar-10-batches-bin";

pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
pub const CIFAR100_TEST_FILE: &str = "test.bin";
pub const CIFAR100_COARSE_NAMES_FILE: &str = "coarse_label_names.txt";
pub const CIFAR100_FINE_NAMES_FILE: &str = "fine_label_names.txt";
pub const CIFAR100_FOLDER: &str = "cifar-100-binary";

#[derive(Debug, thiserror::Error)]
pub enum CifarError {
    #[error("`{dir}` has no `{name}` (hint: `path` should be the unpacked `{folder}` folder of the binary version)")]
    MissingFile {
        dir: PathBuf,
        name: &'static str,
        folder: &'static str,
    },
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is {length} bytes, not a whole number of {record_len}-byte records (is it the binary version?)")]
    BadLength {
        path: PathBuf,
        length: usize,
        record_len: usize,
    },
    #[error("`{path}` is empty")]
    Empty { path: PathBuf },
    #[error("record {record} of `{path}` has {what} label {label}, but `{names}` names only {classes} classes")]
    LabelOutOfRange {
        path: PathBuf,
        record: usize,
        what: &'static str,
        label: u8,
        names: PathBuf,
        classes: usize,
    },
    #[error("`{path}` names no classes")]
    NoNames { path: PathBuf },
}

/// Which CIFAR-100 labels are the classes of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Classes {
    /// The 100 fine classes; the 20 super-classes are kept as coarse labels (for `groups` splits).
    Fine,
    /// The 20 super-classes as the classes.
    Coarse,
}

/// `dir` itself, or the archive's folder inside it when that holds `probe`.
fn resolve_dir(dir: &Path, folder: &str, probe: &str) -> PathBuf {
    let nested = dir.join(folder);
    if !dir.join(probe).is_file() && nested.join(probe).is_file() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn require(dir: &Path, name: &'static str, folder: &'static str) -> Result<PathBuf, CifarError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(CifarError::MissingFile {
            dir: dir.to_path_buf(),
            name,
            folder,
        })
    }
}

/// The files CIFAR-10 reads from `dir`: the five training batches, the test batch, the names.
pub fn cifar10_files(dir: &Path) -> Result<Vec<PathBuf>, CifarError> {
    let dir = resolve_dir(dir, CIFAR10_FOLDER, CIFAR10_TEST_FILE);
    CIFAR10_TRAIN_FILES
        .iter()
        .chain([&CIFAR10_TEST_FILE, &CIFAR10_NAMES_FILE])
        .map(|name| require(&dir, name, CIFAR10_FOLDER))
        .collect()
}

/// The files CIFAR-100 reads from `dir`: train, test, coarse names, fine names.
pub fn cifar100_files(dir: &Path) -> Result<Vec<PathBuf>, CifarError> {
    let dir = resolve_dir(dir, CIFAR100_FOLDER, CIFAR100_TEST_FILE);
    [
        CIFAR100_TRAIN_FILE,
        CIFAR100_TEST_FILE,
        CIFAR100_COARSE_NAMES_FILE,
        CIFAR100_FINE_NAMES_FILE,
    ]
    .into_iter()
    .map(|name| require(&dir, name, CIFAR100_FOLDER))
    .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, CifarError> {
    std::fs::read(path).map_err(|source| CifarError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Class names, one per non-empty line.
fn read_names(path: &Path) -> Result<Vec<String>, CifarError> {
    let text = read(path)?;
    let names: Vec<String> = String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(CifarError::NoNames {
            path: path.to_path_buf(),
        });
    }
    Ok(names)
}

/// Splits a batch file into records of `label_bytes` labels followed by one image.
fn records<'a>(
    path: &Path,
    bytes: &'a [u8],
    label_bytes: usize,
) -> Result<std::slice::ChunksExact<'a, u8>, CifarError> {
    let record_len = label_bytes + IMAGE_LEN;
    if bytes.is_empty() {
        return Err(CifarError::Empty {
            path: path.to_path_buf(),
        });
    }
    if !bytes.len().is_multiple_of(record_len) {
        return Err(CifarError::BadLength {
            path: path.to_path_buf(),
            length: bytes.len(),
            record_len,
        });
    }
    Ok(bytes.chunks_exact(record_len))
}

fn check_label(
    path: &Path,
    record: usize,
    what: &'static str,
    label: u8,
    names: &Path,
    classes: usize,
) -> Result<u32, CifarError> {
    if usize::from(label) >= classes {
        return Err(CifarError::LabelOutOfRange {
            path: path.to_path_buf(),
            record,
            what,
            label,
            names: names.to_path_buf(),
            classes,
        });
    }
    Ok(u32::from(label))
}

fn read_cifar10_batches(
    paths: &[PathBuf],
    names_path: &Path,
    names: &[String],
) -> Result<Dataset, CifarError> {
    let mut dataset = Dataset::empty(3, SIDE, SIDE, names.to_vec());
    for path in paths {
        let bytes = read(path)?;
        for (record, chunk) in records(path, &bytes, 1)?.enumerate() {
            let label = check_label(path, record, "a", chunk[0], names_path, names.len())?;
            dataset.push(&chunk[1..], label);
        }
    }
    Ok(dataset)
}

/// Loads CIFAR-10 from `dir` (the `cifar-10-batches-bin` folder or the folder holding it).
pub fn load_cifar10(dir: &Path) -> Result<TrainTest, CifarError> {
    let files = cifar10_files(dir)?;
    let names_path = &files[6];
    let names = read_names(names_path)?;
    let train = read_cifar10_batches(&files[..5], names_path, &names)?;
    let test = read_cifar10_batches(&files[5..6], names_path, &names)?;
    Ok(TrainTest { train, test })
}

fn read_cifar100_file(
    path: &Path,
    names: &Cifar100Names,
    classes: Cifar100Classes,
) -> Result<Dataset, CifarError> {
    let bytes = read(path)?;
    let class_names = match classes {
        Cifar100Classes::Fine => names.fine.clone(),
        Cifar100Classes::Coarse => names.coarse.clone(),
    };
    let mut dataset = Dataset::empty(3, SIDE, SIDE, class_names);
    let mut coarse_labels = Vec::with_capacity(bytes.len() / (IMAGE_LEN + 2));
    for (record, chunk) in records(path, &bytes, 2)?.enumerate() {
        let coarse = check_label(
            path,
            record,
            "a coarse",
            chunk[0],
            &names.coarse_path,
            names.coarse.len(),
        )?;
        let fine = check_label(
            path,
            record,
            "a fine",
            chunk[1],
            &names.fine_path,
            names.fine.len(),
        )?;
        let label = match classes {
            Cifar100Classes::Fine => fine,
            Cifar100Classes::Coarse => coarse,
        };
        dataset.push(&chunk[2..], label);
        coarse_labels.push(coarse);
    }
    if classes == Cifar100Classes::Fine {
        dataset.coarse_labels = Some(coarse_labels);
        dataset.coarse_names = names.coarse.clone();
    }
    Ok(dataset)
}

struct Cifar100Names {
    coarse: Vec<String>,
    coarse_path: PathBuf,
    fine: Vec<String>,
    fine_path: PathBuf,
}

/// Loads CIFAR-100 from `dir` (the `cifar-100-binary` folder or the folder holding it).
pub fn load_cifar100(dir: &Path, classes: Cifar100Classes) -> Result<TrainTest, CifarError> {
    let files = cifar100_files(dir)?;
    let names = Cifar100Names {
        coarse: read_names(&files[2])?,
        coarse_path: files[2].clone(),
        fine: read_names(&files[3])?,
        fine_path: files[3].clone(),
    };
    let train = read_cifar100_file(&files[0], &names, classes)?;
    let test = read_cifar100_file(&files[1], &names, classes)?;
    Ok(TrainTest { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record: label bytes, then a 3×32×32 image whose red plane is `fill`, green `fill+1`,
    /// blue `fill+2`, with the first pixel of each plane marking the channel (0, 1, 2).
    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut bytes = labels.to_vec();
        for channel in 0..3u8 {
            let mut plane = vec![fill.wrapping_add(channel); SIDE * SIDE];
            plane[0] = channel;
            bytes.extend(plane);
        }
        bytes
    }

    fn write_cifar10(dir: &Path) {
        for (batch, name) in CIFAR10_TRAIN_FILES.iter().enumerate() {
            let batch = batch as u8;
            let bytes = [
                record(&[batch], 10 * batch),
                record(&[9 - batch], 10 * batch + 5),
            ]
            .concat();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        std::fs::write(dir.join(CIFAR10_TEST_FILE), record(&[3], 200)).unwrap();
        let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
        std::fs::write(dir.join(CIFAR10_NAMES_FILE), names).unwrap();
    }

    #[test]
    fn cifar10_batches_decode_in_order_with_their_names() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(CIFAR10_FOLDER);
        std::fs::create_dir(&dir).unwrap();
        write_cifar10(&dir);
        // The folder holding the unpacked archive is accepted as well as the archive folder.
        let sets = load_cifar10(root.path()).unwrap();
        assert_eq!(sets, load_cifar10(&dir).unwrap());
        let train = &sets.train;
        assert_eq!(
            (train.count, train.channels, train.height, train.width),
            (10, 3, 32, 32)
        );
        assert_eq!(train.labels, vec![0, 9, 1, 8, 2, 7, 3, 6, 4, 5]);
        assert_eq!(train.class_names.len(), 10);
        assert_eq!(train.class_names[9], "truck");
        // Planes are stored red, green, blue: exactly channel-major.
        let image = train.image(3);
        assert_eq!(
            (
                image[0],
                image[1],
                image[1024],
                image[1025],
                image[2048],
                image[2049]
            ),
            (0, 15, 1, 16, 2, 17)
        );
        assert_eq!(sets.test.labels, vec![3]);
        assert_eq!(sets.test.image(0)[1], 200);
        train.validate().unwrap();
    }

    #[test]
    fn cifar10_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        std::fs::write(
            dir.path().join("data_batch_3.bin"),
            [record(&[1], 0), vec![7; 10]].concat(),
        )
        .unwrap();
        let error = load_cifar10(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(
                "data_batch_3.bin` is 3083 bytes, not a whole number of 3073-byte records"
            ),
            "{error}"
        );

        std::fs::write(dir.path().join("data_batch_3.bin"), record(&[10], 0)).unwrap();
        let error = load_cifar10(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("record 0 of `")
                && error.contains("has a label 10, but `")
                && error.contains("names only 10 classes"),
            "{error}"
        );

        std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
        let error = load_cifar10(dir.path()).unwrap_err().to_string();
        assert!(error.contains("has no `test_batch.bin` (hint: `path` should be the unpacked `cifar-10-batches-bin` folder"), "{error}");
    }

    fn write_cifar100(dir: &Path) {
        let train = [record(&[0, 4], 1), record(&[1, 2], 2), record(&[0, 0], 3)].concat();
        std::fs::write(dir.join(CIFAR100_TRAIN_FILE), train).unwrap();
        std::fs::write(dir.join(CIFAR100_TEST_FILE), record(&[1, 3], 4)).unwrap();
        std::fs::write(
            dir.join(CIFAR100_COARSE_NAMES_FILE),
            "aquatic_mammals\nvehicles_1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(CIFAR100_FINE_NAMES_FILE),
            "beaver\ndolphin\nbicycle\nbus\notter\n",
        )
        .unwrap();
    }

    #[test]
    fn cifar100_keeps_coarse_labels_next_to_fine_classes() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar100(dir.path());
        let sets = load_cifar100(dir.path(), Cifar100Classes::Fine).unwrap();
        assert_eq!(sets.train.labels, vec![4, 2, 0]);
        assert_eq!(
            sets.train.class_names,
            vec!["beaver", "dolphin", "bicycle", "bus", "otter"]
        );
        assert_eq!(sets.train.coarse_labels, Some(vec![0, 1, 0]));
        assert_eq!(
            sets.train.coarse_names,
            vec!["aquatic_mammals", "vehicles_1"]
        );
        assert_eq!(sets.train.image(1)[1], 2);
        assert_eq!(sets.test.labels, vec![3]);
        sets.train.validate().unwrap();

        let coarse = load_cifar100(dir.path(), Cifar100Classes::Coarse).unwrap();
        assert_eq!(coarse.train.labels, vec![0, 1, 0]);
        assert_eq!(
            coarse.train.class_names,
            vec!["aquatic_mammals", "vehicles_1"]
        );
        assert_eq!(coarse.train.coarse_labels, None);
        assert_eq!(coarse.train.pixels, sets.train.pixels);
    }

    #[test]
    fn cifar100_fine_label_beyond_the_names_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar100(dir.path());
        std::fs::write(dir.path().join(CIFAR100_TEST_FILE), record(&[0, 5], 0)).unwrap();
        let error = load_cifar100(dir.path(), Cifar100Classes::Fine)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has a fine label 5")
                && error.contains("fine_label_names.txt` names only 5 classes"),
            "{error}"
        );
    }
}
