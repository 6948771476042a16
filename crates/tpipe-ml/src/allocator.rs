//! Keeping freed activation buffers in the heap for reuse.
//!
//! flex allocates a fresh buffer for the output of every op and frees it soon after. glibc
//! serves allocations above its mmap threshold (128 KiB, growing with use) with `mmap` and returns
//! them with `munmap`, so each step maps, faults in and zeroes the same megabytes again: about 10%
//! of a training step on the reference net, measured with `perf` and the throughput bench.
//! Raising the mmap threshold to its maximum (32 MiB) and the trim threshold to 1 GiB keeps that
//! memory in the heap, at the cost of the process holding on to up to that much freed memory.

use std::sync::Once;

/// Tunes glibc malloc once per process, unless the user already set the matching environment
/// variables (which glibc reads itself). A no-op elsewhere.
pub(crate) fn tune_for_training() {
    static TUNED: Once = Once::new();
    TUNED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let user_set = |name: &str| std::env::var_os(name).is_some();
            if !user_set("MALLOC_MMAP_THRESHOLD_") && !user_set("MALLOC_TRIM_THRESHOLD_") {
                // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
                unsafe {
                    libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
                    libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
                }
            }
        }
    });
}
