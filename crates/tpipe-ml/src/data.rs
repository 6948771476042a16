//! Images in memory, their normalisation, and turning them into batches.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::Geometry;
use crate::error::MlError;
use crate::rng::Rng;

/// Images as u8 pixels, NCHW, row-major, `count * channels * height * width` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixel values 0..=255, image after image, each channel after channel.
    pub pixels: Vec<u8>,
    /// One label per image, each below `num_classes`.
    pub labels: Vec<u32>,
    /// Number of images.
    pub count: usize,
    /// Channels per image.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Number of classes the labels come from.
    pub num_classes: usize,
}

impl ImageSet {
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Checks that the fields agree with each other and with a net's input.
    pub(crate) fn check_for(&self, geometry: &Geometry, num_classes: usize) -> Result<(), MlError> {
        let invalid = |message: String| Err(MlError::InvalidData(message));
        if self.count == 0 {
            return invalid("the image set is empty".to_string());
        }
        if self.pixels.len() != self.count * self.image_len() {
            return invalid(format!(
                "{} pixel bytes for {} images of {}×{}×{} (expected {})",
                self.pixels.len(),
                self.count,
                self.channels,
                self.height,
                self.width,
                self.count * self.image_len()
            ));
        }
        if self.labels.len() != self.count {
            return invalid(format!(
                "{} labels for {} images",
                self.labels.len(),
                self.count
            ));
        }
        if (self.channels, self.height, self.width)
            != (geometry.channels, geometry.height, geometry.width)
        {
            return invalid(format!(
                "images are {}×{}×{} but the net expects {}×{}×{}",
                self.channels,
                self.height,
                self.width,
                geometry.channels,
                geometry.height,
                geometry.width
            ));
        }
        if self.num_classes != num_classes {
            return invalid(format!(
                "the set has {} classes but the net classifies into {}",
                self.num_classes, num_classes
            ));
        }
        if let Some((index, label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label as usize >= num_classes)
        {
            return invalid(format!(
                "image {index} has label {label}, but there are only {num_classes} classes"
            ));
        }
        Ok(())
    }
}

/// Per-channel input normalisation: `(pixel / 255 - mean) / std`.
///
/// Computed from the training images of the first net in a chain and stored in its weights;
/// nets that copy layers from it and every evaluation reuse the stored values, so copied conv1
/// filters always see inputs scaled as when they were learnt.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Mean and population standard deviation of each channel over all images and pixels.
    /// A constant channel gets std 1 instead of 0.
    pub(crate) fn from_images(set: &ImageSet) -> Self {
        let plane = set.height * set.width;
        let mut histograms = vec![[0u64; 256]; set.channels];
        for image in set.pixels.chunks_exact(set.image_len()) {
            for (channel, values) in image.chunks_exact(plane).enumerate() {
                for &value in values {
                    histograms[channel][value as usize] += 1;
                }
            }
        }
        // Sums from histograms are exact and independent of the image order.
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for histogram in &histograms {
            let total: u64 = histogram.iter().sum();
            let sum: f64 = (0..256)
                .map(|v| histogram[v] as f64 * v as f64 / 255.0)
                .sum();
            let channel_mean = sum / total as f64;
            let variance: f64 = (0..256)
                .map(|v| histogram[v] as f64 * (v as f64 / 255.0 - channel_mean).powi(2))
                .sum::<f64>()
                / total as f64;
            let channel_std = variance.sqrt();
            mean.push(channel_mean as f32);
            std.push(if channel_std > 1e-6 {
                channel_std as f32
            } else {
                1.0
            });
        }
        Normalization { mean, std }
    }

    /// For each channel, the normalised value of each of the 256 pixel values.
    pub(crate) fn lookup_tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&mean, &std)| {
                let mut table = [0f32; 256];
                for (value, entry) in table.iter_mut().enumerate() {
                    *entry = (value as f32 / 255.0 - mean) / std;
                }
                table
            })
            .collect()
    }
}

/// Random crop and flip settings for one training run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Augmentation {
    pub crop_padding: usize,
    pub flip: bool,
}

impl Augmentation {
    pub(crate) fn is_off(&self) -> bool {
        self.crop_padding == 0 && !self.flip
    }
}

/// A batch of `count` images as `fill_batch` wrote them, as an NCHW tensor on `device`.
pub(crate) fn images_tensor(
    pixels: Vec<f32>,
    count: usize,
    geometry: &Geometry,
    device: &Device,
) -> Tensor<4> {
    let shape = [count, geometry.channels, geometry.height, geometry.width];
    Tensor::<4>::from_data(TensorData::new(pixels, shape), device)
}

/// Writes the normalised (and possibly augmented) images `indices` of `set` into `out`
/// as one NCHW f32 batch.
pub(crate) fn fill_batch(
    set: &ImageSet,
    indices: &[usize],
    tables: &[[f32; 256]],
    augmentation: Option<(Augmentation, &mut Rng)>,
    out: &mut Vec<f32>,
) {
    let (height, width, plane) = (set.height, set.width, set.height * set.width);
    let image_len = set.image_len();
    out.clear();
    out.resize(indices.len() * image_len, 0.0);
    let augmentation = augmentation.filter(|(settings, _)| !settings.is_off());
    let Some((settings, rng)) = augmentation else {
        for (slot, &index) in out.chunks_exact_mut(image_len).zip(indices) {
            let image = &set.pixels[index * image_len..(index + 1) * image_len];
            for (channel, (dst, src)) in slot
                .chunks_exact_mut(plane)
                .zip(image.chunks_exact(plane))
                .enumerate()
            {
                let table = &tables[channel];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = table[s as usize];
                }
            }
        }
        return;
    };
    let padding = settings.crop_padding as isize;
    for (slot, &index) in out.chunks_exact_mut(image_len).zip(indices) {
        let image = &set.pixels[index * image_len..(index + 1) * image_len];
        // Offsets of the crop window inside the padded image, minus the padding.
        let span = 2 * settings.crop_padding as u64 + 1;
        let shift_y = rng.below(span) as isize - padding;
        let shift_x = rng.below(span) as isize - padding;
        let flip = settings.flip && rng.below(2) == 1;
        for (channel, (dst, src)) in slot
            .chunks_exact_mut(plane)
            .zip(image.chunks_exact(plane))
            .enumerate()
        {
            let table = &tables[channel];
            // Padding is black, as torchvision's RandomCrop pads before normalising.
            let black = table[0];
            for y in 0..height {
                let source_y = y as isize + shift_y;
                let row = &mut dst[y * width..(y + 1) * width];
                if source_y < 0 || source_y >= height as isize {
                    row.fill(black);
                    continue;
                }
                let source_row = &src[source_y as usize * width..(source_y as usize + 1) * width];
                for (x, value) in row.iter_mut().enumerate() {
                    let x = if flip { width - 1 - x } else { x };
                    let source_x = x as isize + shift_x;
                    *value = if source_x < 0 || source_x >= width as isize {
                        black
                    } else {
                        table[source_row[source_x as usize] as usize]
                    };
                }
            }
        }
    }
}
