//! What pulling a trained network from a remote costs, to weigh against training it.
//!
//! Builds one synthetic entry (a record and an incompressible blob of each size asked for),
//! pushes it, signed, to a shared folder, a WebDAV server (nginx) and an S3 server (moto) on
//! loopback, then times fetching it into an empty cache with signatures required: download,
//! the signature checked against the trusted key, size and blake3 checks, admission into the
//! cache. Also times a lookup of a key the remote lacks, which is what every node that is not
//! shared yet pays during `tpipe run --remote`, and what signing and verifying one entry cost
//! on their own.
//!
//! ```text
//! cargo bench --no-default-features --features remote --bench remote_pull -- [--sizes 1,5] [--iterations 10] [--unsigned]
//! ```

#[path = "../tests/tpipe/remotes/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tpipe::cache::Cache;
use tpipe::hash::ContentHash;
use tpipe::record::{Metrics, OutputRef, Provenance, Record, RECORD_FORMAT};
use tpipe::remote::access::{AccessSettings, Named};
use tpipe::remote::{RemoteLocation, RemoteSettings, RemoteSpec, StoreRemote};
use tpipe::signature::{SigningKey, TrustPolicy};

struct Options {
    sizes_mib: Vec<usize>,
    iterations: usize,
    /// Push unsigned and pull without the trust rule (the figures before issue 21).
    unsigned: bool,
}

fn options() -> Options {
    let mut options = Options {
        sizes_mib: vec![1, 5],
        iterations: 10,
        unsigned: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = args.next().expect("--sizes takes a list such as 1,5");
                options.sizes_mib = list
                    .split(',')
                    .map(|size| size.trim().parse().expect("sizes are whole MiB"))
                    .collect();
            }
            "--iterations" => {
                options.iterations = args
                    .next()
                    .and_then(|count| count.parse().ok())
                    .expect("--iterations takes a number")
            }
            "--unsigned" => options.unsigned = true,
            // `cargo bench` passes `--bench`; anything else is not ours either.
            _ => {}
        }
    }
    options
}

