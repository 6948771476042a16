//! The executors a `tpipe run` may use besides building here: every cluster backend this
//! build has. The one place a new backend is listed; it sits above `cluster` (the generic
//! runner, which names no backend) and each backend's module (which implements `cluster`'s
//! trait), so neither depends on the other.

use crate::cluster::{BackendEntry, Backends};

/// Every cluster backend this tpipe can submit to, in the order `--executor` lists them.
pub fn backends() -> &'static Backends {
    #[cfg(not(feature = "testing"))]
    const BACKENDS: &[&BackendEntry] = &[&crate::slurm::ENTRY];
    // Test builds add the test double, which runs jobs as local processes.
    #[cfg(feature = "testing")]
    const BACKENDS: &[&BackendEntry] = &[&crate::slurm::ENTRY, &crate::cluster::processes::ENTRY];
    BACKENDS
}
