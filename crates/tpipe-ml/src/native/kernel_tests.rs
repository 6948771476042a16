//! The native kernels one at a time: against direct f64 loops, against finite differences of
//! their own forward passes, and against burn's autodiff (flex) for a whole conv layer, on random
//! shapes that include odd sizes, strides, padding wider than half the kernel and batches of one.

use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::*;
use crate::network::read_back;

/// SplitMix64 values in [-1, 1): the same inputs on every run.
struct Values(u64);

impl Values {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn float(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn floats(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.float()).collect()
    }

    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next_u64() % (high - low + 1) as u64) as usize
    }
}

/// A random convolution shape: odd and even sizes, kernels 1..5, strides 1..2, padding up to the
/// kernel minus one, batches of 1..3.
fn random_shape(values: &mut Values) -> ConvShape {
    loop {
        let kernel = values.between(1, 5);
        let stride = values.between(1, 2);
        let padding = values.between(0, kernel - 1);
        let (height, width) = (values.between(3, 11), values.between(3, 11));
        let out = |size: usize| {
            (size + 2 * padding)
                .checked_sub(kernel)
                .map(|s| s / stride + 1)
        };
        if let (Some(out_height), Some(out_width)) = (out(height), out(width)) {
            return ConvShape {
                batch: values.between(1, 3),
                in_channels: values.between(1, 4),
                height,
                width,
                kernel,
                stride,
                padding,
                out_height,
                out_width,
            };
        }
    }
}

/// The input pixel output `(oy, ox)` reads at kernel offset `(dy, dx)`, if inside the image.
fn source(shape: &ConvShape, oy: usize, ox: usize, dy: usize, dx: usize) -> Option<(usize, usize)> {
    let y = (oy * shape.stride + dy).checked_sub(shape.padding)?;
    let x = (ox * shape.stride + dx).checked_sub(shape.padding)?;
    (y < shape.height && x < shape.width).then_some((y, x))
}

/// The convolution written out in f64: CNHW input, `[out, in, k, k]` weight, CNHW output.
fn direct_convolution(
    input: &[f32],
    weight: &[f32],
    shape: &ConvShape,
    outputs: usize,
) -> Vec<f64> {
    let (k, plane) = (shape.kernel, shape.height * shape.width);
    let positions = shape.out_height * shape.out_width;
    let mut out = vec![0f64; outputs * shape.batch * positions];
    for o in 0..outputs {
        for n in 0..shape.batch {
            for oy in 0..shape.out_height {
                for ox in 0..shape.out_width {
                    let mut sum = 0f64;
                    for c in 0..shape.in_channels {
                        for dy in 0..k {
                            for dx in 0..k {
                                if let Some((y, x)) = source(shape, oy, ox, dy, dx) {
                                    let w = weight[((o * shape.in_channels + c) * k + dy) * k + dx];
                                    let v =
                                        input[(c * shape.batch + n) * plane + y * shape.width + x];
                                    sum += w as f64 * v as f64;
                                }
                            }
                        }
                    }
                    out[(o * shape.batch + n) * positions + oy * shape.out_width + ox] = sum;
                }
            }
        }
    }
    out
}

fn assert_close(actual: &[f32], expected: &[f64], tolerance: f64, context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: lengths");
    let scale = expected.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a as f64 - e).abs() <= tolerance * scale,
            "{context}: element {index} is {a}, expected {e} (scale {scale})"
        );
    }
}

#[test]
fn unfold_then_one_product_is_the_direct_convolution() {
    let mut values = Values(1);
    for _ in 0..60 {
        let shape = random_shape(&mut values);
        let outputs = values.between(1, 4);
        let input = values.floats(shape.in_channels * shape.batch * shape.height * shape.width);
        let weight = values.floats(outputs * shape.column_rows());
        let mut columns = vec![f32::NAN; shape.column_rows() * shape.column_count()];
        unfold(&input, &shape, &mut columns);
        let mut maps = vec![0f32; outputs * shape.column_count()];
        matmul(
            &mut maps,
            Matrix::new(&weight, outputs, shape.column_rows()),
            Matrix::new(&columns, shape.column_rows(), shape.column_count()),
            false,
        );
        let expected = direct_convolution(&input, &weight, &shape, outputs);
        assert_close(&maps, &expected, 1e-5, &format!("{shape:?}"));
    }
}

