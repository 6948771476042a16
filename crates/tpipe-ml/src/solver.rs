//! The paper's solver, written once for every path: PyTorch's SGD with momentum (dampening 0),
//! weight decay on weights only, biases at their own multiple of the learning rate.
//!
//! The rule is generic over [`SgdValues`], which host buffers (the native path) and burn tensors
//! (flex, LibTorch, wgpu) implement, so the paths cannot drift apart. Each operation is one
//! elementwise f32 pass with the same rounding on both: `g + decay·w`, then `m·v + g`, then
//! `w − lr·v`.

use burn::tensor::Tensor;

use crate::config::TrainConfig;

/// Values the SGD rule can update: a layer's weight or bias, its gradient, its momentum buffer.
pub(crate) trait SgdValues: Clone {
    /// `self += factor · other`.
    fn add_scaled(&mut self, other: &Self, factor: f64);
    /// `self *= factor`.
    fn scale(&mut self, factor: f64);
}

impl SgdValues for Vec<f32> {
    fn add_scaled(&mut self, other: &Self, factor: f64) {
        let factor = factor as f32;
        for (value, &other) in self.iter_mut().zip(other) {
            *value += factor * other;
        }
    }

    fn scale(&mut self, factor: f64) {
        let factor = factor as f32;
        for value in self.iter_mut() {
            *value *= factor;
        }
    }
}

impl<const D: usize> SgdValues for Tensor<D> {
    fn add_scaled(&mut self, other: &Self, factor: f64) {
        let added = if factor == 1.0 {
            other.clone()
        } else {
            other.clone().mul_scalar(factor)
        };
        *self = self.clone().add(added);
    }

    fn scale(&mut self, factor: f64) {
        *self = self.clone().mul_scalar(factor);
    }
}

/// Which kind of parameter an update is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parameter {
    Weight,
    Bias,
}

/// The solver's settings for one training.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sgd {
    momentum: f64,
    weight_decay: f64,
    bias_lr_multiplier: f64,
}

impl Sgd {
    pub(crate) fn new(config: &TrainConfig) -> Self {
        Sgd {
            momentum: config.momentum,
            weight_decay: config.weight_decay,
            bias_lr_multiplier: config.bias_lr_multiplier,
        }
    }

    /// One update of `param` from its gradient (used as scratch) and its momentum buffer, which
    /// starts empty: PyTorch starts it at the first gradient, which is `m·0 + g`.
    pub(crate) fn update<V: SgdValues>(
        &self,
        kind: Parameter,
        learning_rate: f64,
        param: &mut V,
        grad: &mut V,
        velocity: &mut Option<V>,
    ) {
        let (rate, decay) = match kind {
            Parameter::Weight => (learning_rate, self.weight_decay),
            Parameter::Bias => (learning_rate * self.bias_lr_multiplier, 0.0),
        };
        if decay > 0.0 {
            grad.add_scaled(param, decay);
        }
        let step = if self.momentum > 0.0 {
            match velocity {
                Some(velocity) => {
                    velocity.scale(self.momentum);
                    velocity.add_scaled(grad, 1.0);
                }
                None => *velocity = Some(grad.clone()),
            }
            velocity.as_ref().expect("set just above")
        } else {
            grad
        };
        param.add_scaled(step, -rate);
    }
}
