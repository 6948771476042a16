//! Scoring weights.

use tpipe_ml::{evaluate, initial_weights, train, MlError};

use crate::support::{flex, quadrant_images, quick_config, tiny_net, CLASSES};

#[test]
fn evaluation_counts_add_up() {
    let net = tiny_net(3);
    let outcome = train(
        &net,
        &quick_config(4),
        &quadrant_images(64, 3, 1, 250),
        None,
        &flex(),
    )
    .unwrap();
    let data = quadrant_images(37, 3, 8, 250);
    let evaluation = evaluate(&net, &outcome.weights, &data, &flex()).unwrap();
    assert_eq!(evaluation.count, 37);
    assert_eq!(evaluation.confusion.len(), CLASSES);
    let total: u64 = evaluation.confusion.iter().flatten().sum();
    assert_eq!(total, 37);
    let diagonal: u64 = (0..CLASSES).map(|c| evaluation.confusion[c][c]).sum();
    assert!((evaluation.top1 - diagonal as f64 / 37.0).abs() < 1e-12);
    // With four classes every label is among the top five.
    assert_eq!(evaluation.top5, 1.0);
    for (class, accuracy) in evaluation.per_class_accuracy.iter().enumerate() {
        let row = &evaluation.confusion[class];
        let expected = row[class] as f64 / row.iter().sum::<u64>() as f64;
        assert!((accuracy - expected).abs() < 1e-12);
    }
    let json = serde_json::to_value(&evaluation).unwrap();
    assert_eq!(json["count"], 37);
}

#[test]
fn evaluation_is_deterministic() {
    let net = tiny_net(1);
    let outcome = train(
        &net,
        &quick_config(4),
        &quadrant_images(64, 1, 1, 250),
        None,
        &flex(),
    )
    .unwrap();
    let data = quadrant_images(50, 1, 8, 250);
    assert_eq!(
        evaluate(&net, &outcome.weights, &data, &flex()).unwrap(),
        evaluate(&net, &outcome.weights, &data, &flex()).unwrap()
    );
}

#[test]
fn untrained_initial_weights_cannot_be_evaluated() {
    let net = tiny_net(1);
    let weights = initial_weights(&net, 0).unwrap();
    let error = evaluate(&net, &weights, &quadrant_images(8, 1, 8, 250), &flex()).unwrap_err();
    assert!(matches!(error, MlError::BadWeights(_)), "{error}");
    assert!(error.to_string().contains("normalisation"), "{error}");
}

/// Asking for a backend this build lacks fails before training, naming it and the feature.
#[cfg(any(not(feature = "wgpu"), not(feature = "torch")))]
fn assert_unavailable(backend: tpipe_ml::BackendChoice, name: &str) {
    let options = tpipe_ml::RunOptions { backend, ..flex() };
    let error = train(
        &tiny_net(1),
        &quick_config(0),
        &quadrant_images(8, 1, 8, 250),
        None,
        &options,
    )
    .unwrap_err();
    assert!(
        matches!(&error, MlError::BackendUnavailable { backend, .. } if *backend == name),
        "{error}"
    );
    assert!(
        error.to_string().contains(&format!("--features {name}")),
        "{error}"
    );
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn asking_for_wgpu_without_the_feature_is_a_clear_error() {
    assert_unavailable(tpipe_ml::BackendChoice::Wgpu, "wgpu");
}

#[cfg(not(feature = "torch"))]
#[test]
fn asking_for_torch_without_the_feature_is_a_clear_error() {
    assert_unavailable(tpipe_ml::BackendChoice::Torch, "torch");
}
