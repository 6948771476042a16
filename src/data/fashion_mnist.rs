//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60000 training and 10000 test images of 28×28
//! grey clothing, 10 classes, in the IDX format.
//!
//! The four files are looked for, in order, in a directory given in the pipeline, in
//! `$TPIPE_DATA/fashion-mnist`, in `/usr/share/datasets/fashion-mnist` (Debian's
//! `dataset-fashion-mnist` package) and in `~/.cache/tpipe/fashion-mnist`. If none has them, they
//! are downloaded from the canonical address (with the `download` feature).
//!
//! Every file is checked against a pinned hash of its *decompressed* content: Debian re-gzipped
//! the files, so the compressed bytes differ between copies while the data does not. Because the
//! content is pinned, where the files were found does not matter to the node's key.

use std::path::{Path, PathBuf};

use super::idx::{decode_idx_pair, gunzip_if_gzipped, IdxError, IdxFiles, IDX_FILE_NAMES};
use super::TrainTest;
use crate::hash::ContentHash;

pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The environment variable naming a folder of data sets (`$TPIPE_DATA/fashion-mnist`).
pub const DATA_ENV: &str = "TPIPE_DATA";
/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The folder under `$TPIPE_DATA` (or `~/.cache/tpipe`) that holds the files.
pub const FOLDER_NAME: &str = "fashion-mnist";

/// The canonical address (the Zalando Research README), then a mirror in the project's repository.
pub const BASE_URLS: [&str; 2] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
];

/// One of the four files: its name (without `.gz`) and the hash of its decompressed content.
#[derive(Clone, Copy, Debug)]
pub struct KnownFile {
    pub name: &'static str,
    /// [`ContentHash`] of the decompressed file, as hex.
    pub content: &'static str,
    /// Length of the decompressed file in bytes.
    pub length: usize,
}

/// In the order of [`IDX_FILE_NAMES`]: train images, train labels, test images, test labels.
/// Computed from Debian's copy (see `pinned_hashes_match_the_installed_copy`).
pub const KNOWN_FILES: [KnownFile; 4] = [
    KnownFile {
        name: IDX_FILE_NAMES[0],
        content: "feaca08b36e07f8d504641a929bff1554884ef73964323e44e59e39a986b4c9e",
        length: 47_040_016,
    },
    KnownFile {
        name: IDX_FILE_NAMES[1],
        content: "b4d9ea8013b029ef778c95ea7de31195ef443589877589523ad330db2829ebd6",
        length: 60_008,
    },
    KnownFile {
        name: IDX_FILE_NAMES[2],
        content: "a19b8c1e5f798e5a6fa7229093b630c04a620179497a1fa3a71e7334fb59a30b",
        length: 7_840_016,
    },
    KnownFile {
        name: IDX_FILE_NAMES[3],
        content: "0a067399ed18bcc9d7dc26832b3b8e4481abf2d33fee04c611e90b9061296b90",
        length: 10_008,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum FashionMnistError {
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(
        "`{path}` is not the Fashion-MNIST file `{name}`: its content hashes to {actual}, not {expected} \
         (hint: delete it or point `path` at a genuine copy)"
    )]
    WrongContent {
        path: PathBuf,
        name: &'static str,
        expected: String,
        actual: String,
    },
    #[error(
        "Fashion-MNIST was not found (looked in {}){} \
         (hint: `apt-get install dataset-fashion-mnist`, or put the four files in `$TPIPE_DATA/fashion-mnist`)",
        list_dirs(searched),
        download_note(download)
    )]
    NotFound {
        searched: Vec<PathBuf>,
        download: DownloadState,
    },
    #[error(
        "downloading Fashion-MNIST into `{dir}` failed: {reason} \
         (hint: `apt-get install dataset-fashion-mnist`, or put the four files in `$TPIPE_DATA/fashion-mnist`)"
    )]
    Download { dir: PathBuf, reason: String },
}

