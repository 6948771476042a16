//! A folder of images, one subfolder per class: `root/<class>/<image>.png|jpg|jpeg`.
//!
//! If `root` has both `train/` and `test/` subfolders, each holds the class folders of its set.
//! Otherwise a seeded share of each class (`test_fraction`) is held out as the test set.
//!
//! Every image is converted to 1 or 3 channels, resized so that its shorter side is `size`, and
//! cropped to `size`×`size` around its centre. Files are visited in sorted order and sampling is
//! seeded, so the same folder always gives the same dataset.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::rng::Rng;
use super::{Dataset, TrainTest};

#[derive(Debug, thiserror::Error)]
pub enum ImageFolderError {
    #[error("`{path}` is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("cannot list `{path}`: {source}")]
    List {
        path: PathBuf,
        source: walkdir::Error,
    },
    #[error("`{root}` has no class folders (hint: put images in `{root}/<class>/`)")]
    NoClasses { root: PathBuf },
    #[error("cannot read the class list `{path}`: {source}")]
    ClassListRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the class list `{path}` names no classes")]
    EmptyClassList { path: PathBuf },
    #[error("the class list `{path}` names `{class}` twice")]
    DuplicateClass { path: PathBuf, class: String },
    #[error("the class list `{list}` names `{class}`, but `{root}` has no such folder (classes there: {})", available.join(", "))]
    UnknownClass {
        list: PathBuf,
        class: String,
        root: PathBuf,
        available: Vec<String>,
    },
    #[error("class folder `{dir}` holds no PNG or JPEG images")]
    NoImages { dir: PathBuf },
    #[error("`{dir}` has no folder for class `{class}`, which `{other}` has")]
    MissingSplitClass {
        dir: PathBuf,
        class: String,
        other: PathBuf,
    },
    #[error("cannot decode image `{path}`: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("images must have 1 or 3 channels, not {channels}")]
    BadChannels { channels: usize },
    #[error("the image size must be at least 1 pixel")]
    BadSize,
}

/// How to read an image folder.
#[derive(Clone, Debug)]
pub struct ImageFolderOptions {
    /// Side of the square output images, in pixels.
    pub size: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// A file naming the classes to use, one per line, in label order; all folders when absent.
    pub class_list: Option<PathBuf>,
    /// At most this many images per class and set; all when absent.
    pub max_per_class: Option<usize>,
    /// The share of each class held out for testing when there are no `train/` and `test/` folders.
    pub test_fraction: f64,
    /// Seeds which images are held out and which are kept under `max_per_class`.
    pub seed: u64,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The `train/` and `test/` folders, if `root` is split that way.
fn presplit(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let (train, test) = (root.join("train"), root.join("test"));
    (train.is_dir() && test.is_dir()).then_some((train, test))
}

/// Class folder names directly under `dir`, sorted.
fn class_folders(dir: &Path) -> Result<Vec<String>, ImageFolderError> {
    let mut names = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(1)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|source| ImageFolderError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    Ok(names)
}

/// Reads a class list: one class per line; blank lines and lines starting with `#` are skipped.
pub fn read_class_list(path: &Path) -> Result<Vec<String>, ImageFolderError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImageFolderError::ClassListRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mut classes: Vec<String> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        if classes.iter().any(|class| class == line) {
            return Err(ImageFolderError::DuplicateClass {
                path: path.to_path_buf(),
                class: line.to_string(),
            });
        }
        classes.push(line.to_string());
    }
    if classes.is_empty() {
        return Err(ImageFolderError::EmptyClassList {
            path: path.to_path_buf(),
        });
    }
    Ok(classes)
}

/// The classes to read, in label order: the class list if given (checked against `dir`), else
/// every class folder in `dir`.
fn choose_classes(dir: &Path, class_list: Option<&Path>) -> Result<Vec<String>, ImageFolderError> {
    let available = class_folders(dir)?;
    let Some(list) = class_list else {
        if available.is_empty() {
            return Err(ImageFolderError::NoClasses {
                root: dir.to_path_buf(),
            });
        }
        return Ok(available);
    };
    let wanted = read_class_list(list)?;
    if let Some(missing) = wanted.iter().find(|class| !available.contains(class)) {
        return Err(ImageFolderError::UnknownClass {
            list: list.to_path_buf(),
            class: missing.clone(),
            root: dir.to_path_buf(),
            available,
        });
    }
    Ok(wanted)
}

