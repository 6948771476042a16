//! Follows a run's jobs and places its new ones, one tick at a time: a tick makes one poll for
//! every job the run follows, then places the jobs waiting to be placed ([`placement`]: follow
//! a live job of the same key, or submit, grouped into arrays). So the scheduler calls of a
//! tick do not grow with the number of jobs. Ticks back off while nothing changes and come at
//! once (after a short gathering pause) when jobs wait to be placed.
//!
//! [`placement`]: super::placement

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::placement::{JobToPlace, Placed, Placer, Placing};
use super::{sort_job_ids, ClusterBackend, JobEnd, JobId, JobStatus};
use crate::kind::Progress;

/// After a job to place arrives, a tick waits until none has come for this long (or
/// [`GATHER_AT_MOST`] has passed), so the nodes that become ready together go in one array.
/// A cluster job takes seconds to start at best: this costs little.
const GATHER_QUIET: Duration = Duration::from_millis(200);
const GATHER_AT_MOST: Duration = Duration::from_secs(2);

struct Watch {
    /// When the run began to follow it: a poll that starts later and does not list it says it
    /// is gone.
    since: Instant,
    state: String,
}

/// Why a job was not placed.
#[derive(Debug)]
pub(super) enum PlaceError {
    /// The run was interrupted first.
    Cancelled,
    /// The scheduler refused it; the message says why.
    Refused(String),
}

#[derive(Default)]
struct State {
    waiting: HashMap<JobId, Watch>,
    ended: HashMap<JobId, JobEnd>,
    finished: HashSet<JobId>,
    /// Every job this run followed that is over, for the ledger.
    over: HashSet<JobId>,
    /// Jobs waiting for the next tick to be placed, by ticket.
    to_place: Vec<(u64, JobToPlace)>,
    placed: HashMap<u64, Result<Placed, PlaceError>>,
    /// Tickets whose waiter stopped waiting (the run was interrupted): never placed later.
    abandoned: HashSet<u64>,
    next_ticket: u64,
    /// When the first job to place since the last tick arrived, and the latest.
    first_arrival: Option<Instant>,
    last_arrival: Option<Instant>,
    /// What jobs waiting to be placed are told (the scheduler refusing jobs over a limit).
    notice: Option<String>,
    in_queue: usize,
    poll_calls: usize,
    submit_calls: usize,
    submitted: Vec<JobId>,
    attached: Vec<JobId>,
    /// The last successful poll's answer and when it was asked for, for the ledger.
    last_listing: Option<(Arc<HashMap<JobId, JobStatus>>, SystemTime)>,
    stop: bool,
    /// Set by a job to place: tick soon instead of backing off.
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

    fn has_work(&self) -> bool {
        !self.to_place.is_empty() || self.waiting.len() > self.finished.len()
    }

    /// Starts following `id` (once).
    fn watch(&mut self, id: &str) {
        self.waiting.entry(id.to_string()).or_insert_with(|| Watch {
            since: Instant::now(),
            state: "SUBMITTED".into(),
        });
    }
}

pub(super) struct Tracker {
    backend: Arc<dyn ClusterBackend>,
    state: Mutex<State>,
    changed: Condvar,
    /// Only the ticking thread places jobs; `finish` tidies its ledger.
    placer: Mutex<Placer>,
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

/// What a tracker knows at the end of a run.
pub(super) struct TrackerReport {
    pub poll_calls: usize,
    pub submit_calls: usize,
    pub submitted: Vec<JobId>,
    pub attached: Vec<JobId>,
    pub cancelled: Vec<JobId>,
    pub left: Vec<JobId>,
    pub warnings: Vec<String>,
}

impl Tracker {
    pub(super) fn start(backend: Arc<dyn ClusterBackend>, placing: Placing) -> Arc<Tracker> {
        let settings = backend.settings().clone();
        let tracker = Arc::new(Tracker {
            placer: Mutex::new(Placer::new(backend.clone(), placing)),
            backend,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            poller: Mutex::new(None),
            poll_min: settings.poll_min,
            poll_max: settings.poll_max.max(settings.poll_min),
            poll_patience: settings.poll_patience,
        });
        let ticking = tracker.clone();
        let handle = std::thread::Builder::new()
            .name("tpipe-poll".into())
            .spawn(move || ticking.tick_loop())
            .expect("start the polling thread");
        *tracker.poller.lock().unwrap() = Some(handle);
        tracker
    }

