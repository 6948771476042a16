//! `tpipe report-run` and `tpipe run --html`: one self-contained HTML page about a run, from
//! its trace and the records in the cache. Everything is inline (SVG drawn here, a few lines of
//! CSS and JS), so the page opens from a `file://` URL with no network.
//!
//! `collect` reads what the page shows (the trace, the trained nets' curves, the reports'
//! figures and findings); `render` writes it: `timeline` (a Gantt chart by worker slot with
//! the critical path), `table` (every node, sortable), `curves` (a panel per trained net).

mod curves;
mod table;
mod timeline;

use std::fmt::Write;
use std::path::Path;

use crate::cache::Cache;
use crate::hash::ContentHash;
use crate::trace::Trace;

pub use curves::NetCurves;

/// A report node's figure and findings, from its outputs.
pub struct ReportSection {
    pub name: String,
    pub figure_svg: Option<String>,
    pub findings: Option<String>,
}

/// Everything the page shows.
pub struct PageInput<'a> {
    pub trace: &'a Trace,
    pub nets: Vec<NetCurves>,
    pub reports: Vec<ReportSection>,
}

/// The report kind's outputs the page shows.
const FIGURE_OUTPUT: &str = "figure.svg";
const FINDINGS_OUTPUT: &str = "summary.md";

/// Reads the curves of every trained net and the figure and findings of every report that the
/// trace names and the cache holds. A record or blob that is missing or damaged is left out
/// (the page is about the run; `tpipe cache verify` is about the cache).
pub fn collect<'a>(trace: &'a Trace, cache: &Cache) -> PageInput<'a> {
    let mut nets = Vec::new();
    let mut reports = Vec::new();
    for node in &trace.nodes {
        let Some(key) = node
            .key
            .as_deref()
            .and_then(|key| key.parse::<ContentHash>().ok())
        else {
            continue;
        };
        let Ok(Some(record)) = cache.read_record(&key) else {
            continue;
        };
        if let Some(net) = NetCurves::from_metrics(&node.name, &record.metrics.to_value()) {
            nets.push(net);
        }
        let figure = record.outputs.get(FIGURE_OUTPUT);
        let findings = record.outputs.get(FINDINGS_OUTPUT);
        if figure.is_some() || findings.is_some() {
            let text = |output: Option<&crate::record::OutputRef>| {
                output
                    .and_then(|output| cache.read_blob(&output.blob).ok())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            };
            reports.push(ReportSection {
                name: node.name.clone(),
                figure_svg: text(figure),
                findings: text(findings),
            });
        }
    }
    PageInput {
        trace,
        nets,
        reports,
    }
}

/// The page, as one HTML document.
pub fn render(input: &PageInput) -> String {
    let trace = input.trace;
    let run = &trace.run;
    let mut page = String::with_capacity(64 * 1024 + trace.nodes.len() * 1024);
    let title = format!("tpipe run of {}", run.pipeline);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"generator\" content=\"tpipe {version}\">\
         <title>{title}</title><style>{STYLE}</style><script>{ERRORS_SCRIPT}</script></head>\
         <body><div id=\"page-errors\"></div>\
         <h1>{title}</h1>",
        version = escape(&run.tpipe_version),
        title = escape(&title),
    );
    summary_section(&mut page, trace);
    page.push_str("<h2 id=\"timeline\">Timeline</h2>");
    timeline::render(&mut page, trace);
    page.push_str("<h2 id=\"curves\">Training curves</h2>");
    curves::render(&mut page, &input.nets);
    for report in &input.reports {
        report_section(&mut page, report);
    }
    page.push_str("<h2 id=\"nodes\">Nodes</h2>");
    table::render(&mut page, trace);
    let _ = writeln!(page, "<script>{SORT_SCRIPT}</script></body></html>");
    page
}

/// Collects and renders the page for `trace` and writes it to `path`.
pub fn write_page(trace: &Trace, cache: &Cache, path: &Path) -> std::io::Result<()> {
    let page = render(&collect(trace, cache));
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, page)
}

fn summary_section(page: &mut String, trace: &Trace) {
    let run = &trace.run;
    let count = |word: &str| {
        trace
            .nodes
            .iter()
            .filter(|node| node.status == word)
            .count()
    };
    let _ = write!(
        page,
        "<p class=\"run\">{nodes} nodes, started {started} on {host}, {seconds} with executor \
         <b>{executor}</b>, {jobs} jobs ({device_jobs} on the device){cancelled}. Cache \
         <code>{cache}</code>.</p><table class=\"counts\" id=\"counts\"><tr>",
        nodes = trace.nodes.len(),
        started = escape(&run.started_at),
        host = escape(&run.host),
        seconds = duration(run.seconds),
        executor = escape(&run.executor),
        jobs = run.jobs,
        device_jobs = run.device_jobs,
        cancelled = if run.cancelled { ", interrupted" } else { "" },
        cache = escape(&run.cache),
    );
    for word in [
        "built",
        "cached",
        "fetched",
        "failed",
        "skipped",
        "cancelled",
        "submitted",
        "deferred",
    ] {
        let n = count(word);
        if n > 0 || matches!(word, "built" | "cached" | "fetched" | "failed") {
            let _ = write!(
                page,
                "<td class=\"status-{word}\" data-count=\"{word}\"><b>{n}</b> {word}</td>"
            );
        }
    }
    page.push_str("</tr></table>");
    let mut remotes: Vec<(&str, usize)> = Vec::new();
    for node in &trace.nodes {
        if let Some(remote) = &node.remote {
            match remotes.iter_mut().find(|(name, _)| name == remote) {
                Some((_, count)) => *count += 1,
                None => remotes.push((remote, 1)),
            }
        }
    }
    for (remote, count) in remotes {
        let _ = write!(
            page,
            "<p class=\"remote\">{count} fetched from <code>{}</code></p>",
            escape(remote)
        );
    }
    let failed: Vec<_> = trace
        .nodes
        .iter()
        .filter(|node| node.status == "failed")
        .collect();
    if !failed.is_empty() {
        page.push_str("<details open class=\"failures\"><summary>Failures</summary><ul>");
        for node in failed {
            let _ = write!(
                page,
                "<li><b>{}</b>: <pre>{}</pre></li>",
                escape(&node.name),
                escape(node.error.as_deref().unwrap_or(""))
            );
        }
        page.push_str("</ul></details>");
    }
}

