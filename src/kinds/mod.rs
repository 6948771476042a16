//! The built-in node kinds.

#[cfg(feature = "kinds")]
pub mod dataset;
#[cfg(feature = "kinds")]
pub mod ml;
#[cfg(feature = "kinds")]
pub mod paper_reference;
#[cfg(feature = "kinds")]
pub mod report;
#[cfg(feature = "kinds")]
pub mod split;
/// The engine's own test kinds (`number`, `sum`, `file_digest`).
pub use tpipe_engine::testing;

use crate::kind::KindRegistry;

/// Every kind a pipeline file may use. Without the `kinds` feature that is none but the test
/// kinds: the binary is then the engine alone.
pub fn builtin_registry() -> KindRegistry {
    #[allow(unused_mut)]
    let mut registry = KindRegistry::new();
    #[cfg(feature = "kinds")]
    registry
        .register(dataset::DatasetKind)
        .register(split::SplitKind)
        .register(report::Report)
        .register(ml::Train)
        .register(ml::Transfer)
        .register(ml::Evaluate);
    // The engine's own test kinds, offered only when asked for (see `testing`).
    if std::env::var_os("TPIPE_TEST_KINDS").is_some_and(|value| value == "1") {
        registry
            .register(testing::Number)
            .register(testing::Sum)
            .register(testing::FileDigest);
    }
    registry
}
