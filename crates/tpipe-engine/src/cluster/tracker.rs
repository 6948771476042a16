//! Follows a run's jobs with one poll per tick for all of them, backing off while nothing
//! changes and waking at once for a new submission.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ClusterBackend, JobEnd};
use crate::kind::Progress;

struct Watch {
    submitted_at: Instant,
    state: String,
}

#[derive(Default)]
struct State {
    waiting: std::collections::HashMap<String, Watch>,
    ended: std::collections::HashMap<String, JobEnd>,
    finished: HashSet<String>,
    in_queue: usize,
    poll_calls: usize,
    stop: bool,
    /// Set by a submission: poll soon again instead of backing off.
    fresh: bool,
    warnings: Vec<String>,
}

impl State {
    /// Followed jobs whose end is not known yet.
    fn unfinished(&self) -> Vec<String> {
        self.waiting
            .keys()
            .filter(|id| !self.finished.contains(*id))
            .cloned()
            .collect()
    }
}

pub(super) struct Tracker {
    backend: Arc<dyn ClusterBackend>,
    state: Mutex<State>,
    changed: Condvar,
    poller: Mutex<Option<JoinHandle<()>>>,
    poll_min: Duration,
    poll_max: Duration,
    poll_patience: Duration,
}

/// A place in the queue, given back when dropped.
pub(super) struct QueueSlot<'a>(&'a Tracker);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().in_queue -= 1;
        self.0.changed.notify_all();
    }
}

impl Tracker {
    pub(super) fn start(backend: Arc<dyn ClusterBackend>) -> Arc<Tracker> {
        let settings = backend.settings().clone();
        let tracker = Arc::new(Tracker {
            backend,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            poller: Mutex::new(None),
            poll_min: settings.poll_min,
            poll_max: settings.poll_max.max(settings.poll_min),
            poll_patience: settings.poll_patience,
        });
        let polling = tracker.clone();
        let handle = std::thread::Builder::new()
            .name("tpipe-poll".into())
            .spawn(move || polling.poll_loop())
            .expect("start the polling thread");
        *tracker.poller.lock().unwrap() = Some(handle);
        tracker
    }

    /// Waits until fewer than `most` of this run's jobs are queued or running.
    pub(super) fn queue_slot(&self, most: usize, cancel: &AtomicBool) -> QueueSlot<'_> {
        let mut state = self.state.lock().unwrap();
        while state.in_queue >= most && !cancel.load(Ordering::Relaxed) {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap()
                .0;
        }
        state.in_queue += 1;
        QueueSlot(self)
    }

    /// Follows job `id` until it ends or `cancel` is set, reporting its state as progress.
    pub(super) fn wait(
        &self,
        id: &str,
        cancel: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> JobEnd {
        let mut state = self.state.lock().unwrap();
        state.waiting.insert(
            id.to_string(),
            Watch {
                submitted_at: Instant::now(),
                state: "SUBMITTED".into(),
            },
        );
        state.fresh = true;
        self.changed.notify_all();
        let mut shown = String::new();
        loop {
            if let Some(end) = state.ended.remove(id) {
                return end;
            }
            if cancel.load(Ordering::Relaxed) {
                return JobEnd::Cancelled;
            }
            if let Some(watch) = state.waiting.get(id) {
                if watch.state != shown {
                    shown = watch.state.clone();
                    progress(Progress {
                        fraction: 0.0,
                        message: format!(
                            "{} {id} {}",
                            self.backend.entry().job_noun,
                            shown.to_lowercase()
                        ),
                    });
                }
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }

    /// Cancels, with one call, every followed job that has not ended; returns their ids.
    pub(super) fn cancel_unfinished(&self) -> Vec<String> {
        let mut ids = self.state.lock().unwrap().unfinished();
        if ids.is_empty() {
            return ids;
        }
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        if let Err(problem) = self.backend.cancel(&ids) {
            self.state.lock().unwrap().warnings.push(format!(
                "{} {} failed: {problem}; cancel them by hand",
                self.backend.entry().cancel_noun,
                ids.join(" ")
            ));
        }
        ids
    }

    /// Stops polling; returns how many polls the run made and any warnings.
    pub(super) fn stop(&self) -> (usize, Vec<String>) {
        self.state.lock().unwrap().stop = true;
        self.changed.notify_all();
        if let Some(handle) = self.poller.lock().unwrap().take() {
            let _ = handle.join();
        }
        let mut state = self.state.lock().unwrap();
        (state.poll_calls, std::mem::take(&mut state.warnings))
    }

    fn poll_loop(&self) {
        let mut interval = self.poll_min;
        let mut failing_since: Option<Instant> = None;
        loop {
            {
                let mut state = self.state.lock().unwrap();
                while !state.stop && state.waiting.len() == state.finished.len() {
                    state = self.changed.wait(state).unwrap();
                }
                if state.stop {
                    return;
                }
                state.poll_calls += 1;
                state.fresh = false;
            }
            let called_at = Instant::now();
            let listed = self.backend.poll();
            let mut state = self.state.lock().unwrap();
            let mut anything_changed = false;
            match listed {
                Ok(listed) => {
                    failing_since = None;
                    let mut ended = Vec::new();
                    for (id, watch) in state.waiting.iter_mut() {
                        match listed.get(id) {
                            Some(status) if status.ended => {
                                ended.push((id.clone(), JobEnd::Finished(status.clone())));
                            }
                            Some(status) if watch.state != status.state => {
                                watch.state = status.state.clone();
                                anything_changed = true;
                            }
                            Some(_) => {}
                            // Submitted before this call began, yet not listed: it is gone.
                            None if watch.submitted_at < called_at => {
                                ended.push((id.clone(), JobEnd::Gone));
                            }
                            None => {}
                        }
                    }
                    for (id, end) in ended {
                        if state.finished.insert(id.clone()) {
                            state.ended.insert(id, end);
                            anything_changed = true;
                        }
                    }
                }
                Err(error) => {
                    let since = *failing_since.get_or_insert(called_at);
                    if since.elapsed() >= self.poll_patience {
                        let error = error.to_string();
                        for id in state.unfinished() {
                            state.finished.insert(id.clone());
                            state.ended.insert(id, JobEnd::PollFailed(error.clone()));
                        }
                        anything_changed = true;
                    }
                }
            }
            // Forget what every waiter has collected.
            let collected: Vec<String> = state
                .finished
                .iter()
                .filter(|id| !state.ended.contains_key(*id))
                .cloned()
                .collect();
            for id in collected {
                state.waiting.remove(&id);
                state.finished.remove(&id);
            }
            if anything_changed || state.fresh {
                interval = self.poll_min;
                self.changed.notify_all();
            } else {
                interval = (interval * 2).min(self.poll_max);
            }
            // Sleep `interval`, but wake early for a new submission or the end of the run.
            let deadline = Instant::now() + interval;
            while !state.stop && !state.fresh {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self.changed.wait_timeout(state, left).unwrap().0;
            }
        }
    }
}
