//! What a build cost: CPU time and peak resident memory of the process while it ran, and the
//! bytes it read and wrote. Measured around every build by [`crate::build::build_action`] and
//! stored in the record's provenance, so a node built in a cluster job carries the job's own
//! measurement back to the run that waits for it.
//!
//! The kernel counts CPU time and memory per process, not per build: a process that builds
//! several nodes at once (a local `run` with `--jobs` above 1) cannot split them. A build
//! therefore says whether another build of the same process overlapped it (`shared`); its
//! figures are exact when it did not, which is always the case in a cluster job (`exec-node`
//! builds one node).

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

/// A build's cost, as the record stores it (`provenance.usage`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct BuildUsage {
    /// User and system CPU time of the process during the build.
    pub cpu_seconds: f64,
    /// The process's peak resident memory during the build; `null` where it cannot be told
    /// apart from an earlier build's peak.
    pub peak_rss_bytes: Option<u64>,
    /// Whether another build of the same process ran at the same time: then both figures
    /// include its work too.
    pub shared: bool,
    /// The size of the input outputs the build read (its slots' `reads`).
    pub bytes_read: u64,
    /// The size of the outputs it wrote.
    pub bytes_written: u64,
}

/// Builds of this process in progress, and started so far.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A measurement in progress; [`Meter::finish`] gives the figures.
pub struct Meter {
    cpu_at_start: f64,
    started_before: usize,
    alone_at_start: bool,
    /// Whether the process's peak was reset to its current size when the build began.
    peak_reset: bool,
    finished: bool,
}

impl Meter {
    pub fn start() -> Meter {
        let alone_at_start = RUNNING.fetch_add(1, Ordering::SeqCst) == 0;
        let started_before = STARTED.fetch_add(1, Ordering::SeqCst);
        // Only a build alone in its process may reset the process's peak: another one running
        // would lose its own.
        let peak_reset = alone_at_start && reset_peak_rss();
        Meter {
            cpu_at_start: process_cpu_seconds(),
            started_before,
            alone_at_start,
            peak_reset,
            finished: false,
        }
    }

    pub fn finish(mut self, bytes_read: u64, bytes_written: u64) -> BuildUsage {
        let cpu_seconds = (process_cpu_seconds() - self.cpu_at_start).max(0.0);
        let started_meanwhile = STARTED.load(Ordering::SeqCst) != self.started_before + 1;
        let shared = !self.alone_at_start || started_meanwhile;
        let peak_rss_bytes = if self.peak_reset {
            peak_rss_since_reset()
        } else if self.started_before == 0 {
            // The process's first build: its lifetime peak is this build's.
            lifetime_peak_rss()
        } else {
            None
        };
        self.finished = true;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        BuildUsage {
            cpu_seconds,
            peak_rss_bytes,
            shared,
            bytes_read,
            bytes_written,
        }
    }
}

impl Drop for Meter {
    /// A build that failed or panicked stops counting too.
    fn drop(&mut self) {
        if !self.finished {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(unix)]
fn rusage_self() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given and reads nothing.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: a zero status means the kernel filled it; zeroed memory is a valid `rusage` too.
    (status == 0).then(|| unsafe { usage.assume_init() })
}

#[cfg(unix)]
fn process_cpu_seconds() -> f64 {
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 * 1e-6;
    rusage_self().map_or(0.0, |usage| {
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    })
}

#[cfg(not(unix))]
fn process_cpu_seconds() -> f64 {
    0.0
}

/// The process's peak resident memory since it started (Linux reports kibibytes).
#[cfg(unix)]
fn lifetime_peak_rss() -> Option<u64> {
    rusage_self().map(|usage| usage.ru_maxrss.max(0) as u64 * 1024)
}

#[cfg(not(unix))]
fn lifetime_peak_rss() -> Option<u64> {
    None
}

/// Sets the process's peak resident memory to its current size (Linux's `clear_refs` value
/// 5, which touches nothing else). `getrusage` keeps the old peak once a thread has exited,
/// so the peak since is read from `/proc/self/status` instead.
fn reset_peak_rss() -> bool {
    cfg!(target_os = "linux") && std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` of `/proc/self/status`: the peak since the last reset.
fn peak_rss_since_reset() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kibibytes: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kibibytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_alone_measures_its_cpu_time_and_the_memory_it_touched() {
        let meter = Meter::start();
        // Touch 64 MiB and spin a little, so both figures have something to show.
        let block = vec![1u8; 64 << 20];
        let mut sum = 0u64;
        for round in 0..20 {
            sum = block
                .iter()
                .step_by(4096)
                .fold(sum, |sum, &byte| sum.wrapping_add(byte as u64 + round));
        }
        std::hint::black_box(sum);
        let usage = meter.finish(3, 4);
        assert!(usage.cpu_seconds > 0.0, "{usage:?}");
        if cfg!(target_os = "linux") {
            let peak = usage.peak_rss_bytes.expect("a peak on Linux");
            assert!(peak >= 64 << 20, "{usage:?}");
        }
        assert_eq!((usage.bytes_read, usage.bytes_written), (3, 4));
        drop(block);
    }
}