#[test]
fn fold_is_the_adjoint_of_unfold() {
    // ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩ for every x and c: fold gives conv's input gradient.
    let mut values = Values(2);
    for _ in 0..60 {
        let shape = random_shape(&mut values);
        let input = values.floats(shape.in_channels * shape.batch * shape.height * shape.width);
        let grad_columns = values.floats(shape.column_rows() * shape.column_count());
        let mut columns = vec![0f32; grad_columns.len()];
        unfold(&input, &shape, &mut columns);
        let mut folded = vec![f32::NAN; input.len()];
        // fold may zero the padding's entries of its input: give it a copy.
        fold(&mut grad_columns.clone(), &shape, &mut folded);
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum::<f64>()
        };
        let (left, right) = (dot(&columns, &grad_columns), dot(&input, &folded));
        let scale = columns.len() as f64;
        assert!(
            (left - right).abs() <= 1e-6 * scale,
            "{shape:?}: {left} vs {right}"
        );
    }
}

#[test]
fn long_products_sum_like_one_product() {
    let mut values = Values(3);
    for (m, n, k) in [(3, 5, 2048), (7, 2, 1025), (1, 1, 4096), (4, 9, 300)] {
        let a = values.floats(m * k);
        // `b` read through a transposed view, as conv weight gradients read the columns.
        let b_transposed = values.floats(n * k);
        let mut out = vec![0f32; m * n];
        let mut partials = Vec::new();
        matmul_long(
            &mut out,
            Matrix::new(&a, m, k),
            Matrix::new(&b_transposed, n, k).t(),
            &mut partials,
        );
        let expected: Vec<f64> = (0..m * n)
            .map(|index| {
                let (row, col) = (index / n, index % n);
                (0..k)
                    .map(|i| a[row * k + i] as f64 * b_transposed[col * k + i] as f64)
                    .sum()
            })
            .collect();
        assert_close(&out, &expected, 1e-5, &format!("{m}×{n}×{k}"));
    }
}

/// Maps whose every pooling window has distinct values at least 0.02 apart, none within 0.05 of
/// the bias's negative (no ReLU kink nearby): there the pass is linear, so central differences
/// are exact up to rounding.
fn smooth_maps(values: &mut Values, activate: &Activate, bias: &[f32]) -> Vec<f32> {
    let plane = activate.height * activate.width;
    let mut maps = vec![0f32; activate.channels * activate.batch * plane];
    for (index, value) in maps.iter_mut().enumerate() {
        let channel = index / (activate.batch * plane);
        *value = loop {
            // On a 0.1 grid, plus 0.02 × the place in its 2×2 window: the four values of a
            // window differ by at least 0.02.
            let position = index % plane;
            let (y, x) = (position / activate.width, position % activate.width);
            let place = (y % 2) * 2 + x % 2;
            let banded = (values.float() * 20.0).round() / 10.0 + 0.02 * place as f32;
            if (banded + bias[channel]).abs() > 0.05 {
                break banded;
            }
        };
    }
    maps
}

/// The pool/bias/ReLU pass forward, then backward from `output_grad`: the gradients of the
/// product's maps and of the bias.
fn activate_gradients(
    activate: &Activate,
    maps: &[f32],
    bias: &[f32],
    output_grad: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let out_len = activate.channels * activate.out_len();
    let (mut output, mut winners) = (vec![0f32; out_len], vec![0u8; out_len]);
    activate.forward(maps, bias, &mut output, &mut winners);
    let mut maps_grad = vec![f32::NAN; maps.len()];
    let mut bias_grad = vec![f32::NAN; bias.len()];
    activate.backward(
        &output,
        &winners,
        output_grad,
        &mut maps_grad,
        &mut bias_grad,
    );
    (maps_grad, bias_grad)
}

