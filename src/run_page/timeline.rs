//! The timeline: a Gantt chart of the builds, one lane per worker slot, a bar per node built
//! (or attempted) coloured by kind, its wait before the build as a thin line, and the run's
//! critical path outlined.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::{duration, escape, kind_colours};
use crate::trace::{NodeTrace, Trace};

const PLOT_WIDTH: f64 = 1100.0;
const LABEL_WIDTH: f64 = 64.0;
const LANE_HEIGHT: f64 = 14.0;
const AXIS_HEIGHT: f64 = 22.0;

/// The chain of nodes that decided when the run ended: from the node that ended last, back
/// through the input each one waited for longest (the one that ended last), in run order.
pub(super) fn critical_path(trace: &Trace) -> Vec<&NodeTrace> {
    let by_name: HashMap<&str, &NodeTrace> = trace
        .nodes
        .iter()
        .map(|node| (node.name.as_str(), node))
        .collect();
    let Some(mut current) = trace
        .nodes
        .iter()
        .filter(|node| node.started.is_some())
        .max_by(|a, b| a.ended.total_cmp(&b.ended))
    else {
        return Vec::new();
    };
    let mut path = vec![current];
    let mut seen = HashSet::from([current.name.as_str()]);
    while let Some(input) = current
        .inputs
        .iter()
        .filter_map(|name| by_name.get(name.as_str()).copied())
        .max_by(|a, b| a.ended.total_cmp(&b.ended))
    {
        // A trace is a DAG; a hand-edited one need not be.
        if !seen.insert(input.name.as_str()) {
            break;
        }
        path.push(input);
        current = input;
    }
    path.reverse();
    path
}

pub(super) fn render(page: &mut String, trace: &Trace) {
    let bars: Vec<&NodeTrace> = trace
        .nodes
        .iter()
        .filter(|node| node.started.is_some())
        .collect();
    if bars.is_empty() {
        page.push_str(
            "<p class=\"timeline-empty\">Nothing was built in this run: every node came from \
             the cache or a remote.</p>",
        );
        return;
    }
    let critical = critical_path(trace);
    let on_critical_path: HashSet<&str> = critical.iter().map(|node| node.name.as_str()).collect();
    let lanes = lanes(&bars);
    let lane_count = lanes.values().copied().max().map_or(1, |lane| lane + 1);
    let span = trace
        .run
        .seconds
        .max(bars.iter().map(|node| node.ended).fold(0.0, f64::max))
        .max(1e-3);
    let x = |seconds: f64| LABEL_WIDTH + seconds / span * PLOT_WIDTH;
    let height = AXIS_HEIGHT + lane_count as f64 * LANE_HEIGHT + 4.0;
    let colours: HashMap<String, &str> = kind_colours(trace).into_iter().collect();
    let _ = write!(
        page,
        "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\">",
        width = LABEL_WIDTH + PLOT_WIDTH + 10.0,
    );
    for (tick, label) in ticks(span) {
        let _ = write!(
            page,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{height}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\">{label}</text>",
            x = x(tick),
            top = AXIS_HEIGHT - 6.0,
        );
    }
    for lane in 0..lane_count {
        let _ = write!(
            page,
            "<text x=\"2\" y=\"{y:.1}\">slot {lane}</text>",
            y = AXIS_HEIGHT + lane as f64 * LANE_HEIGHT + 10.0,
        );
    }
    for node in &bars {
        let started = node.started.unwrap_or(node.queued);
        let top = AXIS_HEIGHT + lanes[node.name.as_str()] as f64 * LANE_HEIGHT + 1.0;
        if started > node.queued {
            let _ = write!(
                page,
                "<line class=\"wait\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#bbb\"/>",
                x(node.queued),
                x(started),
                y = top + LANE_HEIGHT / 2.0 - 1.0,
            );
        }
        let mut classes = String::from("bar");
        if node.status == "failed" || node.status == "cancelled" {
            classes.push_str(" failed");
        }
        if on_critical_path.contains(node.name.as_str()) {
            classes.push_str(" critical");
        }
        let place = match (&node.job, &node.host) {
            (Some(job), Some(host)) => format!(", job {job} on {host}"),
            (Some(job), None) => format!(", job {job}"),
            (None, _) => String::new(),
        };
        let _ = write!(
            page,
            "<rect class=\"{classes}\" data-node=\"{name}\" data-kind=\"{kind}\" \
             data-status=\"{status}\" x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" \
             height=\"{bar_height}\" fill=\"{colour}\"><title>{name} ({kind}, {status}{place}): \
             {build}, queued at {queued}</title></rect>",
            name = escape(&node.name),
            kind = escape(&node.kind),
            status = escape(&node.status),
            left = x(started),
            width = (x(node.ended) - x(started)).max(1.0),
            bar_height = LANE_HEIGHT - 3.0,
            colour = colours.get(&node.kind).copied().unwrap_or("#888"),
            place = escape(&place),
            build = duration(node.ended - started),
            queued = duration(node.queued),
        );
    }
    page.push_str("</svg><p class=\"legend\">");
    for (kind, colour) in kind_colours(trace) {
        let _ = write!(
            page,
            "<span><i style=\"background:{colour}\"></i>{}</span>",
            escape(&kind)
        );
    }
    page.push_str(
        "<span><i style=\"border:2px solid #c00\"></i>failed</span>\
         <span><i style=\"border:2px solid #000\"></i>critical path</span></p>",
    );
    let total: f64 = critical
        .iter()
        .map(|node| node.ended - node.started.unwrap_or(node.ended))
        .sum();
    let _ = write!(
        page,
        "<p class=\"critical-path\">Critical path ({} of building in a {} run): {}</p>",
        duration(total),
        duration(trace.run.seconds),
        critical
            .iter()
            .map(|node| format!("<code>{}</code>", escape(&node.name)))
            .collect::<Vec<_>>()
            .join(" → ")
    );
}

