//! Metadata of weight files: reading it, adding entries (lineage), and the net read back from
//! the architecture tag.

use std::collections::{BTreeMap, HashMap};

use tpipe_ml::{
    evaluate, initial_weights, net_config_of_weights, train, weights_metadata, with_metadata,
    InitScheme, MlError, NetConfig, Transfer, TransferMode,
};

use crate::support::{
    flex, metadata, quadrant_images, quick_config, serialize_tensors, tensors, tiny_net,
};

/// Weights of the tiny grey net after a short training, so they carry a normalisation.
fn trained_weights() -> Vec<u8> {
    let data = quadrant_images(32, 1, 3, 250);
    train(&tiny_net(1), &quick_config(4), &data, None, &flex())
        .unwrap()
        .weights
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// The JSON header of a safetensors file, padding included, and the data after it.
fn split_file(bytes: &[u8]) -> (&str, &[u8]) {
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + length]).unwrap();
    (header, &bytes[8 + length..])
}

#[test]
fn added_metadata_keeps_the_canonical_layout_and_the_data() {
    let weights = trained_weights();
    let lineage = entries(&[
        ("lineage.source", "0123abcd"),
        ("a.first", "sorts before `format`"),
        ("zz.last", "sorts after every tpipe key"),
    ]);
    let added = with_metadata(&weights, &lineage).unwrap();

    let (header, data) = split_file(&added);
    let (original_header, original_data) = split_file(&weights);
    assert_eq!(data, original_data, "tensor data must be copied unchanged");
    assert_eq!(header.len() % 8, 0, "header not padded to a multiple of 8");
    // Taking the entries back out of the text must leave exactly what `train` wrote: the same
    // compact JSON with the entries in sorted places, repadded.
    let mut stripped = header.trim_end().to_string();
    for (key, value) in &lineage {
        let entry = format!("\"{key}\":\"{value}\"");
        let before = stripped.len();
        stripped =
            stripped
                .replacen(&format!("{entry},"), "", 1)
                .replacen(&format!(",{entry}"), "", 1);
        assert!(stripped.len() < before, "`{key}` missing from {header}");
    }
    assert_eq!(stripped, original_header.trim_end());
    let metadata_keys: Vec<usize> = ["a.first", "format", "lineage.source", "tpipe.", "zz.last"]
        .iter()
        .map(|key| header.find(&format!("\"{key}")).unwrap())
        .collect();
    assert!(
        metadata_keys.is_sorted(),
        "metadata keys out of order: {header}"
    );
}

#[test]
fn adding_metadata_is_deterministic_and_idempotent() {
    let weights = trained_weights();
    let first = entries(&[("lineage.source", "0123abcd")]);
    let second = entries(&[("lineage.chain", "A->B"), ("lineage.source", "0123abcd")]);
    let once = with_metadata(&weights, &second).unwrap();
    assert_eq!(once, with_metadata(&weights, &second).unwrap());
    assert_eq!(once, with_metadata(&once, &second).unwrap());
    // The order in which entries arrive does not matter, only the final map.
    let in_steps = with_metadata(&with_metadata(&weights, &first).unwrap(), &second).unwrap();
    assert_eq!(once, in_steps);
    // A file the crate wrote is already canonical: adding nothing changes no byte.
    assert_eq!(with_metadata(&weights, &BTreeMap::new()).unwrap(), weights);
    let initial = initial_weights(&tiny_net(3), 7).unwrap();
    assert_eq!(with_metadata(&initial, &BTreeMap::new()).unwrap(), initial);
}