#[test]
fn pool_bias_and_relu_backward_is_the_gradient_of_their_forward() {
    let mut values = Values(4);
    for _ in 0..30 {
        let activate = Activate {
            channels: values.between(1, 3),
            batch: values.between(1, 3),
            height: values.between(1, 7),
            width: values.between(1, 7),
            pool: values.between(0, 1) == 1,
        };
        if activate.pool && (activate.height < 2 || activate.width < 2) {
            continue;
        }
        let bias = values.floats(activate.channels);
        let maps = smooth_maps(&mut values, &activate, &bias);
        let out_len = activate.channels * activate.out_len();
        let output_grad = values.floats(out_len);
        let loss = |maps: &[f32], bias: &[f32]| -> f64 {
            let (mut output, mut winners) = (vec![0f32; out_len], vec![0u8; out_len]);
            activate.forward(maps, bias, &mut output, &mut winners);
            output
                .iter()
                .zip(&output_grad)
                .map(|(&o, &g)| o as f64 * g as f64)
                .sum()
        };
        let (maps_grad, bias_grad) = activate_gradients(&activate, &maps, &bias, &output_grad);
        let step = 1e-3f32;
        for index in 0..maps.len() {
            let (mut up, mut down) = (maps.clone(), maps.clone());
            up[index] += step;
            down[index] -= step;
            let numeric = (loss(&up, &bias) - loss(&down, &bias)) / (2.0 * step as f64);
            assert!(
                (maps_grad[index] as f64 - numeric).abs() <= 1e-3,
                "{activate:?} maps[{index}]: {} vs {numeric}",
                maps_grad[index]
            );
        }
        for channel in 0..bias.len() {
            let (mut up, mut down) = (bias.clone(), bias.clone());
            up[channel] += step;
            down[channel] -= step;
            let numeric = (loss(&maps, &up) - loss(&maps, &down)) / (2.0 * step as f64);
            assert!(
                (bias_grad[channel] as f64 - numeric).abs() <= 1e-3 * (1.0 + numeric.abs()),
                "{activate:?} bias[{channel}]: {} vs {numeric}",
                bias_grad[channel]
            );
        }
    }
}

