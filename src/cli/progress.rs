//! Progress display: indicatif bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{NodeOutcome, NodeStatus, Observer, RunOptions};
use crate::kind::Progress;
use crate::session::Session;

pub struct TerminalObserver {
    total: usize,
    finished: AtomicUsize,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl TerminalObserver {
    pub fn new(session: &Session, options: &RunOptions) -> TerminalObserver {
        let total = session
            .selection(&options.targets)
            .map(|selection| selection.len())
            .unwrap_or(0);
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} nodes {elapsed}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            overall.set_prefix("tpipe");
            Bars {
                multi,
                overall,
                running: Mutex::new(HashMap::new()),
            }
        });
        TerminalObserver {
            total,
            finished: AtomicUsize::new(0),
            bars,
        }
    }

    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
        }
    }
}

impl Observer for TerminalObserver {
    fn node_started(&self, name: &str, kind: &str) {
        match &self.bars {
            Some(bars) => {
                let bar = bars
                    .multi
                    .insert_before(&bars.overall, ProgressBar::new(1000));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>20} [{bar:30}] {percent:>3}% {msg}")
                        .unwrap()
                        .progress_chars("=> "),
                );
                bar.set_prefix(name.to_string());
                bar.set_message(kind.to_string());
                bars.running.lock().unwrap().insert(name.to_string(), bar);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "start    {name} ({kind})");
            }
        }
    }

    fn node_progress(&self, name: &str, progress: &Progress) {
        if let Some(bars) = &self.bars {
            if let Some(bar) = bars.running.lock().unwrap().get(name) {
                bar.set_position((progress.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                bar.set_message(progress.message.clone());
            }
        }
    }

    fn node_finished(&self, outcome: &NodeOutcome) {
        let done = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        let detail = match &outcome.status {
            NodeStatus::Failed { error } => error.lines().next().unwrap_or_default().to_string(),
            NodeStatus::Skipped { after } => format!("needs `{after}`"),
            _ => outcome.headline.clone().unwrap_or_default(),
        };
        let line = format!(
            "[{done}/{}] {:<9} {} ({}) {detail}",
            self.total,
            outcome.status.word(),
            outcome.name,
            super::table::format_seconds(outcome.seconds)
        );
        match &self.bars {
            Some(bars) => {
                if let Some(bar) = bars.running.lock().unwrap().remove(&outcome.name) {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
                bars.overall.inc(1);
                if outcome.status != NodeStatus::Cached {
                    let _ = bars.multi.println(line.trim_end());
                }
            }
            None => {
                if outcome.status != NodeStatus::Cached {
                    let _ = writeln!(std::io::stderr(), "{}", line.trim_end());
                }
            }
        }
    }

    fn warning(&self, message: &str) {
        let line = format!("warning: {message}");
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }
}