/// Bytes that do not compress, like trained weights.
fn weights(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// A cached entry shaped like a trained base network: one weights blob and a small record.
fn synthetic_entry(cache: &Cache, size: usize) -> Record {
    let output: OutputRef = cache
        .put_blob(&weights(size, size as u64))
        .expect("store the blob");
    let outputs = BTreeMap::from([("weights.safetensors".to_string(), output)]);
    let record = Record {
        format: RECORD_FORMAT,
        key: ContentHash::of_bytes(format!("remote_pull bench, {size} bytes").as_bytes()),
        node: "baseA".into(),
        kind: "train".into(),
        kind_version: 1,
        params: serde_json::Map::new(),
        inputs: Vec::new(),
        external: Vec::new(),
        content: tpipe::key::outputs_digest(&outputs),
        outputs,
        metrics: Metrics::from_value(&serde_json::json!({ "top1": 0.62, "epochs": 10 })),
        headline: None,
        signatures: Vec::new(),
        provenance: Provenance {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            host: "bench".into(),
            ..Provenance::default()
        },
    };
    cache.write_record(&record).expect("store the record");
    record
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bench_remote(
    label: &str,
    location: RemoteLocation,
    settings: &RemoteSettings,
    sizes: &[(usize, Cache, Record)],
    iterations: usize,
) {
    let spec = RemoteSpec {
        location,
        read_only: false,
        origin: "bench".into(),
    };
    let remote = StoreRemote::open(&spec, settings).expect("open the remote");
    for (size, cache, record) in sizes {
        let clock = Instant::now();
        remote.push_entry(record, cache).expect("push");
        let push = clock.elapsed();
        let mut pulls = Vec::new();
        for _ in 0..iterations {
            let empty = tempfile::tempdir().unwrap();
            let fresh = Cache::open(empty.path()).unwrap();
            let clock = Instant::now();
            let fetched = remote
                .fetch_entry(&record.key, &fresh)
                .expect("fetch")
                .expect("the remote has it");
            pulls.push(clock.elapsed());
            assert_eq!(fetched.bytes_downloaded, *size as u64);
        }
        let pull = median(pulls.clone());
        let mib = *size as f64 / (1024.0 * 1024.0);
        println!(
            "{label:<10} {mib:>5.1} MiB   push {:>8.1} ms   pull median {:>8.1} ms (min {:>7.1})   {:>7.1} MiB/s",
            milliseconds(push),
            milliseconds(pull),
            milliseconds(*pulls.iter().min().unwrap()),
            mib / pull.as_secs_f64()
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let fresh = Cache::open(empty.path()).unwrap();
    let missing = ContentHash::of_bytes(b"a key nobody pushed");
    let misses: Vec<Duration> = (0..iterations)
        .map(|_| {
            let clock = Instant::now();
            assert!(remote
                .fetch_entry(&missing, &fresh)
                .expect("lookup")
                .is_none());
            clock.elapsed()
        })
        .collect();
    println!(
        "{label:<10} lookup of a key the remote lacks: median {:.2} ms",
        milliseconds(median(misses))
    );
}

/// What signing a record and checking its signature cost alone, per entry.
fn bench_signatures(key: &SigningKey, record: &Record) {
    const ROUNDS: u32 = 2000;
    let policy = TrustPolicy::new(vec![key.public_key()], true);
    let mut signed = record.clone();
    let clock = Instant::now();
    for _ in 0..ROUNDS {
        signed.signatures.clear();
        key.sign_record(&mut signed);
    }
    let signing = clock.elapsed() / ROUNDS;
    let clock = Instant::now();
    for _ in 0..ROUNDS {
        assert!(policy.check(&signed).unwrap().is_some());
    }
    let verifying = clock.elapsed() / ROUNDS;
    println!(
        "signatures: signing {:.1} µs, verifying {:.1} µs per entry (mean of {ROUNDS})",
        signing.as_secs_f64() * 1e6,
        verifying.as_secs_f64() * 1e6
    );
}

/// A signing key in a private file, and access settings that sign with it and trust only it.
fn signed_access(folder: &Path) -> (SigningKey, AccessSettings) {
    let key = SigningKey::generate("bench").unwrap();
    let file = folder.join("bench.key");
    tpipe::private_file::create(&file, &key.to_secret_text(), "signing key").unwrap();
    let origin = "the bench".to_string();
    let access = AccessSettings {
        signing_key: Some(Named {
            value: file,
            origin: origin.clone(),
        }),
        trusted_keys: vec![Named {
            value: key.public_key().to_string(),
            origin,
        }],
        ..AccessSettings::default()
    };
    (key, access)
}

fn main() {
    let options = options();
    let sources = tempfile::tempdir().unwrap();
    let sizes: Vec<(usize, Cache, Record)> = options
        .sizes_mib
        .iter()
        .map(|mib| {
            let size = mib * 1024 * 1024;
            let cache = Cache::open(&sources.path().join(format!("{mib}"))).unwrap();
            let record = synthetic_entry(&cache, size);
            (size, cache, record)
        })
        .collect();
    let keys = tempfile::tempdir().unwrap();
    let (key, access) = signed_access(keys.path());
    bench_signatures(&key, &sizes[0].2);
    let signed = if options.unsigned {
        RemoteSettings::default()
    } else {
        RemoteSettings {
            access,
            ..RemoteSettings::default()
        }
    };
    println!(
        "pulling a record and its weights blob into an empty cache, {} ({} runs each; loopback servers)",
        if options.unsigned { "unsigned" } else { "signed, signatures required" },
        options.iterations
    );

    let shared = tempfile::tempdir().unwrap();
    bench_remote(
        "directory",
        RemoteLocation::Directory(shared.path().to_path_buf()),
        &signed,
        &sizes,
        options.iterations,
    );

    match std::panic::catch_unwind(servers::WebDavServer::start) {
        Ok(server) => {
            let location = RemoteLocation::parse(&server.url("bench"), Path::new("/")).unwrap();
            bench_remote("webdav", location, &signed, &sizes, options.iterations);
        }
        Err(_) => println!("webdav     skipped: nginx could not start (see above)"),
    }

    match std::panic::catch_unwind(servers::S3Server::start) {
        Ok(server) => {
            let location = RemoteLocation::parse(&server.url("bench"), Path::new("/")).unwrap();
            let settings = RemoteSettings {
                aws: server.environment(),
                ..signed.clone()
            };
            bench_remote("s3", location, &settings, &sizes, options.iterations);
        }
        Err(_) => println!("s3         skipped: moto_server could not start (see above)"),
    }
}