/// Each bar's lane: its worker slot, or (a trace without slots) the first lane free at its
/// start.
fn lanes<'a>(bars: &[&'a NodeTrace]) -> HashMap<&'a str, usize> {
    let mut lanes = HashMap::new();
    let mut free_at: Vec<f64> = Vec::new();
    let mut unslotted: Vec<&NodeTrace> = Vec::new();
    let slots = bars
        .iter()
        .filter_map(|node| node.slot)
        .max()
        .map_or(0, |slot| slot + 1);
    for node in bars {
        match node.slot {
            Some(slot) => {
                lanes.insert(node.name.as_str(), slot);
            }
            None => unslotted.push(node),
        }
    }
    unslotted.sort_by(|a, b| a.queued.total_cmp(&b.queued));
    for node in unslotted {
        let start = node.started.unwrap_or(node.queued);
        let lane = match free_at.iter().position(|free| *free <= start) {
            Some(lane) => lane,
            None => {
                free_at.push(0.0);
                free_at.len() - 1
            }
        };
        free_at[lane] = node.ended;
        lanes.insert(node.name.as_str(), slots + lane);
    }
    lanes
}

/// Ticks at a round step, about eight across the run.
fn ticks(span: f64) -> Vec<(f64, String)> {
    let rough = span / 8.0;
    let step = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
    ]
    .into_iter()
    .find(|step| *step >= rough)
    .unwrap_or(86400.0);
    (0..)
        .map(|index| index as f64 * step)
        .take_while(|tick| *tick <= span)
        .map(|tick| {
            let label = if step < 1.0 {
                format!("{tick:.1}s")
            } else if step < 60.0 {
                format!("{tick:.0}s")
            } else if step < 3600.0 {
                format!("{:.0}m", tick / 60.0)
            } else {
                format!("{:.0}h", tick / 3600.0)
            };
            (tick, label)
        })
        .collect()
}