#[test]
fn metadata_round_trips_and_later_entries_replace_earlier_ones() {
    let weights = trained_weights();
    // Quotes, backslashes, newlines and non-ASCII text must survive JSON escaping.
    let lineage = entries(&[
        ("lineage.source", "0123abcd"),
        ("lineage.note", "say \"hi\"\\n\nthen\tgo — ü"),
    ]);
    let added = with_metadata(&weights, &lineage).unwrap();
    let mut expected = weights_metadata(&weights).unwrap();
    expected.extend(lineage.clone());
    assert_eq!(weights_metadata(&added).unwrap(), expected);
    // The safetensors crate reads the same map.
    assert_eq!(metadata(&added), expected);

    let replaced = with_metadata(&added, &entries(&[("lineage.source", "ffff")])).unwrap();
    let read_back = weights_metadata(&replaced).unwrap();
    assert_eq!(read_back["lineage.source"], "ffff");
    assert_eq!(read_back["lineage.note"], lineage["lineage.note"]);
    assert_eq!(read_back.len(), expected.len());
}

#[test]
fn weights_with_added_metadata_evaluate_and_transfer_like_the_originals() {
    let net = tiny_net(1);
    let weights = trained_weights();
    let added = with_metadata(&weights, &entries(&[("lineage.source", "0123abcd")])).unwrap();
    assert_eq!(tensors(&added), tensors(&weights));

    let held_out = quadrant_images(40, 1, 9, 250);
    let plain = evaluate(&net, &weights, &held_out, &flex()).unwrap();
    let with_lineage = evaluate(&net, &added, &held_out, &flex()).unwrap();
    assert_eq!(with_lineage.confusion, plain.confusion);
    assert_eq!(with_lineage.top1, plain.top1);

    let data = quadrant_images(32, 1, 6, 180);
    let transfer_from = |source: &[u8]| {
        let transfer = Transfer {
            source_weights: source,
            layers_copied: 3,
            mode: TransferMode::Frozen,
        };
        train(&net, &quick_config(2), &data, Some(transfer), &flex())
            .unwrap()
            .weights
    };
    assert_eq!(transfer_from(&added), transfer_from(&weights));
}

#[test]
fn the_crates_own_metadata_keys_cannot_be_set() {
    let weights = initial_weights(&tiny_net(1), 0).unwrap();
    for key in [
        "format",
        "tpipe.architecture",
        "tpipe.input_mean",
        "tpipe.input_std",
        "tpipe.weights_version",
    ] {
        let extra = entries(&[("lineage.source", "0123abcd"), (key, "anything")]);
        let error = with_metadata(&weights, &extra).unwrap_err();
        assert!(
            matches!(&error, MlError::ReservedMetadataKey { key: refused } if refused == key),
            "{key}: {error}"
        );
        assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
    }
}

#[test]
fn garbage_has_no_metadata() {
    for bytes in [&b"not a safetensors file"[..], &[]] {
        let error = weights_metadata(bytes).unwrap_err();
        assert!(matches!(error, MlError::BadWeights(_)), "{error}");
        let error = with_metadata(bytes, &BTreeMap::new()).unwrap_err();
        assert!(matches!(error, MlError::BadWeights(_)), "{error}");
    }
}

/// The net as `net_config_of_weights` should give it back: the tag has no dropout or init.
fn as_evaluated(net: &NetConfig) -> NetConfig {
    NetConfig {
        dropout: 0.0,
        init: InitScheme::Modern,
        ..net.clone()
    }
}

#[test]
fn the_net_is_read_back_from_the_architecture_tag() {
    let mut no_pools = tiny_net(3);
    for layer in &mut no_pools.conv {
        layer.max_pool = false;
    }
    no_pools.conv[0].kernel = 4;
    no_pools.conv[0].stride = 2;
    no_pools.conv[0].padding = 0;
    no_pools.fc_widths = [24, 10];
    let mut paper = NetConfig::default_for(1, 28, 28, 10);
    paper.init = InitScheme::Paper;
    let nets = [
        tiny_net(1),
        no_pools,
        paper,
        NetConfig::default_for(3, 32, 32, 100),
    ];
    for net in nets {
        let read_back = net_config_of_weights(&initial_weights(&net, 0).unwrap()).unwrap();
        assert_eq!(read_back, as_evaluated(&net));
        // The same tag, so the weights load under the net read back.
        let tag = |net: &NetConfig| {
            weights_metadata(&initial_weights(net, 0).unwrap()).unwrap()["tpipe.architecture"]
                .clone()
        };
        assert_eq!(tag(&read_back), tag(&net));
    }
}