    /// Jobs now reach their results through `destination` (see `command::destination`).
    pub(super) fn set_destination(&self, destination: String) {
        self.placer.lock().unwrap().set_destination(destination);
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

    /// Hands `job` to the next tick and waits for its id: a live job of its key, or a new one.
    pub(super) fn place(
        &self,
        job: JobToPlace,
        cancel: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Placed, PlaceError> {
        let mut state = self.state.lock().unwrap();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.to_place.push((ticket, job));
        let now = Instant::now();
        state.first_arrival.get_or_insert(now);
        state.last_arrival = Some(now);
        state.fresh = true;
        self.changed.notify_all();
        let mut shown: Option<String> = None;
        loop {
            if let Some(placed) = state.placed.remove(&ticket) {
                return placed;
            }
            if cancel.load(Ordering::Relaxed) {
                // Not placed yet: it never will be. (If a tick is placing it now and submits it,
                // the job is followed like any other and cancelled or left with them.)
                state.to_place.retain(|(other, _)| *other != ticket);
                state.abandoned.insert(ticket);
                return Err(PlaceError::Cancelled);
            }
            if state.notice != shown {
                shown = state.notice.clone();
                if let Some(notice) = &shown {
                    progress(Progress {
                        fraction: 0.0,
                        message: notice.clone(),
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

    /// Follows job `id` (placed by [`Tracker::place`]) until it ends or `cancel` is set,
    /// reporting its state as progress.
    pub(super) fn wait(
        &self,
        id: &str,
        cancel: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> JobEnd {
        let mut state = self.state.lock().unwrap();
        state.watch(id);
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

    /// Ends the run's ticks: cancels, in one call, every followed job that has not ended
    /// (or, with `cancel` false, leaves them queued and running, recorded in the ledger), and
    /// tidies the ledger.
    pub(super) fn finish(&self, cancel: bool) -> TrackerReport {
        {
            self.state.lock().unwrap().stop = true;
            self.changed.notify_all();
        }
        if let Some(handle) = self.poller.lock().unwrap().take() {
            let _ = handle.join();
        }
        let mut state = self.state.lock().unwrap();
        let mut unfinished = state.unfinished();
        sort_job_ids(&mut unfinished);
        let (cancelled, left) = if cancel {
            if !unfinished.is_empty() {
                if let Err(problem) = self.backend.cancel(&unfinished) {
                    state.warnings.push(format!(
                        "{} {} failed: {problem}; cancel them by hand",
                        self.backend.entry().cancel_noun,
                        unfinished.join(" ")
                    ));
                }
            }
            state.over.extend(unfinished.iter().cloned());
            (unfinished, Vec::new())
        } else {
            (Vec::new(), unfinished)
        };
        let mut placer = self.placer.lock().unwrap();
        let listing = state
            .last_listing
            .as_ref()
            .map(|(listing, at)| (listing.as_ref(), *at));
        placer.tidy_ledger(&state.over, listing);
        state.warnings.extend(placer.warnings());
        TrackerReport {
            poll_calls: state.poll_calls,
            submit_calls: state.submit_calls,
            submitted: std::mem::take(&mut state.submitted),
            attached: std::mem::take(&mut state.attached),
            cancelled,
            left,
            warnings: std::mem::take(&mut state.warnings),
        }
    }

    fn tick_loop(&self) {
        let mut interval = self.poll_min;
        let mut failing_since: Option<Instant> = None;
        loop {
            {
                let mut state = self.state.lock().unwrap();
                while !state.stop && !state.has_work() {
                    state = self.changed.wait(state).unwrap();
                }
                if state.stop {
                    return;
                }
                state = self.gather(state);
                if state.stop {
                    return;
                }
                state.poll_calls += 1;
                state.fresh = false;
                state.first_arrival = None;
            }
            let called_at = Instant::now();
            let listed_at = SystemTime::now();
            let listed = self.backend.poll().map(Arc::new);
            let followed = self.follow(&listed, called_at, &mut failing_since);
            let listing = listed
                .as_ref()
                .ok()
                .map(|listing| (listing.clone(), listed_at));
            let placed = self.place_waiting(listing.as_ref());
            let mut state = self.state.lock().unwrap();
            if let Some(listing) = listing {
                state.last_listing = Some(listing);
            }
            if followed || placed || state.fresh {
                interval = self.poll_min;
                self.changed.notify_all();
            } else {
                interval = (interval * 2).min(self.poll_max);
            }
            // Sleep `interval` (or until a refused submission may be tried again), but wake
            // early for a job to place or the end of the run.
            let mut deadline = Instant::now() + interval;
            if !state.to_place.is_empty() {
                if let Some(retry) = self.placer.lock().unwrap().retry_at() {
                    deadline = deadline.min(retry.max(Instant::now()));
                }
            }
            while !state.stop && !state.fresh {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self.changed.wait_timeout(state, left).unwrap().0;
            }
        }
    }

    /// Waits, after new jobs to place arrived, until none has come for [`GATHER_QUIET`] or
    /// [`GATHER_AT_MOST`] has passed since the first.
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        while let (Some(first), Some(last), false) =
            (state.first_arrival, state.last_arrival, state.stop)
        {
            let now = Instant::now();
            let quiet_until = last + GATHER_QUIET;
            let at_most = first + GATHER_AT_MOST;
            if !state.fresh || now >= quiet_until || now >= at_most {
                break;
            }
            let left = quiet_until.min(at_most) - now;
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        state
    }

    /// Applies one poll's answer to the followed jobs; returns whether any changed.
    fn follow(
        &self,
        listed: &Result<Arc<HashMap<JobId, JobStatus>>, super::ClusterError>,
        called_at: Instant,
        failing_since: &mut Option<Instant>,
    ) -> bool {
        let mut state = self.state.lock().unwrap();
        let mut anything_changed = false;
        match listed {
            Ok(listed) => {
                *failing_since = None;
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
                        // Followed since before this call began, yet not listed: it is gone.
                        None if watch.since < called_at => {
                            ended.push((id.clone(), JobEnd::Gone));
                        }
                        None => {}
                    }
                }
                for (id, end) in ended {
                    if state.finished.insert(id.clone()) {
                        state.over.insert(id.clone());
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
        anything_changed
    }

    /// Places the jobs waiting for this tick; returns whether any was placed.
    fn place_waiting(
        &self,
        listing: Option<&(Arc<HashMap<JobId, JobStatus>>, SystemTime)>,
    ) -> bool {
        let (jobs, queued) = {
            let mut state = self.state.lock().unwrap();
            let queued = state.waiting.len() - state.finished.len();
            (std::mem::take(&mut state.to_place), queued)
        };
        if jobs.is_empty() {
            return false;
        }
        let mut placer = self.placer.lock().unwrap();
        let listing = listing.map(|(listing, at)| (listing.as_ref(), *at));
        // The placer calls the scheduler without the state's lock: waiters keep checking
        // for Ctrl-C meanwhile.
        let outcome = placer.place(jobs, listing, queued);
        let mut state = self.state.lock().unwrap();
        let anything = !outcome.placed.is_empty();
        for (ticket, placed, follow) in outcome.placed {
            if state.abandoned.remove(&ticket) && placed.is_err() {
                continue;
            }
            if let Ok(placed) = &placed {
                if follow {
                    // Followed before its waiter hears of it, so no poll can miss it.
                    state.watch(placed.id());
                }
                match placed {
                    Placed::Submitted(id) => state.submitted.push(id.clone()),
                    Placed::Attached(id) => state.attached.push(id.clone()),
                }
            }
            state.placed.insert(ticket, placed);
        }
        state.submit_calls += outcome.submit_calls;
        // What could not be placed yet goes first next time, unless its waiter left.
        let later = std::mem::take(&mut state.to_place);
        let abandoned = std::mem::take(&mut state.abandoned);
        state.to_place = outcome
            .waiting
            .into_iter()
            .filter(|(ticket, _)| !abandoned.contains(ticket))
            .collect();
        state.to_place.extend(later);
        state.notice = if state.to_place.is_empty() {
            None
        } else {
            placer.notice()
        };
        self.changed.notify_all();
        anything
    }
}
