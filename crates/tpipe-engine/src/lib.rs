//! tpipe's engine: everything that turns a YAML pipeline into built, cached nodes, without
//! knowing what any node does. Node kinds (data sets, splits, training, reports) live in the
//! `tpipe` crate on top of this one and reach the engine only through [`kind::NodeKind`].
//!
//! This crate builds without burn, plotters, image or flate2, so the engine's tests compile in
//! seconds. See ARCHITECTURE.md for the layers and their invariants.

pub mod action;
pub mod build;
pub mod cache;
pub mod cluster;
pub mod exec;
pub mod executors;
pub mod graph;
pub mod hash;
pub mod key;
pub mod kind;
pub mod limits;
pub mod plan;
pub mod private_file;
pub mod record;
pub mod remote;
pub mod resources;
pub mod schema;
pub mod session;
pub mod signature;
pub mod slurm;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;
pub mod usage;

/// Adds the engine's test kinds to `registry` when this binary was built for tests (feature
/// `testing`) and `TPIPE_TEST_KINDS=1` asks for them; in a product build it adds nothing, and
/// the binary holds neither the kinds nor the variable's name.
pub fn offer_test_kinds(registry: &mut kind::KindRegistry) {
    #[cfg(feature = "testing")]
    if std::env::var_os("TPIPE_TEST_KINDS").is_some_and(|value| value == "1") {
        registry
            .register(testing::Number)
            .register(testing::Sum)
            .register(testing::FileDigest);
    }
    #[cfg(not(feature = "testing"))]
    let _ = registry;
}