#[test]
fn the_net_read_back_evaluates_the_weights() {
    let weights = trained_weights();
    let added = with_metadata(&weights, &entries(&[("lineage.source", "0123abcd")])).unwrap();
    let net = net_config_of_weights(&added).unwrap();
    assert_eq!(net, as_evaluated(&tiny_net(1)));
    let held_out = quadrant_images(40, 1, 9, 250);
    assert_eq!(
        evaluate(&net, &added, &held_out, &flex())
            .unwrap()
            .confusion,
        evaluate(&tiny_net(1), &weights, &held_out, &flex())
            .unwrap()
            .confusion
    );
}

/// The tensors of `bytes` under new metadata, written by the safetensors crate.
fn with_raw_metadata(bytes: &[u8], metadata: HashMap<String, String>) -> Vec<u8> {
    serialize_tensors(&tensors(bytes), Some(metadata))
}

fn with_tag(bytes: &[u8], tag: &str) -> Vec<u8> {
    let metadata = HashMap::from([("tpipe.architecture".to_string(), tag.to_string())]);
    with_raw_metadata(bytes, metadata)
}

#[test]
fn a_missing_or_malformed_architecture_tag_is_refused() {
    let weights = initial_weights(&tiny_net(1), 0).unwrap();
    let tag = weights_metadata(&weights).unwrap()["tpipe.architecture"].clone();
    assert_eq!(
        tag,
        "in1x12x12;conv4k3s1p1m,8k3s1p1m,8k3s1p1,8k3s1p1,8k3s1p1;fc16,16;classes4"
    );
    // The rewritten file itself is fine: only the tag is wrong in the cases below.
    assert_eq!(
        net_config_of_weights(&with_tag(&weights, &tag)).unwrap(),
        as_evaluated(&tiny_net(1))
    );

    let error = net_config_of_weights(&with_raw_metadata(&weights, HashMap::new())).unwrap_err();
    assert!(matches!(error, MlError::BadWeights(_)), "{error}");
    assert!(
        error.to_string().contains("no `tpipe.architecture`"),
        "{error}"
    );

    let malformed = [
        String::new(),
        "garbage".to_string(),
        // Four conv layers, then six.
        tag.replace("8k3s1p1m,", ""),
        tag.replace("8k3s1p1m,", "8k3s1p1m,8k3s1p1m,"),
        format!("{tag};extra"),
        tag.replace("in1x12x12", "in1x12"),
        tag.replace("fc16,16", "fc16"),
        tag.replace("classes4", "classes"),
        tag.replace("classes4", "classes-4"),
        // Numbers that parse but are not how the tag writes them.
        tag.replace("in1x", "in01x"),
        tag.replace("fc16", "fc+16"),
        tag.replace("4k3s1p1m", "4k3s1p1mm"),
        tag.replace("4k3s1p1m", "4k3p1s1m"),
        tag.replace(";", ","),
    ];
    for bad in malformed {
        let error = net_config_of_weights(&with_tag(&weights, &bad)).unwrap_err();
        assert!(
            matches!(&error, MlError::BadWeights(message) if message.contains("malformed")),
            "`{bad}`: {error}"
        );
    }

    // Well-formed tags of nets that cannot exist or do not fit the tensors.
    let error = net_config_of_weights(&with_tag(&weights, &tag.replace("classes4", "classes1")))
        .unwrap_err();
    assert!(error.to_string().contains("cannot work"), "{error}");
    let error =
        net_config_of_weights(&with_tag(&weights, &tag.replace("fc16,16", "fc16,32"))).unwrap_err();
    assert!(matches!(error, MlError::ShapeMismatch { .. }), "{error}");
}