/// Why no download was tried, for the not-found message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadState {
    /// `download: false` in the pipeline.
    Disabled,
    /// Built without the `download` feature.
    NotCompiledIn,
    /// Neither `$TPIPE_DATA` nor a home folder gives a place to put the files.
    NowhereToPut,
}

fn list_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| format!("`{}`", dir.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn download_note(state: &DownloadState) -> &'static str {
    match state {
        DownloadState::Disabled => " and downloading is turned off (`download: false`)",
        DownloadState::NotCompiledIn => " and this build has no `download` feature",
        DownloadState::NowhereToPut => {
            " and neither `$TPIPE_DATA` nor `$HOME` is set, so there is nowhere to download it to"
        }
    }
}

/// How far a download has come, for a progress display.
#[derive(Clone, Debug)]
pub struct DownloadProgress {
    /// The file being fetched, e.g. `train-images-idx3-ubyte.gz`.
    pub file: String,
    /// Which of the files this is (from 0) and how many are fetched in all.
    pub file_index: usize,
    pub file_count: usize,
    pub received: u64,
    /// From the server's `Content-Length`, when it sends one.
    pub total: Option<u64>,
}

/// Where to look for the files and whether to download them.
#[derive(Clone, Debug, Default)]
pub struct FashionMnistOptions {
    /// A folder named in the pipeline (already resolved against the project folder).
    pub dir: Option<PathBuf>,
    /// The value of `$TPIPE_DATA`.
    pub data_home: Option<PathBuf>,
    /// The user's home folder, for `~/.cache/tpipe`.
    pub home: Option<PathBuf>,
    /// The system-wide copy ([`SYSTEM_DIR`]; `None` skips it, for tests).
    pub system_dir: Option<PathBuf>,
    /// Whether a missing data set may be downloaded.
    pub allow_download: bool,
}

impl FashionMnistOptions {
    /// Options that read `$TPIPE_DATA` and `$HOME` from the environment.
    pub fn from_env(dir: Option<PathBuf>, allow_download: bool) -> FashionMnistOptions {
        let non_empty = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        FashionMnistOptions {
            dir,
            data_home: non_empty(DATA_ENV),
            home: non_empty("HOME"),
            system_dir: Some(PathBuf::from(SYSTEM_DIR)),
            allow_download,
        }
    }

    /// The folders looked in, in order.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        dirs.extend(self.dir.clone());
        dirs.extend(self.data_home.as_ref().map(|home| home.join(FOLDER_NAME)));
        dirs.extend(self.system_dir.clone());
        dirs.extend(self.home_cache_dir());
        dirs.dedup();
        dirs
    }

    /// Where a download goes: the pipeline's folder, else `$TPIPE_DATA/fashion-mnist`, else
    /// `~/.cache/tpipe/fashion-mnist`.
    pub fn download_dir(&self) -> Option<PathBuf> {
        self.dir
            .clone()
            .or_else(|| self.data_home.as_ref().map(|home| home.join(FOLDER_NAME)))
            .or_else(|| self.home_cache_dir())
    }

    fn home_cache_dir(&self) -> Option<PathBuf> {
        self.home
            .as_ref()
            .map(|home| home.join(".cache").join("tpipe").join(FOLDER_NAME))
    }

    /// The first folder that holds all four files.
    pub fn locate(&self) -> Option<IdxFiles> {
        self.search_dirs()
            .iter()
            .find_map(|dir| super::idx::find_idx_files(dir).ok())
    }

    /// Finds (or downloads) the files, verifies them and decodes both sets.
    pub fn load(
        &self,
        progress: &mut dyn FnMut(&DownloadProgress),
    ) -> Result<TrainTest, FashionMnistError> {
        let files = match self.locate() {
            Some(files) => files,
            None => self.fetch(progress)?,
        };
        load_verified(&files)
    }

    #[cfg(feature = "download")]
    fn fetch(
        &self,
        progress: &mut dyn FnMut(&DownloadProgress),
    ) -> Result<IdxFiles, FashionMnistError> {
        if !self.allow_download {
            return Err(FashionMnistError::NotFound {
                searched: self.search_dirs(),
                download: DownloadState::Disabled,
            });
        }
        let Some(dir) = self.download_dir() else {
            return Err(FashionMnistError::NotFound {
                searched: self.search_dirs(),
                download: DownloadState::NowhereToPut,
            });
        };
        download::download_all(&dir, &BASE_URLS, &KNOWN_FILES, progress)?;
        super::idx::find_idx_files(&dir).map_err(FashionMnistError::from)
    }

    #[cfg(not(feature = "download"))]
    fn fetch(
        &self,
        _progress: &mut dyn FnMut(&DownloadProgress),
    ) -> Result<IdxFiles, FashionMnistError> {
        let download = if self.allow_download {
            DownloadState::NotCompiledIn
        } else {
            DownloadState::Disabled
        };
        Err(FashionMnistError::NotFound {
            searched: self.search_dirs(),
            download,
        })
    }
}

