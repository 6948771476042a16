//! `tpipe cache verify --remote URL`: every record on a remote, checked as a fetch checks it
//! (it parses, names its key, its digest matches its outputs, then the trust rule), and every
//! blob it names present with the size it says. Blobs are listed, not downloaded: a fetch
//! rehashes each one before anything is used.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::transfer::{pool, TransferObserver};
use super::{RemoteError, StoreRemote};
use crate::hash::ContentHash;
use crate::signature::SignerStatus;

/// What a remote holds, judged.
#[derive(Debug, Default)]
pub struct RemoteVerifyReport {
    pub records: usize,
    pub blobs: usize,
    /// How many records each trusted key signed.
    pub trusted_signers: BTreeMap<String, usize>,
    /// Records used without a trusted signature (only where signatures are not required).
    pub accepted_unsigned: usize,
    /// One line per problem, naming the record and its node.
    pub problems: Vec<String>,
}

/// Checks every record on `remote` (side by side) and the blobs they name.
pub fn verify_remote(
    remote: &StoreRemote,
    observer: &dyn TransferObserver,
) -> Result<RemoteVerifyReport, RemoteError> {
    let records = remote.list_records()?;
    let blobs: HashMap<ContentHash, u64> = remote
        .list_blobs()?
        .into_iter()
        .map(|(hash, listed)| (hash, listed.size))
        .collect();
    observer.start("verify", records.len());
    let checked: Vec<Result<Checked, RemoteError>> = pool().install(|| {
        records
            .par_iter()
            .map(|(key, _)| {
                let result = check_entry(remote, key, &blobs);
                observer.advance(&key.short());
                result
            })
            .collect()
    });
    observer.finish();
    let mut report = RemoteVerifyReport {
        records: records.len(),
        blobs: blobs.len(),
        ..RemoteVerifyReport::default()
    };
    for result in checked {
        match result {
            Ok(checked) => {
                match checked.signer {
                    Some(signer) => *report.trusted_signers.entry(signer).or_default() += 1,
                    None if checked.problems.is_empty() => report.accepted_unsigned += 1,
                    None => {}
                }
                report.problems.extend(checked.problems);
            }
            Err(error) if error.is_remote_wide() => return Err(error),
            Err(error) => report.problems.push(error.to_string()),
        }
    }
    report.problems.sort();
    Ok(report)
}

struct Checked {
    signer: Option<String>,
    problems: Vec<String>,
}

fn check_entry(
    remote: &StoreRemote,
    key: &ContentHash,
    blobs: &HashMap<ContentHash, u64>,
) -> Result<Checked, RemoteError> {
    let Some(record) = remote.read_record(key)? else {
        return Ok(Checked {
            signer: None,
            problems: vec![format!("record {}: went away while checking", key.short())],
        });
    };
    let what = format!("record {} (node `{}`)", key.short(), record.node);
    let mut problems = Vec::new();
    let signer = match remote.trust_policy().check(&record) {
        Ok(signer) => signer,
        Err(problem) => {
            problems.push(format!("{what}: {problem}"));
            None
        }
    };
    // Signers of another key are worth a note even where signatures are optional.
    for status in remote.trust_policy().signers(&record) {
        if status == SignerStatus::Unreadable {
            problems.push(format!("{what}: carries an unreadable signature"));
        }
    }
    for (output, reference) in &record.outputs {
        match blobs.get(&reference.blob) {
            Some(size) if *size == reference.size => {}
            Some(size) => problems.push(format!(
                "{what}: output `{output}` (blob {}) has {size} bytes where the record says {}",
                reference.blob.short(),
                reference.size
            )),
            None => problems.push(format!(
                "{what}: output `{output}` (blob {}) is missing",
                reference.blob.short()
            )),
        }
    }
    Ok(Checked { signer, problems })
}
