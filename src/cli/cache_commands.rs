//! `tpipe show`, `tpipe cache ls|verify|gc`.

use std::collections::BTreeSet;
use std::io::Write;

use super::{exit, Failure};
use crate::cache::Cache;
use crate::hash::ContentHash;
use crate::plan::{plan, PlanStatus};
use crate::session::Session;

pub fn show(
    session: &Session,
    name: &str,
    json_only: bool,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let position = session.position_of(name).ok_or_else(|| {
        let hint = crate::schema::nearest_name(
            name,
            session.pipeline.nodes.iter().map(|node| node.name.as_str()),
        )
        .map(|nearest| format!(" (hint: did you mean `{nearest}`?)"))
        .unwrap_or_default();
        Failure::usage(format!(
            "no node named `{name}` in `{}`{hint}",
            session.pipeline.file.display()
        ))
    })?;
    let selection = session
        .selection(&[name.to_string()])
        .map_err(Failure::usage)?;
    let planned = plan(session, &selection, &[]);
    let node_plan = planned
        .nodes
        .iter()
        .find(|node| node.name == name)
        .expect("the target is planned");
    let key = match (&node_plan.status, &node_plan.key) {
        (PlanStatus::Cached, Some(key)) => *key,
        _ => {
            let why = node_plan.error.clone().unwrap_or_else(|| {
                node_plan
                    .reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            writeln!(
                out,
                "node `{name}` ({}) is not built: {why}",
                session.pipeline.nodes[position].kind
            )?;
            if let Some(key) = &node_plan.key {
                show_job_log(session, key, name, out)?;
            }
            return Ok(exit::BUILD_FAILED);
        }
    };
    let record = session
        .cache
        .read_record(&key)
        .map_err(Failure::failed)?
        .ok_or_else(|| Failure::failed(format!("record {key} vanished")))?;
    serde_json::to_writer_pretty(&mut *out, &record)
        .map_err(|error| Failure::failed(error.to_string()))?;
    writeln!(out)?;
    if !json_only {
        writeln!(out, "\n{}", signed_by(session, &record))?;
        if let Some((heading, rows)) = training_curve(&record.metrics.to_value(), CURVE_EPOCHS) {
            writeln!(out, "\n{heading}")?;
            super::table::write_rows(out, &rows)?;
        }
    }
    Ok(exit::SUCCESS)
}

/// Who signed a record, judged by the trust rule of the project's configuration.
fn signed_by(session: &Session, record: &crate::record::Record) -> String {
    if record.signatures.is_empty() {
        return match &record.provenance.fetched_from {
            Some(remote) => {
                format!("not signed (fetched from `{remote}`, which did not require it)")
            }
            None => "not signed: built here (records are signed when pushed with a `signing_key`)"
                .to_string(),
        };
    }
    let choice = crate::remote::RemoteChoice::from_environment(&session.project_dir);
    let policy = choice
        .settings(crate::remote::RemoteSettings::from_environment())
        .map_err(|error| error.to_string())
        .and_then(|settings| {
            settings
                .access
                .trust_policy()
                .map_err(|error| error.to_string())
        });
    match policy {
        Ok(policy) => {
            let signers: Vec<String> = policy
                .signers(record)
                .iter()
                .map(ToString::to_string)
                .collect();
            format!("signed by {}", signers.join(", "))
        }
        Err(error) => format!(
            "signed {} times (whether by trusted keys is unknown: {error})",
            record.signatures.len()
        ),
    }
}

/// How many of a training's last epochs `show` prints.
const CURVE_EPOCHS: usize = 4;

/// The last `epochs` epochs of a training curve, from a train or transfer node's metrics: is
/// the loss still falling when the learning rate has dropped? A heading and table rows; `None`
/// for other nodes.
fn training_curve(
    metrics: &serde_json::Value,
    epochs: usize,
) -> Option<(String, Vec<Vec<String>>)> {
    let series = |name: &str| -> Option<Vec<f64>> {
        metrics
            .get(name)?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_f64)
            .collect()
    };
    let losses = series("epoch_losses")?;
    let accuracies = series("epoch_accuracies").unwrap_or_default();
    let rates = series("epoch_learning_rates").unwrap_or_default();
    // Only trainings whose split has validation images score them.
    let validation = series("epoch_validation_accuracies").filter(|values| !values.is_empty());
    let first = losses.len().saturating_sub(epochs);
    let heading = format!(
        "training curve, last {} of {} epochs (training mode: dropout and augmentation on):",
        losses.len() - first,
        losses.len()
    );
    let mut rows = vec![vec![
        "epoch".to_string(),
        "learning rate".into(),
        "loss".into(),
        "train accuracy".into(),
    ]];
    if validation.is_some() {
        rows[0].push("validation accuracy".into());
    }
    for (index, loss) in losses.iter().enumerate().skip(first) {
        let optional = |values: &[f64], digits: usize| {
            values
                .get(index)
                .map(|value| format!("{value:.digits$}"))
                .unwrap_or_else(|| "—".into())
        };
        rows.push(vec![
            (index + 1).to_string(),
            rates
                .get(index)
                .map(|rate| format!("{rate}"))
                .unwrap_or_else(|| "—".into()),
            format!("{loss:.4}"),
            optional(&accuracies, 4),
        ]);
        if let Some(validation) = &validation {
            rows.last_mut()
                .expect("a row was just pushed")
                .push(optional(validation, 4));
        }
    }
    Some((heading, rows))
}

pub fn list(cache: &Cache, out: &mut impl Write) -> Result<u8, Failure> {
    let mut rows = vec![vec![
        "key".to_string(),
        "node".into(),
        "kind".into(),
        "size".into(),
        "finished".into(),
    ]];
    for key in cache.record_keys().map_err(Failure::failed)? {
        match cache.read_record(&key) {
            Ok(Some(record)) => {
                let bytes: u64 = record.outputs.values().map(|output| output.size).sum();
                rows.push(vec![
                    key.short(),
                    record.node,
                    record.kind,
                    human_bytes(bytes),
                    record.provenance.finished_at,
                ]);
            }
            Ok(None) => {}
            Err(error) => rows.push(vec![
                key.short(),
                "(unreadable)".into(),
                String::new(),
                String::new(),
                error.to_string(),
            ]),
        }
    }
    for row in &rows {
        writeln!(
            out,
            "{:<12}  {:<24}  {:<10}  {:>9}  {}",
            row[0], row[1], row[2], row[3], row[4]
        )?;
    }
    writeln!(
        out,
        "\n{} records in `{}`",
        rows.len() - 1,
        cache.root().display()
    )?;
    Ok(exit::SUCCESS)
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

pub fn verify(cache: &Cache, out: &mut impl Write) -> Result<u8, Failure> {
    let mut problems = 0;
    let blobs = cache.blobs().map_err(Failure::failed)?;
    for (hash, path) in &blobs {
        // A full rehash on purpose: this is the command that does not trust stamps.
        match ContentHash::of_file(path) {
            Ok(actual) if actual == *hash => {}
            Ok(actual) => {
                problems += 1;
                writeln!(
                    out,
                    "corrupt blob `{}`: content hashes to {}",
                    path.display(),
                    actual.short()
                )?;
            }
            Err(error) => {
                problems += 1;
                writeln!(out, "unreadable blob `{}`: {error}", path.display())?;
            }
        }
    }
    let keys = cache.record_keys().map_err(Failure::failed)?;
    for key in &keys {
        match cache.read_record(key) {
            Ok(Some(record)) => {
                for (name, output) in &record.outputs {
                    if !cache.blob_path(&output.blob).exists() {
                        problems += 1;
                        writeln!(
                            out,
                            "record {} (node `{}`): output `{name}` is missing",
                            key.short(),
                            record.node
                        )?;
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                problems += 1;
                writeln!(out, "{error}")?;
            }
        }
    }
    // An action must describe its key: `exec-node` and cluster jobs build from it alone.
    let actions = cache.action_keys().map_err(Failure::failed)?;
    for key in &actions {
        if let Err(error) = cache.read_action(key) {
            problems += 1;
            // A run writes a node's action again before it builds the node; while the node's
            // record is good nothing reads its action, so say how to rewrite it now.
            let fix = match cache.read_record(key) {
                Ok(Some(record)) => format!(
                    "node `{}` is built, so nothing reads it now; `tpipe run FILE --force {}` writes it again",
                    record.node, record.node
                ),
                _ => "the next `tpipe run` that builds its node writes it again".to_string(),
            };
            writeln!(out, "damaged action {}: {error} ({fix})", key.short())?;
        }
    }
    writeln!(
        out,
        "checked {} blobs, {} records and {} actions: {problems} problem{}",
        blobs.len(),
        keys.len(),
        actions.len(),
        if problems == 1 { "" } else { "s" }
    )?;
    if problems > 0 {
        writeln!(
            out,
            "damaged entries are rebuilt by the next `tpipe run` that needs them"
        )?;
    }
    Ok(if problems == 0 {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

/// Keeps the records that the given pipelines currently reach (their nodes' present keys) and
/// the blobs those records use; removes the rest.
pub fn gc(sessions: &[Session], dry_run: bool, out: &mut impl Write) -> Result<u8, Failure> {
    let Some(first) = sessions.first() else {
        return Ok(exit::SUCCESS);
    };
    let cache = &first.cache;
    if sessions
        .iter()
        .any(|session| session.cache.root() != cache.root())
    {
        return Err(Failure::usage(
            "the pipelines given to `cache gc` use different caches; run it once per cache",
        ));
    }
    let mut live_keys = BTreeSet::new();
    for session in sessions {
        let everything = session.selection(&[]).map_err(Failure::usage)?;
        for node in plan(session, &everything, &[]).nodes {
            if node.status == PlanStatus::Cached {
                live_keys.insert(node.key.expect("cached nodes have keys"));
            }
        }
    }
    let mut live_blobs = BTreeSet::new();
    let mut dead_records = Vec::new();
    for key in cache.record_keys().map_err(Failure::failed)? {
        if live_keys.contains(&key) {
            if let Ok(Some(record)) = cache.read_record(&key) {
                live_blobs.extend(record.outputs.values().map(|output| output.blob));
            }
        } else {
            dead_records.push(key);
        }
    }
    // Actions whose build never finished (it failed, or was interrupted) have no record to go
    // with; they are removed like dead records. Removing a record removes its action too.
    let dead_with_records: BTreeSet<ContentHash> = dead_records.iter().copied().collect();
    for key in cache.action_keys().map_err(Failure::failed)? {
        if !live_keys.contains(&key) && !dead_with_records.contains(&key) {
            dead_records.push(key);
        }
    }
    let dead_blobs: Vec<_> = cache
        .blobs()
        .map_err(Failure::failed)?
        .into_iter()
        .filter(|(hash, _)| !live_blobs.contains(hash))
        .collect();
    let freed: u64 = dead_blobs
        .iter()
        .filter_map(|(_, path)| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let verb = if dry_run { "would remove" } else { "removed" };
    if !dry_run {
        // Records first: a record must never point at a blob that is gone.
        for key in &dead_records {
            cache.remove_record(key).map_err(Failure::failed)?;
        }
        for (_, path) in &dead_blobs {
            std::fs::remove_file(path).map_err(|error| {
                Failure::failed(format!("cannot remove `{}`: {error}", path.display()))
            })?;
        }
    }
    writeln!(
        out,
        "{verb} {} records and {} blobs ({}); kept {} records",
        dead_records.len(),
        dead_blobs.len(),
        human_bytes(freed),
        live_keys.len()
    )?;
    Ok(exit::SUCCESS)
}

/// The log of the last cluster job that tried to build `key`, on any backend whose logs are
/// there: where it is and how it ends.
fn show_job_log(
    session: &Session,
    key: &ContentHash,
    node: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let files: Vec<_> = crate::remote::config::user_config_path()
        .into_iter()
        .chain([session.project_dir.join("tpipe.toml")])
        .collect();
    // A config that does not read is `run`'s to report; here every backend keeps its defaults.
    let backends = crate::executors::backends();
    let config = crate::cluster::ExecutorConfig::load(&files, backends).unwrap_or_default();
    for entry in backends {
        let settings = (entry.settings)(config.sections_of(entry)).unwrap_or_default();
        let logs = crate::cluster::logs_dir(entry, &settings, session.cache.root());
        if let Some(log) = crate::cluster::latest_log(&logs, key, node) {
            writeln!(out, "its last {}'s log: {}", entry.job_noun, log.display())?;
            for line in crate::cluster::log_tail(&log, 10) {
                writeln!(out, "  {line}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_training_curve_shows_the_last_epochs_with_their_learning_rates() {
        let metrics = json!({
            "epoch_losses": [0.9, 0.5, 0.4, 0.35, 0.3],
            "epoch_accuracies": [0.6, 0.8, 0.85, 0.87, 0.9],
            "epoch_learning_rates": [0.01, 0.01, 0.01, 0.001, 0.001],
        });
        let (heading, rows) = training_curve(&metrics, 3).unwrap();
        assert!(
            heading.starts_with("training curve, last 3 of 5 epochs"),
            "{heading}"
        );
        assert_eq!(
            rows[1..],
            [
                vec![
                    "3".to_string(),
                    "0.01".into(),
                    "0.4000".into(),
                    "0.8500".into()
                ],
                vec![
                    "4".to_string(),
                    "0.001".into(),
                    "0.3500".into(),
                    "0.8700".into()
                ],
                vec![
                    "5".to_string(),
                    "0.001".into(),
                    "0.3000".into(),
                    "0.9000".into()
                ],
            ]
        );
        // Older records have losses only; evaluations have no curve.
        let (_, rows) = training_curve(&json!({ "epoch_losses": [0.5] }), 3).unwrap();
        assert_eq!(rows[1], ["1", "—", "0.5000", "—"]);
        assert_eq!(training_curve(&json!({ "top1": 0.9 }), 3), None);
    }

    #[test]
    fn a_training_that_scored_validation_images_shows_them_in_a_column_of_their_own() {
        let metrics = json!({
            "epoch_losses": [0.9, 0.5],
            "epoch_accuracies": [0.6, 0.8],
            "epoch_learning_rates": [0.01, 0.001],
            "epoch_validation_accuracies": [0.55, 0.75],
        });
        let (_, rows) = training_curve(&metrics, 4).unwrap();
        assert_eq!(rows[0].last().unwrap(), "validation accuracy");
        assert_eq!(rows[1], ["1", "0.01", "0.9000", "0.6000", "0.5500"]);
        assert_eq!(rows[2], ["2", "0.001", "0.5000", "0.8000", "0.7500"]);
    }
}