/// Checks decompressed file content against its pinned hash. `path` only names it in errors.
pub fn verify_content(
    path: &Path,
    known: &KnownFile,
    content: &[u8],
) -> Result<(), FashionMnistError> {
    let actual = ContentHash::of_bytes(content).to_hex();
    if actual != known.content {
        return Err(FashionMnistError::WrongContent {
            path: path.to_path_buf(),
            name: known.name,
            expected: known.content.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Reads, decompresses and verifies one file.
fn read_verified(path: &Path, known: &KnownFile) -> Result<Vec<u8>, FashionMnistError> {
    let content = super::idx::read_maybe_gzipped(path)?;
    verify_content(path, known, &content)?;
    Ok(content)
}

/// Decodes the four verified files into the train and test sets, with the class names.
pub fn load_verified(files: &IdxFiles) -> Result<TrainTest, FashionMnistError> {
    let paths = files.all();
    let contents = paths
        .iter()
        .zip(&KNOWN_FILES)
        .map(|(path, known)| read_verified(path, known))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = CLASS_NAMES.iter().map(|name| name.to_string()).collect();
    let mut train = decode_idx_pair(paths[0], &contents[0], paths[1], &contents[1])?;
    let mut test = decode_idx_pair(paths[2], &contents[2], paths[3], &contents[3])?;
    train.class_names = names.clone();
    test.class_names = names;
    Ok(TrainTest { train, test })
}

/// Decompresses downloaded bytes (if gzipped) and checks them; what a download must pass
/// before it is written where a later run would trust it.
pub fn check_download(
    url: &str,
    known: &KnownFile,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, FashionMnistError> {
    let content = gunzip_if_gzipped(Path::new(url), bytes)?;
    verify_content(Path::new(url), known, &content)?;
    Ok(content)
}

#[cfg(feature = "download")]
mod download {
    use std::io::Read;
    use std::path::Path;
    use std::time::Duration;

    use super::{check_download, DownloadProgress, FashionMnistError, KnownFile};

    /// Downloads every one of `files` not already present and valid in `dir`, trying each base
    /// address in turn. Each file is verified in memory before it is written (atomically), so a
    /// failed or tampered download leaves nothing behind that a later run would pick up.
    pub(super) fn download_all(
        dir: &Path,
        base_urls: &[&str],
        files: &[KnownFile],
        progress: &mut dyn FnMut(&DownloadProgress),
    ) -> Result<(), FashionMnistError> {
        let failed = |reason: String| FashionMnistError::Download {
            dir: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|error| failed(format!("cannot create the folder: {error}")))?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(20)))
                .timeout_recv_body(Some(Duration::from_secs(600)))
                .build(),
        );
        for (file_index, known) in files.iter().enumerate() {
            let file_name = format!("{}.gz", known.name);
            let destination = dir.join(&file_name);
            if destination.is_file() && super::read_verified(&destination, known).is_ok() {
                continue;
            }
            let mut problems = Vec::new();
            let mut fetched = None;
            for base in base_urls {
                let url = format!("{base}{file_name}");
                let report = |received, total| DownloadProgress {
                    file: file_name.clone(),
                    file_index,
                    file_count: files.len(),
                    received,
                    total,
                };
                match fetch(&agent, &url, &mut |received, total| {
                    progress(&report(received, total))
                })
                .and_then(|bytes| {
                    check_download(&url, known, bytes.clone())
                        .map(|_| bytes)
                        .map_err(FetchError::Check)
                }) {
                    Ok(bytes) => {
                        fetched = Some(bytes);
                        break;
                    }
                    Err(problem) => problems.push(format!("{url}: {problem}")),
                }
            }
            let bytes = fetched.ok_or_else(|| failed(problems.join("; ")))?;
            let temporary = dir.join(format!(".{file_name}.{}.partial", std::process::id()));
            std::fs::write(&temporary, &bytes)
                .and_then(|()| std::fs::rename(&temporary, &destination))
                .map_err(|error| {
                    let _ = std::fs::remove_file(&temporary);
                    failed(format!("cannot write `{}`: {error}", destination.display()))
                })?;
        }
        Ok(())
    }

    /// Why one address did not give a valid file.
    #[derive(Debug, thiserror::Error)]
    enum FetchError {
        #[error("{0}")]
        Request(#[from] ureq::Error),
        #[error("{0}")]
        Read(#[from] std::io::Error),
        #[error("{0}")]
        Check(FashionMnistError),
    }

    fn fetch(
        agent: &ureq::Agent,
        url: &str,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<u8>, FetchError> {
        let response = agent.get(url).call()?;
        let total = response.body().content_length();
        let mut reader = response.into_body().into_reader();
        let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(64 << 20) as usize);
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..read]);
            progress(bytes.len() as u64, total);
        }
        Ok(bytes)
    }

    #[cfg(test)]
    mod tests {
        use std::io::{Read, Write};
        use std::net::TcpListener;

        use super::*;
        use crate::data::idx::tests::gzip;
        use crate::hash::ContentHash;

        /// Serves `/good/<name>` with the real content and `/bad/<name>` with tampered content,
        /// gzipped, on a local port; anything else is a 404. No network is involved.
        fn serve(contents: Vec<(&'static str, Vec<u8>)>) -> String {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = format!("http://{}", listener.local_addr().unwrap());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        let Ok(read) = stream.read(&mut buffer) else {
                            break;
                        };
                        if read == 0 {
                            break;
                        }
                        request.extend_from_slice(&buffer[..read]);
                    }
                    let request = String::from_utf8_lossy(&request);
                    let path = request
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let body = contents.iter().find_map(|(name, content)| {
                        if path == format!("/good/{name}.gz") {
                            Some(gzip(content))
                        } else if path == format!("/bad/{name}.gz") {
                            Some(gzip(&[content.as_slice(), b"!"].concat()))
                        } else {
                            None
                        }
                    });
                    let response = match body {
                        Some(body) => [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes(), body].concat(),
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&response);
                }
            });
            address
        }

        fn known(name: &'static str, content: &[u8]) -> KnownFile {
            let hex = Box::leak(ContentHash::of_bytes(content).to_hex().into_boxed_str());
            KnownFile {
                name,
                content: hex,
                length: content.len(),
            }
        }

        #[test]
        fn a_tampered_mirror_is_skipped_for_a_good_one() {
            let labels = b"fake labels".to_vec();
            let images = vec![7u8; 100_000];
            let files = [known("labels-file", &labels), known("images-file", &images)];
            let address = serve(vec![
                ("labels-file", labels.clone()),
                ("images-file", images),
            ]);
            let dir = tempfile::tempdir().unwrap();
            let (bad, good) = (format!("{address}/bad/"), format!("{address}/good/"));
            let mut reports = Vec::new();
            download_all(
                dir.path(),
                &[bad.as_str(), good.as_str()],
                &files,
                &mut |progress| reports.push(progress.clone()),
            )
            .unwrap();
            let written =
                crate::data::idx::read_maybe_gzipped(&dir.path().join("labels-file.gz")).unwrap();
            assert_eq!(written, labels);
            assert!(dir.path().join("images-file.gz").is_file());
            let last = reports.last().unwrap();
            assert_eq!(
                (last.file.as_str(), last.file_index, last.file_count),
                ("images-file.gz", 1, 2)
            );
            assert_eq!(Some(last.received), last.total);
            // Nothing but the two verified files is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        }

        #[test]
        fn when_every_mirror_fails_nothing_is_written_and_each_reason_is_given() {
            let content = b"fake labels".to_vec();
            let files = [known("labels-file", &content)];
            let address = serve(vec![("labels-file", content)]);
            let dir = tempfile::tempdir().unwrap();
            let (bad, missing) = (format!("{address}/bad/"), format!("{address}/missing/"));
            let error = download_all(
                dir.path(),
                &[bad.as_str(), missing.as_str()],
                &files,
                &mut |_| {},
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("bad/labels-file.gz: `")
                    && error.contains("is not the Fashion-MNIST file `labels-file`"),
                "{error}"
            );
            assert!(
                error.contains("missing/labels-file.gz: http status: 404"),
                "{error}"
            );
            assert!(
                error.contains("(hint: `apt-get install dataset-fashion-mnist`"),
                "{error}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::gzip;

    fn options_with(
        dir: Option<PathBuf>,
        data_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> FashionMnistOptions {
        FashionMnistOptions {
            dir,
            data_home,
            home,
            system_dir: Some(PathBuf::from(SYSTEM_DIR)),
            allow_download: false,
        }
    }

    #[test]
    fn search_order_is_pipeline_then_tpipe_data_then_system_then_home_cache() {
        let options = options_with(
            Some("/p/fm".into()),
            Some("/data".into()),
            Some("/home/u".into()),
        );
        assert_eq!(
            options.search_dirs(),
            vec![
                PathBuf::from("/p/fm"),
                PathBuf::from("/data/fashion-mnist"),
                PathBuf::from(SYSTEM_DIR),
                PathBuf::from("/home/u/.cache/tpipe/fashion-mnist")
            ]
        );
        assert_eq!(options.download_dir(), Some(PathBuf::from("/p/fm")));
        let options = options_with(None, Some("/data".into()), Some("/home/u".into()));
        assert_eq!(
            options.download_dir(),
            Some(PathBuf::from("/data/fashion-mnist"))
        );
        let options = options_with(None, None, Some("/home/u".into()));
        assert_eq!(
            options.download_dir(),
            Some(PathBuf::from("/home/u/.cache/tpipe/fashion-mnist"))
        );
    }

    #[test]
    fn verification_accepts_the_pinned_content_and_rejects_anything_else() {
        let content = b"pretend these are Fashion-MNIST labels".to_vec();
        let known = KnownFile {
            name: "t10k-labels-idx1-ubyte",
            content: leak_hex(&content),
            length: content.len(),
        };
        // Gzipped and plain bytes pass alike: only the decompressed content is pinned.
        assert_eq!(
            check_download(
                "http://mirror/t10k-labels-idx1-ubyte.gz",
                &known,
                gzip(&content)
            )
            .unwrap(),
            content
        );
        assert_eq!(
            check_download(
                "http://mirror/t10k-labels-idx1-ubyte",
                &known,
                content.clone()
            )
            .unwrap(),
            content
        );

        let mut tampered = content.clone();
        tampered[3] ^= 1;
        let error = check_download(
            "http://mirror/t10k-labels-idx1-ubyte.gz",
            &known,
            gzip(&tampered),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "is not the Fashion-MNIST file `t10k-labels-idx1-ubyte`: its content hashes to"
            ),
            "{error}"
        );

        let mut truncated_gzip = gzip(&content);
        truncated_gzip.truncate(truncated_gzip.len() / 2);
        let error = check_download("http://mirror/x.gz", &known, truncated_gzip)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("looks gzipped but cannot be decompressed"),
            "{error}"
        );
    }

    fn leak_hex(content: &[u8]) -> &'static str {
        Box::leak(ContentHash::of_bytes(content).to_hex().into_boxed_str())
    }

    #[test]
    fn not_found_names_both_ways_to_get_it() {
        let empty = tempfile::tempdir().unwrap();
        let options = FashionMnistOptions {
            dir: Some(empty.path().join("nothing-here")),
            data_home: Some(empty.path().to_path_buf()),
            home: None,
            system_dir: None,
            allow_download: false,
        };
        let error = options.load(&mut |_| {}).unwrap_err().to_string();
        assert!(
            error.starts_with("Fashion-MNIST was not found (looked in `"),
            "{error}"
        );
        assert!(error.contains("downloading is turned off"), "{error}");
        assert!(
            error.contains("`apt-get install dataset-fashion-mnist`"),
            "{error}"
        );
        assert!(error.contains("`$TPIPE_DATA/fashion-mnist`"), "{error}");
    }

    #[cfg(not(feature = "download"))]
    #[test]
    fn without_the_download_feature_the_message_says_so() {
        let options = FashionMnistOptions {
            allow_download: true,
            ..FashionMnistOptions::default()
        };
        let error = options.load(&mut |_| {}).unwrap_err().to_string();
        assert!(
            error.contains("this build has no `download` feature"),
            "{error}"
        );
    }

    #[test]
    fn a_copy_in_the_pipeline_folder_is_found_first() {
        let Ok(installed) = crate::data::idx::find_idx_files(Path::new(SYSTEM_DIR)) else {
            eprintln!("note: {SYSTEM_DIR} is not installed (apt-get install dataset-fashion-mnist); skipping");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        for file in installed.all() {
            std::os::unix::fs::symlink(file, dir.path().join(file.file_name().unwrap())).unwrap();
        }
        let options = FashionMnistOptions {
            dir: Some(dir.path().to_path_buf()),
            ..FashionMnistOptions::default()
        };
        let found = options.locate().unwrap();
        assert!(found.train_images.starts_with(dir.path()), "{found:?}");
    }

    #[test]
    fn a_folder_with_other_data_under_the_right_names_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        crate::data::idx::tests::write_idx_dir(dir.path(), true);
        let files = crate::data::idx::find_idx_files(dir.path()).unwrap();
        let error = load_verified(&files).unwrap_err().to_string();
        assert!(
            error.contains("train-images-idx3-ubyte.gz` is not the Fashion-MNIST file"),
            "{error}"
        );
    }

    #[test]
    fn pinned_hashes_match_the_installed_copy() {
        let dir = Path::new(SYSTEM_DIR);
        let Ok(files) = crate::data::idx::find_idx_files(dir) else {
            eprintln!("note: {SYSTEM_DIR} is not installed (apt-get install dataset-fashion-mnist); skipping");
            return;
        };
        for (path, known) in files.all().iter().zip(&KNOWN_FILES) {
            let content = crate::data::idx::read_maybe_gzipped(path).unwrap();
            assert_eq!(content.len(), known.length, "{}", path.display());
            assert_eq!(
                ContentHash::of_bytes(&content).to_hex(),
                known.content,
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn loads_the_real_data_set_when_installed() {
        let Ok(files) = crate::data::idx::find_idx_files(Path::new(SYSTEM_DIR)) else {
            eprintln!("note: {SYSTEM_DIR} is not installed (apt-get install dataset-fashion-mnist); skipping");
            return;
        };
        let sets = load_verified(&files).unwrap();
        for (set, count) in [(&sets.train, 60_000), (&sets.test, 10_000)] {
            assert_eq!(
                (set.count, set.channels, set.height, set.width),
                (count, 1, 28, 28)
            );
            assert_eq!(set.class_names.len(), 10);
            assert!(set.labels.iter().all(|&label| label < 10));
            // Fashion-MNIST is balanced: every class has a tenth of the images.
            assert_eq!(set.class_counts(), vec![count / 10; 10]);
            set.validate().unwrap();
        }
    }
}