fn report_section(page: &mut String, report: &ReportSection) {
    let _ = write!(
        page,
        "<h2 class=\"report\">Report <code>{}</code></h2>",
        escape(&report.name)
    );
    if let Some(svg) = &report.figure_svg {
        // The figure is tpipe's own SVG (plotters): inline it, without its XML prologue.
        let start = svg.find("<svg").unwrap_or(0);
        let _ = write!(page, "<div class=\"figure\">{}</div>", &svg[start..]);
    }
    if let Some(findings) = &report.findings {
        let _ = write!(
            page,
            "<details class=\"findings\"><summary>Findings (summary.md)</summary><pre>{}</pre></details>",
            escape(findings)
        );
    }
}

/// Text for HTML, in an element or in a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(crate) fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let whole = seconds.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

/// The colour of a kind: a fixed palette, by the kind's first appearance in the run.
pub(crate) fn kind_colours(trace: &Trace) -> Vec<(String, &'static str)> {
    const PALETTE: [&str; 8] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#e15759",
    ];
    let mut kinds: Vec<(String, &'static str)> = Vec::new();
    for node in &trace.nodes {
        if !kinds.iter().any(|(kind, _)| *kind == node.kind) {
            let colour = PALETTE[kinds.len() % PALETTE.len()];
            kinds.push((node.kind.clone(), colour));
        }
    }
    kinds
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
code{font-size:90%}\
#page-errors:not(:empty){background:#fdd;border:1px solid #c00;padding:.5em}\
table.counts td{padding:.2em .8em;border:1px solid #ddd}\
.status-failed b{color:#c00}.status-built b{color:#2a6}.status-fetched b{color:#26a}\
svg text{font:11px system-ui,sans-serif}\
.bar.failed{stroke:#c00;stroke-width:2}.bar.critical{stroke:#000;stroke-width:1.5}\
.legend span{display:inline-block;margin-right:1em}\
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px}\
.nets{display:flex;flex-wrap:wrap;gap:4px;margin-bottom:.6em}\
.net{margin:0;border:1px solid #ddd;padding:2px;font-size:10px;width:150px}\
.net.stalled{border:2px solid #c00;background:#fee}\
.net figcaption{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}\
.group{margin:.3em 0 .1em;font-weight:600}\
table.nodes{border-collapse:collapse;font-size:12px}\
table.nodes th{cursor:pointer;background:#eee;position:sticky;top:0}\
table.nodes td,table.nodes th{padding:1px 6px;border-bottom:1px solid #eee;text-align:left}\
table.nodes td.number{text-align:right;font-variant-numeric:tabular-nums}\
tr.failed td{background:#fee}\
.figure svg{max-width:100%;height:auto}\
pre{white-space:pre-wrap}";

/// Any script error lands in `#page-errors`, where people (and the browser test) see it.
const ERRORS_SCRIPT: &str = "\
window.addEventListener('error',function(event){\
var box=document.getElementById('page-errors');\
var line=document.createElement('div');\
line.textContent='page error: '+event.message;\
if(box){box.appendChild(line);}else{document.title='page error: '+event.message;}});";

/// Click a column header of the node table to sort by it (again: the other way). The body's
/// `data-ready` says the script ran to its end (the browser test reads it), `data-load-ms`
/// when the page had loaded (the benchmark in the README reads it).
const SORT_SCRIPT: &str = "\
(function(){\
var table=document.getElementById('node-table');\
if(table){\
var body=table.tBodies[0];\
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(header,column){\
var numeric=header.getAttribute('data-type')==='number';\
function key(row){var cell=row.cells[column];\
if(numeric){var value=parseFloat(cell.getAttribute('data-value'));return isNaN(value)?-Infinity:value;}\
return cell.textContent;}\
header.addEventListener('click',function(){\
var descending=header.getAttribute('data-order')!=='descending';\
header.setAttribute('data-order',descending?'descending':'ascending');\
var rows=Array.prototype.slice.call(body.rows);\
rows.sort(function(a,b){var x=key(a),y=key(b);\
var order=numeric?(x<y?-1:(x>y?1:0)):x.localeCompare(y);\
return descending?-order:order;});\
rows.forEach(function(row){body.appendChild(row);});});});}\
document.body.setAttribute('data-ready','yes');\
window.addEventListener('load',function(){\
document.body.setAttribute('data-load-ms',String(Math.round(performance.now())));});})();";
