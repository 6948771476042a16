//! One place that knows every source: what files it reads and how to load it. The `dataset`
//! kind turns its parameters into a [`Source`] and calls this.

use std::path::PathBuf;

use super::cifar::{self, Cifar100Classes, CifarError};
use super::fashion_mnist::{DownloadProgress, FashionMnistError, FashionMnistOptions};
use super::idx::{self, IdxError};
use super::image_folder::{self, ImageFolderError, ImageFolderOptions};
use super::synthetic::{self, SyntheticError, SyntheticOptions};
use super::TrainTest;

/// A data set to load, with every path already resolved.
#[derive(Clone, Debug)]
pub enum Source {
    FashionMnist(FashionMnistOptions),
    /// Any MNIST-layout folder of IDX files.
    MnistIdx {
        dir: PathBuf,
    },
    Cifar10 {
        dir: PathBuf,
    },
    Cifar100 {
        dir: PathBuf,
        classes: Cifar100Classes,
    },
    ImageFolder {
        root: PathBuf,
        options: ImageFolderOptions,
    },
    Synthetic(SyntheticOptions),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    FashionMnist(#[from] FashionMnistError),
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(transparent)]
    Cifar(#[from] CifarError),
    #[error(transparent)]
    ImageFolder(#[from] ImageFolderError),
    #[error(transparent)]
    Synthetic(#[from] SyntheticError),
}

impl Source {
    /// The files and folders whose content decides what [`Source::load`] returns, so the node's
    /// key can hash them.
    ///
    /// Fashion-MNIST lists none: its content is pinned by hash and verified on load, so which
    /// copy is found cannot change the result. The synthetic set reads no files.
    pub fn files_read(&self) -> Result<Vec<PathBuf>, SourceError> {
        Ok(match self {
            Source::FashionMnist(_) | Source::Synthetic(_) => Vec::new(),
            Source::MnistIdx { dir } => idx::find_idx_files(dir)?
                .all()
                .iter()
                .map(|path| path.to_path_buf())
                .collect(),
            Source::Cifar10 { dir } => cifar::cifar10_files(dir)?,
            Source::Cifar100 { dir, .. } => cifar::cifar100_files(dir)?,
            Source::ImageFolder { root, options } => {
                if !root.is_dir() {
                    return Err(ImageFolderError::NotAFolder { path: root.clone() }.into());
                }
                std::iter::once(root.clone())
                    .chain(options.class_list.clone())
                    .collect()
            }
        })
    }

    /// Loads the train and test sets. `progress` hears about downloads (Fashion-MNIST only).
    pub fn load(
        &self,
        progress: &mut dyn FnMut(&DownloadProgress),
    ) -> Result<TrainTest, SourceError> {
        Ok(match self {
            Source::FashionMnist(options) => options.load(progress)?,
            Source::MnistIdx { dir } => idx::load_idx_dir(dir)?,
            Source::Cifar10 { dir } => cifar::load_cifar10(dir)?,
            Source::Cifar100 { dir, classes } => cifar::load_cifar100(dir, *classes)?,
            Source::ImageFolder { root, options } => {
                image_folder::load_image_folder(root, options)?
            }
            Source::Synthetic(options) => synthetic::generate(options)?,
        })
    }
}
