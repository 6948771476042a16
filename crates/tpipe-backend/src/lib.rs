//! The compute backend a training or an evaluation runs on.
//!
//! One enum serves three places: tpipe-ml resolves it to a device, the ML kinds take it as
//! their `backend:` parameter, and the command line offers it as `--backend`. It is a crate of
//! its own because those places sit on both sides of an optional dependency: the command line
//! and the ML kinds' schemas compile without the `ml` feature, that is without tpipe-ml (and
//! burn), while tpipe-ml must not depend on tpipe. A crate with no dependency beyond serde is
//! the one place all three can see.

use std::fmt;
use std::str::FromStr;

/// Which backend runs the work. The words (`auto`, `cpu`, …) are what YAML, the command line
/// and job scripts write; [`Backend::word`] and [`FromStr`] are their only translation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// wgpu if tpipe-ml was built with its `wgpu` feature and a real GPU adapter (not a
    /// software rasteriser such as lavapipe) exists; `Cpu` otherwise.
    #[default]
    #[cfg_attr(feature = "clap", value(help = "wgpu on a real GPU, else `cpu`"))]
    Auto,
    /// The fastest CPU path: `Native`.
    #[cfg_attr(feature = "clap", value(help = "the fastest CPU path: `native`"))]
    Cpu,
    /// tpipe-ml's own CPU kernels (`native/`): each conv layer as one unfold and one `gemm`
    /// product over the batch, hand-written backward passes, buffers reused between steps
    /// (threads from rayon's global pool, as flex).
    #[cfg_attr(
        feature = "clap",
        value(
            help = "tpipe-ml's own CPU kernels: one gemm product per conv layer, hand-written backward"
        )
    )]
    Native,
    /// flex, burn's pure-Rust CPU backend (threads from rayon's global pool;
    /// `RAYON_NUM_THREADS` caps them).
    #[cfg_attr(feature = "clap", value(help = "burn's pure-Rust CPU backend"))]
    Flex,
    /// burn's LibTorch backend on the CPU: PyTorch's own kernels under burn's autodiff (threads
    /// from PyTorch's OpenMP pool; `OMP_NUM_THREADS` caps them). An error without tpipe-ml's
    /// `torch` feature.
    #[cfg_attr(
        feature = "clap",
        value(help = "burn's LibTorch backend on the CPU (needs the `torch` feature)")
    )]
    Torch,
    /// wgpu on its default adapter: the most capable GPU, unless `CUBECL_WGPU_DEFAULT_DEVICE`
    /// names another (`Cpu` selects lavapipe/llvmpipe). An error without tpipe-ml's `wgpu`
    /// feature.
    #[cfg_attr(
        feature = "clap",
        value(help = "burn's wgpu backend on the default adapter")
    )]
    Wgpu,
}

impl Backend {
    /// Every backend, in the order of [`Backend::WORDS`].
    pub const ALL: [Backend; 6] = [
        Backend::Auto,
        Backend::Cpu,
        Backend::Native,
        Backend::Flex,
        Backend::Torch,
        Backend::Wgpu,
    ];

    /// The words, for schemas and messages.
    pub const WORDS: &'static [&'static str] = &["auto", "cpu", "native", "flex", "torch", "wgpu"];

    /// The word YAML, the command line and job scripts write for this backend.
    pub fn word(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Native => "native",
            Backend::Flex => "flex",
            Backend::Torch => "torch",
            Backend::Wgpu => "wgpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.word())
    }
}

/// A word that names no backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{word}` (valid backends: {})", Backend::WORDS.join(", "))]
pub struct UnknownBackend {
    pub word: String,
}

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(word: &str) -> Result<Backend, UnknownBackend> {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.word() == word)
            .ok_or_else(|| UnknownBackend {
                word: word.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_its_backend() {
        for (backend, word) in Backend::ALL.iter().zip(Backend::WORDS) {
            assert_eq!(backend.word(), *word);
            assert_eq!(word.parse::<Backend>(), Ok(*backend));
            assert_eq!(
                serde_json::to_string(backend).unwrap(),
                format!("\"{word}\"")
            );
        }
    }

    #[test]
    fn an_unknown_word_is_an_error_listing_the_valid_ones() {
        let error = "gpu".parse::<Backend>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown backend `gpu` (valid backends: auto, cpu, native, flex, torch, wgpu)"
        );
    }
}
