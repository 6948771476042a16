//! The built-in node kinds, and the artifacts they pass each other (`artifacts`).

#[cfg(feature = "kinds")]
pub mod artifacts;
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

use crate::kind::KindRegistry;

/// Every kind a pipeline file may use. Without the `kinds` feature that is none: the binary is
/// then the engine alone (a test build adds the engine's test kinds when asked, see
/// [`tpipe_engine::offer_test_kinds`]).
pub fn builtin_registry() -> KindRegistry {
    let mut registry = KindRegistry::new();
    #[cfg(feature = "kinds")]
    registry
        .register(dataset::DatasetKind)
        .register(split::SplitKind)
        .register(report::Report)
        .register(ml::Train)
        .register(ml::Transfer)
        .register(ml::Evaluate);
    tpipe_engine::offer_test_kinds(&mut registry);
    registry
}
