//! The built-in node kinds.

pub mod paper_reference;
pub mod report;
pub mod testing;

use crate::kind::KindRegistry;

/// Every kind a pipeline file may use.
pub fn builtin_registry() -> KindRegistry {
    let mut registry = KindRegistry::new();
    // The engine's own test kinds, offered only when asked for (see `testing`).
    if std::env::var_os("TPIPE_TEST_KINDS").is_some_and(|value| value == "1") {
        registry.register(testing::Number).register(testing::Sum).register(testing::FileDigest);
    }
    registry
}
