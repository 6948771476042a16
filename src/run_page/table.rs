//! The node table: every node of the run, sortable by any column (a click on its header), each
//! name a link to its record in the cache (what `tpipe show` prints).

use std::fmt::Write;

use super::{duration, escape};
use crate::trace::{NodeTrace, Trace};

enum Align {
    Text,
    Number,
}

const COLUMNS: [(&str, Align); 15] = [
    ("node", Align::Text),
    ("kind", Align::Text),
    ("status", Align::Text),
    ("slot", Align::Number),
    ("job", Align::Text),
    ("host", Align::Text),
    ("queued", Align::Number),
    ("started", Align::Number),
    ("ended", Align::Number),
    ("build", Align::Number),
    ("CPU", Align::Number),
    ("peak RSS", Align::Number),
    ("read", Align::Number),
    ("written", Align::Number),
    ("images/s", Align::Number),
];

pub(super) fn render(page: &mut String, trace: &Trace) {
    page.push_str("<table class=\"nodes\" id=\"node-table\"><thead><tr>");
    for (name, align) in COLUMNS {
        let kind = match align {
            Align::Text => "text",
            Align::Number => "number",
        };
        let _ = write!(page, "<th data-type=\"{kind}\">{name}</th>");
    }
    page.push_str("<th data-type=\"text\">result</th></tr></thead><tbody>");
    for node in &trace.nodes {
        row(page, trace, node);
    }
    page.push_str("</tbody></table>");
}

fn row(page: &mut String, trace: &Trace, node: &NodeTrace) {
    let _ = write!(page, "<tr class=\"{}\"><td>", escape(&node.status));
    let show = format!("tpipe show {} {}", trace.run.pipeline, node.name);
    // Only a node with a record has something for `tpipe show` to show.
    let has_record = matches!(node.status.as_str(), "built" | "cached" | "fetched");
    match node.key.as_ref().filter(|_| has_record) {
        Some(key) => {
            let _ = write!(
                page,
                "<a href=\"{href}\" title=\"{show}\">{name}</a>",
                href = escape(&file_url(&format!(
                    "{}/records/{key}.json",
                    trace.run.cache
                ))),
                show = escape(&show),
                name = escape(&node.name),
            );
        }
        None => page.push_str(&escape(&node.name)),
    }
    page.push_str("</td>");
    let text = |page: &mut String, value: Option<&str>| {
        let _ = write!(page, "<td>{}</td>", escape(value.unwrap_or("")));
    };
    text(page, Some(&node.kind));
    let status = match (&node.error, &node.remote, &node.after) {
        (Some(error), _, _) => format!(
            "{} — {}",
            node.status,
            error.lines().next().unwrap_or_default()
        ),
        (_, Some(remote), _) => format!("{} from {remote}", node.status),
        (_, _, Some(after)) => format!("{} after {after}", node.status),
        _ => node.status.clone(),
    };
    text(page, Some(&status));
    number(page, node.slot.map(|slot| slot as f64), |slot| {
        format!("{slot:.0}")
    });
    text(page, node.job.as_deref());
    text(page, node.host.as_deref());
    let seconds = |value: f64| format!("{value:.2}");
    number(page, Some(node.queued), seconds);
    number(page, node.started, seconds);
    number(page, Some(node.ended), seconds);
    number(page, node.build_seconds, duration);
    let cpu = |value: f64| {
        let shared = if node.usage_shared == Some(true) {
            "*"
        } else {
            ""
        };
        format!("{}{shared}", duration(value))
    };
    number(page, node.cpu_seconds, cpu);
    number(page, node.peak_rss_bytes.map(|bytes| bytes as f64), bytes);
    number(page, node.bytes_read.map(|bytes| bytes as f64), bytes);
    number(page, node.bytes_written.map(|bytes| bytes as f64), bytes);
    number(page, node.images_per_second, |speed| format!("{speed:.0}"));
    text(page, node.headline.as_deref());
    page.push_str("</tr>");
}

fn number(page: &mut String, value: Option<f64>, show: impl Fn(f64) -> String) {
    match value {
        Some(value) => {
            let _ = write!(
                page,
                "<td class=\"number\" data-value=\"{value}\">{}</td>",
                escape(&show(value))
            );
        }
        None => page.push_str("<td class=\"number\" data-value=\"\"></td>"),
    }
}

/// `12 B`, `3.4 MiB`.
fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = value;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{scaled:.0} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A `file://` URL for an absolute path, with the characters a URL cannot hold escaped.
fn file_url(path: &str) -> String {
    let mut url = String::from("file://");
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(byte as char)
            }
            other => {
                let _ = write!(url, "%{other:02X}");
            }
        }
    }
    url
}
