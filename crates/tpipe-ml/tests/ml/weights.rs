//! Names, shapes, initialisation and validation of weight files.

use tpipe_ml::{initial_weights, train, InitScheme, MlError, NetConfig, Transfer, TransferMode};

use crate::support::{
    flex, floats, metadata, quadrant_images, quick_config, serialize_tensors, tensors, tiny_net,
};

#[test]
fn weights_use_pytorch_names_and_layouts() {
    let weights = initial_weights(&tiny_net(3), 0).unwrap();
    let shapes: Vec<(String, Vec<usize>)> = tensors(&weights)
        .into_iter()
        .map(|(name, (shape, _))| (name, shape))
        .collect();
    let expected = [
        ("conv1.bias", vec![4]),
        ("conv1.weight", vec![4, 3, 3, 3]),
        ("conv2.bias", vec![8]),
        ("conv2.weight", vec![8, 4, 3, 3]),
        ("conv3.bias", vec![8]),
        ("conv3.weight", vec![8, 8, 3, 3]),
        ("conv4.bias", vec![8]),
        ("conv4.weight", vec![8, 8, 3, 3]),
        ("conv5.bias", vec![8]),
        ("conv5.weight", vec![8, 8, 3, 3]),
        ("fc6.bias", vec![16]),
        // Linear weights are [out, in] as in PyTorch; fc6 sees 8 maps of 3×3.
        ("fc6.weight", vec![16, 72]),
        ("fc7.bias", vec![16]),
        ("fc7.weight", vec![16, 16]),
        ("fc8.bias", vec![4]),
        ("fc8.weight", vec![4, 16]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(name, shape)| (name.to_string(), shape))
        .collect();
    assert_eq!(shapes, expected);
}

#[test]
fn default_nets_have_the_documented_fc6_inputs() {
    let fc6_inputs = |net: NetConfig| {
        let weights = initial_weights(&net, 0).unwrap();
        tensors(&weights)["fc6.weight"].0[1]
    };
    assert_eq!(
        fc6_inputs(NetConfig::default_for(1, 28, 28, 10)),
        64 * 3 * 3
    );
    assert_eq!(
        fc6_inputs(NetConfig::default_for(3, 32, 32, 10)),
        64 * 4 * 4
    );
}

#[test]
fn initial_weights_are_byte_stable_per_seed() {
    let net = tiny_net(1);
    assert_eq!(
        initial_weights(&net, 5).unwrap(),
        initial_weights(&net, 5).unwrap()
    );
    assert_ne!(
        initial_weights(&net, 5).unwrap(),
        initial_weights(&net, 6).unwrap()
    );
}

#[test]
fn paper_init_draws_the_paper_spreads_and_biases() {
    let mut net = NetConfig::default_for(1, 28, 28, 10);
    net.init = InitScheme::Paper;
    let all = tensors(&initial_weights(&net, 1).unwrap());
    let spread = |name: &str| {
        let values = floats(&all[name].1);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        let variance = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / values.len() as f64;
        (mean, variance.sqrt())
    };
    for (name, expected_std) in [
        ("conv2.weight", 0.01),
        ("conv4.weight", 0.01),
        ("fc6.weight", 0.005),
        ("fc7.weight", 0.005),
    ] {
        let (mean, std) = spread(name);
        assert!(mean.abs() < expected_std * 0.05, "{name}: mean {mean}");
        assert!((std / expected_std - 1.0).abs() < 0.05, "{name}: std {std}");
    }
    for (layer, bias) in [
        ("conv1", 0.0),
        ("conv2", 1.0),
        ("conv3", 0.0),
        ("conv4", 1.0),
        ("conv5", 1.0),
        ("fc6", 1.0),
        ("fc7", 1.0),
        ("fc8", 0.0),
    ] {
        let values = floats(&all[&format!("{layer}.bias")].1);
        assert!(
            values.iter().all(|&v| v == bias),
            "{layer}.bias should all be {bias}"
        );
    }
}

#[test]
fn modern_init_follows_he_for_relu_layers() {
    let net = NetConfig::default_for(1, 28, 28, 10);
    let all = tensors(&initial_weights(&net, 1).unwrap());
    let values = floats(&all["conv3.weight"].1);
    let std =
        (values.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    let expected = (2.0f64 / (64.0 * 9.0)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "conv3 std {std}, expected {expected}"
    );
}

#[test]
fn weights_record_the_architecture_but_initial_ones_no_normalisation() {
    let meta = metadata(&initial_weights(&tiny_net(1), 0).unwrap());
    assert_eq!(meta["format"], "pt");
    assert!(meta.contains_key("tpipe.architecture"));
    assert!(!meta.contains_key("tpipe.input_mean"));
}

/// Rewrites a weight file through the safetensors crate, letting `edit` change the tensors.
fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)>),
) -> Vec<u8> {
    let mut all = tensors(bytes);
    edit(&mut all);
    serialize_tensors(&all, None)
}

#[test]
fn a_missing_tensor_is_named() {
    let net = tiny_net(1);
    let source = rewrite(&initial_weights(&net, 0).unwrap(), |all| {
        all.remove("conv3.weight");
    });
    let transfer = Transfer {
        source_weights: &source,
        layers_copied: 2,
        mode: TransferMode::Frozen,
    };
    let data = quadrant_images(32, 1, 1, 250);
    let error = train(&net, &quick_config(0), &data, Some(transfer), &flex()).unwrap_err();
    assert!(
        matches!(&error, MlError::MissingTensor { name } if name == "conv3.weight"),
        "{error}"
    );
    assert_eq!(error.to_string(), "weights have no tensor `conv3.weight`");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let net = tiny_net(1);
    let source = rewrite(&initial_weights(&net, 0).unwrap(), |all| {
        let (shape, data) = all.get_mut("fc7.bias").unwrap();
        *shape = vec![8];
        data.truncate(8 * 4);
    });
    let transfer = Transfer {
        source_weights: &source,
        layers_copied: 2,
        mode: TransferMode::Frozen,
    };
    let data = quadrant_images(32, 1, 1, 250);
    let error = train(&net, &quick_config(0), &data, Some(transfer), &flex()).unwrap_err();
    match error {
        MlError::ShapeMismatch {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "fc7.bias");
            assert_eq!(expected, vec![16]);
            assert_eq!(found, vec![8]);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
}

#[test]
fn weights_of_another_architecture_are_refused() {
    let source = initial_weights(&tiny_net(1), 0).unwrap();
    // Padding 2 then 0 keeps every tensor shape (3×3 maps grow to 5×5 and shrink back), so
    // only the recorded architecture tells the nets apart.
    let mut reshaped = tiny_net(1);
    reshaped.conv[2].padding = 2;
    reshaped.conv[3].padding = 0;
    let data = quadrant_images(32, 1, 1, 250);
    let transfer = Transfer {
        source_weights: &source,
        layers_copied: 1,
        mode: TransferMode::Frozen,
    };
    let error = train(&reshaped, &quick_config(0), &data, Some(transfer), &flex()).unwrap_err();
    assert!(matches!(error, MlError::BadWeights(_)), "{error}");
    assert!(error.to_string().contains("made for the net"), "{error}");
}

#[test]
fn garbage_is_not_weights() {
    let net = tiny_net(1);
    let data = quadrant_images(32, 1, 1, 250);
    let transfer = Transfer {
        source_weights: b"not a safetensors file",
        layers_copied: 1,
        mode: TransferMode::Frozen,
    };
    let error = train(&net, &quick_config(0), &data, Some(transfer), &flex()).unwrap_err();
    assert!(matches!(error, MlError::BadWeights(_)), "{error}");
}