#[test]
fn pool_ties_send_the_gradient_to_the_first_maximum_in_row_major_order() {
    // PyTorch's MaxPool2d rule. Windows (row-major a b / c d) with ties in every place a tie can
    // be; the gradient must reach the earliest maximal entry.
    let windows: [([f32; 4], usize); 7] = [
        ([1.0, 1.0, 0.0, 0.0], 0),
        ([0.0, 1.0, 1.0, 0.0], 1),
        ([0.0, 0.0, 1.0, 1.0], 2),
        ([1.0, 0.0, 0.0, 1.0], 0),
        ([0.5, 1.0, 0.0, 1.0], 1),
        ([2.0, 2.0, 2.0, 2.0], 0),
        ([0.0, 0.0, 0.0, 3.0], 3),
    ];
    let activate = Activate {
        channels: 1,
        batch: windows.len(),
        height: 2,
        width: 2,
        pool: true,
    };
    let maps: Vec<f32> = windows.iter().flat_map(|(window, _)| *window).collect();
    let (mut output, mut winners) = (vec![0f32; windows.len()], vec![0u8; windows.len()]);
    activate.forward(&maps, &[0.25], &mut output, &mut winners);
    let mut maps_grad = vec![0f32; maps.len()];
    let mut bias_grad = [0f32];
    activate.backward(
        &output,
        &winners,
        &vec![1.0; windows.len()],
        &mut maps_grad,
        &mut bias_grad,
    );
    for (image, (_, first)) in windows.iter().enumerate() {
        let expected: Vec<f32> = (0..4)
            .map(|at| if at == *first { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(
            &maps_grad[image * 4..][..4],
            &expected[..],
            "window {image}"
        );
    }
    // burn's flex pools the same way, so the two paths route ties alike.
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(maps, [windows.len(), 1, 2, 2]), &device)
        .require_grad();
    let grads = max_pool2d(x.clone(), MaxPoolOptions::new([2, 2]))
        .sum()
        .backward();
    assert_eq!(
        read_back(x.grad(&grads).unwrap(), "flex").unwrap(),
        maps_grad
    );
}

/// conv2d (no bias), then the optional 2×2 pool, the bias and ReLU, as `network.rs` runs them on
/// burn: the loss is `Σ output_grad ⊙ output`, differentiated by burn's autodiff on flex.
fn burn_layer_gradients(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output_grad: &[f32],
    shape: &ConvShape,
    outputs: usize,
    pool: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    // CNHW → NCHW for burn.
    let mut nchw = vec![0f32; input.len()];
    let plane = shape.height * shape.width;
    transpose_blocks(input, shape.in_channels, shape.batch, plane, &mut nchw);
    let x = Tensor::<4>::from_data(
        TensorData::new(
            nchw,
            [shape.batch, shape.in_channels, shape.height, shape.width],
        ),
        &device,
    )
    .require_grad();
    let w = Tensor::<4>::from_data(
        TensorData::new(
            weight.to_vec(),
            [outputs, shape.in_channels, shape.kernel, shape.kernel],
        ),
        &device,
    )
    .require_grad();
    let b =
        Tensor::<1>::from_data(TensorData::new(bias.to_vec(), [outputs]), &device).require_grad();
    let options = ConvOptions::new([shape.stride; 2], [shape.padding; 2], [1, 1], 1);
    let mut y = conv2d(x.clone(), w.clone(), None, options);
    if pool {
        y = max_pool2d(y, MaxPoolOptions::new([2, 2]));
    }
    let y = relu(y + b.clone().reshape([1, outputs, 1, 1]));
    let [batch, channels, height, width] = y.dims();
    // The output gradient comes CNHW; burn's output is NCHW.
    let mut grad_nchw = vec![0f32; output_grad.len()];
    transpose_blocks(output_grad, channels, batch, height * width, &mut grad_nchw);
    let g = Tensor::<4>::from_data(
        TensorData::new(grad_nchw, [batch, channels, height, width]),
        &device,
    );
    let grads = (y * g).sum().backward();
    let read = |tensor: Tensor<4>| read_back(tensor, "flex").unwrap();
    let dx_nchw = read(x.grad(&grads).unwrap());
    let mut dx = vec![0f32; dx_nchw.len()];
    transpose_blocks(&dx_nchw, shape.batch, shape.in_channels, plane, &mut dx);
    let dw = read(w.grad(&grads).unwrap());
    let db = read_back(b.grad(&grads).unwrap(), "flex").unwrap();
    (dx, dw, db)
}

#[test]
fn a_conv_layers_gradients_match_burns_autodiff() {
    let mut values = Values(5);
    let mut compared = 0;
    while compared < 25 {
        let shape = random_shape(&mut values);
        let pool = values.between(0, 1) == 1;
        if pool && (shape.out_height < 2 || shape.out_width < 2) {
            continue;
        }
        compared += 1;
        let outputs = values.between(1, 4);
        let activate = Activate {
            channels: outputs,
            batch: shape.batch,
            height: shape.out_height,
            width: shape.out_width,
            pool,
        };
        let input = values.floats(shape.in_channels * shape.batch * shape.height * shape.width);
        let weight = values.floats(outputs * shape.column_rows());
        let bias = values.floats(outputs);
        let output_grad = values.floats(outputs * activate.out_len());

        // The native layer: unfold, product, pool/bias/ReLU; then back.
        let (rows, count) = (shape.column_rows(), shape.column_count());
        let mut columns = vec![0f32; rows * count];
        unfold(&input, &shape, &mut columns);
        let mut maps = vec![0f32; outputs * count];
        matmul(
            &mut maps,
            Matrix::new(&weight, outputs, rows),
            Matrix::new(&columns, rows, count),
            false,
        );
        let (maps_grad, bias_grad) = activate_gradients(&activate, &maps, &bias, &output_grad);
        let mut weight_grad = vec![0f32; weight.len()];
        matmul_long(
            &mut weight_grad,
            Matrix::new(&maps_grad, outputs, count),
            Matrix::new(&columns, rows, count).t(),
            &mut Vec::new(),
        );
        let mut grad_columns = vec![0f32; rows * count];
        matmul(
            &mut grad_columns,
            Matrix::new(&weight, outputs, rows).t(),
            Matrix::new(&maps_grad, outputs, count),
            false,
        );
        let mut input_grad = vec![0f32; input.len()];
        fold(&mut grad_columns, &shape, &mut input_grad);

        let (dx, dw, db) =
            burn_layer_gradients(&input, &weight, &bias, &output_grad, &shape, outputs, pool);
        let context = format!("{shape:?}, {outputs} outputs, pool {pool}");
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        assert_close(
            &weight_grad,
            &widen(&dw),
            1e-5,
            &format!("weight gradient, {context}"),
        );
        assert_close(
            &bias_grad,
            &widen(&db),
            1e-5,
            &format!("bias gradient, {context}"),
        );
        assert_close(
            &input_grad,
            &widen(&dx),
            1e-5,
            &format!("input gradient, {context}"),
        );
    }
}
