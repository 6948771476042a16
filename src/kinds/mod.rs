//! The built-in node kinds.

pub mod dataset;
pub mod ml;
pub mod paper_reference;
pub mod report;
pub mod split;
pub mod testing;

use crate::kind::KindRegistry;

/// Every kind a pipeline file may use.
pub fn builtin_registry() -> KindRegistry {
    let mut registry = KindRegistry::new();
    registry
        .register(dataset::DatasetKind)
        .register(split::SplitKind)
        .register(report::Report);
    registry
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