/// The image files under a class folder (any depth), sorted by path.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, ImageFolderError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|source| ImageFolderError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        let is_image = entry
            .path()
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| {
                IMAGE_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str())
            });
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_file() && is_image && !hidden {
            files.push(entry.into_path());
        }
    }
    if files.is_empty() {
        return Err(ImageFolderError::NoImages {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// A stable number for a class name, so each class samples from its own random stream
/// whatever the other classes are.
fn name_stream(name: &str) -> u64 {
    // FNV-1a: tiny and fixed forever, unlike `std`'s hasher.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Keeps at most `limit` of `files`, chosen by a seeded shuffle, in their sorted order.
fn sample(files: Vec<PathBuf>, limit: Option<usize>, rng: &mut Rng) -> Vec<PathBuf> {
    match limit {
        Some(limit) if limit < files.len() => {
            let mut order: Vec<usize> = (0..files.len()).collect();
            rng.shuffle(&mut order);
            let mut kept = order[..limit].to_vec();
            kept.sort_unstable();
            kept.into_iter().map(|index| files[index].clone()).collect()
        }
        _ => files,
    }
}

/// Loads an image folder into train and test sets.
pub fn load_image_folder(
    root: &Path,
    options: &ImageFolderOptions,
) -> Result<TrainTest, ImageFolderError> {
    if !matches!(options.channels, 1 | 3) {
        return Err(ImageFolderError::BadChannels {
            channels: options.channels,
        });
    }
    if options.size == 0 {
        return Err(ImageFolderError::BadSize);
    }
    if !root.is_dir() {
        return Err(ImageFolderError::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    // (class label, file) per set, in label order then file order.
    let mut train_files: Vec<(u32, PathBuf)> = Vec::new();
    let mut test_files: Vec<(u32, PathBuf)> = Vec::new();
    let classes = match presplit(root) {
        Some((train_dir, test_dir)) => {
            let classes = choose_classes(&train_dir, options.class_list.as_deref())?;
            for (label, class) in classes.iter().enumerate() {
                let mut rng = Rng::derived(options.seed, &[name_stream(class), 0]);
                let test_class_dir = test_dir.join(class);
                if !test_class_dir.is_dir() {
                    return Err(ImageFolderError::MissingSplitClass {
                        dir: test_dir,
                        class: class.clone(),
                        other: train_dir,
                    });
                }
                for file in sample(
                    image_files(&train_dir.join(class))?,
                    options.max_per_class,
                    &mut rng,
                ) {
                    train_files.push((label as u32, file));
                }
                for file in sample(
                    image_files(&test_class_dir)?,
                    options.max_per_class,
                    &mut rng,
                ) {
                    test_files.push((label as u32, file));
                }
            }
            classes
        }
        None => {
            let classes = choose_classes(root, options.class_list.as_deref())?;
            for (label, class) in classes.iter().enumerate() {
                let files = image_files(&root.join(class))?;
                let mut rng = Rng::derived(options.seed, &[name_stream(class), 1]);
                let mut order: Vec<usize> = (0..files.len()).collect();
                rng.shuffle(&mut order);
                let held_out = ((files.len() as f64 * options.test_fraction).round() as usize)
                    .min(files.len());
                let mut test: Vec<usize> = order[..held_out].to_vec();
                let mut train: Vec<usize> = order[held_out..].to_vec();
                if let Some(limit) = options.max_per_class {
                    test.truncate(limit);
                    train.truncate(limit);
                }
                test.sort_unstable();
                train.sort_unstable();
                train_files.extend(
                    train
                        .into_iter()
                        .map(|index| (label as u32, files[index].clone())),
                );
                test_files.extend(
                    test.into_iter()
                        .map(|index| (label as u32, files[index].clone())),
                );
            }
            classes
        }
    };
    let train = decode_all(&train_files, &classes, options)?;
    let test = decode_all(&test_files, &classes, options)?;
    Ok(TrainTest { train, test })
}

fn decode_all(
    files: &[(u32, PathBuf)],
    classes: &[String],
    options: &ImageFolderOptions,
) -> Result<Dataset, ImageFolderError> {
    // Decoding is the slow part; rayon keeps the results in file order.
    let images: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(_, path)| decode_image(path, options.size, options.channels))
        .collect::<Result<_, _>>()?;
    let mut dataset = Dataset::empty(
        options.channels,
        options.size,
        options.size,
        classes.to_vec(),
    );
    dataset.pixels.reserve(images.len() * dataset.image_len());
    for ((label, _), image) in files.iter().zip(images) {
        dataset.push(&image, *label);
    }
    Ok(dataset)
}

/// One image as `channels`×`size`×`size` bytes: shorter side resized to `size`, centre cropped.
pub fn decode_image(
    path: &Path,
    size: usize,
    channels: usize,
) -> Result<Vec<u8>, ImageFolderError> {
    let decode_error = |source| ImageFolderError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let image = image::ImageReader::open(path)
        .map_err(|error| decode_error(image::ImageError::IoError(error)))?
        .with_guessed_format()
        .map_err(|error| decode_error(image::ImageError::IoError(error)))?
        .decode()
        .map_err(decode_error)?;
    let side = size as u32;
    Ok(match channels {
        1 => {
            let grey = fit_square(image.to_luma8(), side);
            grey.into_raw()
        }
        _ => {
            let rgb = fit_square(image.to_rgb8(), side);
            // Interleaved RGB → one plane per channel (NCHW).
            let plane = size * size;
            let mut planar = vec![0u8; 3 * plane];
            for (pixel, values) in rgb.into_raw().chunks_exact(3).enumerate() {
                for (channel, &value) in values.iter().enumerate() {
                    planar[channel * plane + pixel] = value;
                }
            }
            planar
        }
    })
}

/// Resizes the shorter side to `side` (keeping the aspect ratio) and crops the centre square.
fn fit_square<P>(image: image::ImageBuffer<P, Vec<u8>>, side: u32) -> image::ImageBuffer<P, Vec<u8>>
where
    P: image::Pixel<Subpixel = u8> + 'static,
{
    let (width, height) = image.dimensions();
    if (width, height) == (side, side) {
        return image;
    }
    let shorter = width.min(height) as f64;
    let scaled = |length: u32| ((length as f64 * side as f64 / shorter).round() as u32).max(side);
    let (new_width, new_height) = (scaled(width), scaled(height));
    let resized = image::imageops::resize(&image, new_width, new_height, FilterType::Triangle);
    let (left, top) = ((new_width - side) / 2, (new_height - side) / 2);
    image::imageops::crop_imm(&resized, left, top, side, side).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, width: u32, height: u32, colour: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(width, height, image::Rgb(colour))
            .save(path)
            .unwrap();
    }

    fn options(size: usize, channels: usize) -> ImageFolderOptions {
        ImageFolderOptions {
            size,
            channels,
            class_list: None,
            max_per_class: None,
            test_fraction: 0.25,
            seed: 0,
        }
    }

    /// `cat` has 4 red images, `dog` 4 blue ones; a README is ignored.
    fn write_folder(root: &Path) {
        for index in 0..4 {
            write_png(
                &root.join("cat").join(format!("{index}.png")),
                8,
                6,
                [200, 10, 10],
            );
            write_png(
                &root.join("dog").join(format!("{index}.png")),
                6,
                6,
                [10, 10, 200],
            );
        }
        std::fs::write(root.join("dog").join("README.txt"), "not an image").unwrap();
    }

    #[test]
    fn classes_are_folders_in_sorted_order_and_a_share_is_held_out() {
        let root = tempfile::tempdir().unwrap();
        write_folder(root.path());
        let sets = load_image_folder(root.path(), &options(4, 3)).unwrap();
        assert_eq!(sets.train.class_names, vec!["cat", "dog"]);
        assert_eq!(sets.train.labels, vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(sets.test.labels, vec![0, 1]);
        assert_eq!(
            (sets.train.channels, sets.train.height, sets.train.width),
            (3, 4, 4)
        );
        // A red image is red in every pixel of the first plane and dark in the third.
        let red = sets.train.image(0);
        assert!(
            red[..16].iter().all(|&value| value == 200)
                && red[32..].iter().all(|&value| value == 10)
        );
        let blue = sets.train.image(3);
        assert!(blue[32..].iter().all(|&value| value == 200));
        assert_eq!(
            sets,
            load_image_folder(root.path(), &options(4, 3)).unwrap(),
            "loading is deterministic"
        );
    }

    #[test]
    fn grey_images_and_the_class_list_order_labels() {
        let root = tempfile::tempdir().unwrap();
        write_folder(root.path());
        write_png(&root.path().join("fox").join("a.png"), 4, 4, [0, 0, 0]);
        let list = root.path().join("classes.txt");
        std::fs::write(&list, "# the classes we use\ndog\n\ncat\n").unwrap();
        let sets = load_image_folder(
            root.path(),
            &ImageFolderOptions {
                class_list: Some(list),
                max_per_class: Some(2),
                test_fraction: 0.0,
                ..options(3, 1)
            },
        )
        .unwrap();
        assert_eq!(sets.train.class_names, vec!["dog", "cat"]);
        assert_eq!(sets.train.labels, vec![0, 0, 1, 1]);
        assert_eq!(sets.test.count, 0);
        assert_eq!(sets.train.image_len(), 9);
        // Luma of pure-ish blue (10, 10, 200) is dark; of red (200, 10, 10) brighter.
        assert!(sets.train.image(0)[0] < sets.train.image(2)[0]);
    }

    #[test]
    fn train_and_test_folders_are_used_as_given() {
        let root = tempfile::tempdir().unwrap();
        write_folder(&root.path().join("train"));
        write_png(
            &root.path().join("test").join("cat").join("x.jpg.png"),
            5,
            5,
            [1, 2, 3],
        );
        write_png(
            &root.path().join("test").join("dog").join("y.png"),
            5,
            5,
            [1, 2, 3],
        );
        let sets = load_image_folder(root.path(), &options(5, 3)).unwrap();
        assert_eq!(sets.train.count, 8);
        assert_eq!(sets.test.labels, vec![0, 1]);
        assert_eq!(&sets.test.image(0)[..2], &[1, 1]);
    }

    #[test]
    fn resizing_keeps_the_centre_of_a_wide_image() {
        let root = tempfile::tempdir().unwrap();
        // A 12×4 image: black left third, white middle third, black right third.
        let mut image = image::GrayImage::new(12, 4);
        for (x, _, pixel) in image.enumerate_pixels_mut() {
            *pixel = image::Luma([if (4..8).contains(&x) { 255 } else { 0 }]);
        }
        let path = root.path().join("wide.png");
        image.save(&path).unwrap();
        // Shorter side 4 → 2: the image becomes 6×2 and its centre 2×2 is the white band.
        let pixels = decode_image(&path, 2, 1).unwrap();
        assert_eq!(pixels.len(), 4);
        assert!(pixels.iter().all(|&value| value > 200), "{pixels:?}");
    }

    #[test]
    fn errors_name_the_class_or_file() {
        let root = tempfile::tempdir().unwrap();
        write_folder(root.path());
        let list = root.path().join("classes.txt");
        std::fs::write(&list, "cat\nhorse\n").unwrap();
        let error = load_image_folder(
            root.path(),
            &ImageFolderOptions {
                class_list: Some(list),
                ..options(4, 1)
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("names `horse`, but")
                && error.ends_with("has no such folder (classes there: cat, dog)"),
            "{error}"
        );

        std::fs::write(
            root.path().join("cat").join("broken.png"),
            b"\x89PNG not really",
        )
        .unwrap();
        let error = load_image_folder(root.path(), &options(4, 1))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot decode image `") && error.contains("broken.png"),
            "{error}"
        );

        std::fs::create_dir(root.path().join("empty")).unwrap();
        std::fs::remove_file(root.path().join("cat").join("broken.png")).unwrap();
        let error = load_image_folder(root.path(), &options(4, 1))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("class folder `")
                && error.ends_with("empty` holds no PNG or JPEG images"),
            "{error}"
        );
    }
}
