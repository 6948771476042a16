//! The native CPU path's kernels: matrix products through the `gemm` crate (the one burn-flex
//! links, with its AVX2/AVX-512/NEON dispatch), and the unfold/fold and pool loops around them.
//!
//! Layout: conv activations are channel-major, `[channels, batch, height, width]` (CNHW), so a
//! convolution over the whole batch is one product `weight [out, in·k·k] × columns [in·k·k,
//! batch·positions]` and its output is already the next layer's input layout. Fully connected
//! activations are `[batch, width]`.
//!
//! Determinism: every kernel gives the same bits for any number of threads. Work is split only
//! where outputs are disjoint (rows of a product, channels of a fold), and every sum runs in a
//! fixed order inside one task; gemm splits its output blocks among threads but reduces each
//! element over `k` in the same blocks whatever the thread count.

use rayon::prelude::*;

/// A read-only matrix: `rows × cols` values with element `(r, c)` at `r·row_stride +
/// c·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// A contiguous row-major matrix.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix data too short");
        Matrix {
            data,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// Columns `columns` of every row, without copying.
    fn columns(self, columns: std::ops::Range<usize>) -> Self {
        assert!(columns.end <= self.cols, "columns out of range");
        Matrix {
            data: &self.data[columns.start * self.col_stride as usize..],
            cols: columns.len(),
            ..self
        }
    }

    /// Rows `rows` of every column, without copying.
    fn rows(self, rows: std::ops::Range<usize>) -> Self {
        self.t().columns(rows).t()
    }

    /// Whether every element lies inside `data` (strides are never negative here).
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * (self.row_stride as usize)
                + (self.cols - 1) * (self.col_stride as usize)
                < self.data.len()
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        Matrix {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// How many threads gemm may use: rayon's, so a pool around a training caps it.
fn parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        threads => gemm::Parallelism::Rayon(threads),
    }
}

/// `out = a · b` (or `out += a · b` with `accumulate`), `out` contiguous row-major.
pub(crate) fn matmul(out: &mut [f32], a: Matrix<'_>, b: Matrix<'_>, accumulate: bool) {
    matmul_with(out, a, b, accumulate, parallelism());
}

/// How many parts `matmul_long` splits the inner dimension into: fixed, so that the sums do
/// not depend on the thread count.
const INNER_PARTS: usize = 4;

/// `out = a · b` for a long inner dimension and a small output (a conv layer's weight gradient:
/// `[out, in·k·k]` summed over every position of the batch): gemm can hardly split so few output
/// blocks among threads, so the inner dimension is cut into `INNER_PARTS` fixed ranges whose
/// products run side by side into `partials`, then are added in order.
pub(crate) fn matmul_long(out: &mut [f32], a: Matrix<'_>, b: Matrix<'_>, partials: &mut Vec<f32>) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let part_len = k.div_ceil(INNER_PARTS);
    if part_len < 256 {
        matmul(out, a, b, false);
        return;
    }
    partials.resize(INNER_PARTS * m * n, 0.0);
    partials
        .par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(part, partial)| {
            let range = part * part_len..((part + 1) * part_len).min(k);
            matmul_with(
                partial,
                a.columns(range.clone()),
                b.rows(range),
                false,
                gemm::Parallelism::None,
            );
        });
    let (first, rest) = partials.split_at(m * n);
    out[..m * n].copy_from_slice(first);
    for partial in rest.chunks_exact(m * n) {
        for (o, &p) in out.iter_mut().zip(partial) {
            *o += p;
        }
    }
}

fn matmul_with(
    out: &mut [f32],
    a: Matrix<'_>,
    b: Matrix<'_>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(out.len() >= m * n, "product output too short");
    assert!(a.in_bounds() && b.in_bounds(), "matrix view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above bound every index the strides reach (`in_bounds`), and `out`
    // holds m·n contiguous values. `out` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride,
            a.row_stride,
            b.data.as_ptr(),
            b.col_stride,
            b.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The shape of one convolution over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl ConvShape {
    /// Rows of the unfolded input: `in_channels · kernel²`.
    pub(crate) fn column_rows(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Columns of the unfolded input: one per output position of every image.
    pub(crate) fn column_count(&self) -> usize {
        self.batch * self.out_height * self.out_width
    }

    /// For kernel offset `offset` (dy or dx) along an axis of `size` input pixels and `out`
    /// outputs: the range of outputs whose input pixel lies inside the image.
    fn valid_outputs(&self, offset: usize, size: usize, out: usize) -> std::ops::Range<usize> {
        // Output o reads input o·stride + offset − padding.
        let first = self.padding.saturating_sub(offset).div_ceil(self.stride);
        let limit = (size + self.padding).saturating_sub(offset); // o·stride < limit
        let end = limit.div_ceil(self.stride).min(out);
        first.min(end)..end
    }
}

/// Where a stride-1 conv whose output is as wide as its input reads kernel offset (dy, dx):
/// one contiguous span of an image's columns row and the span of its plane it comes from.
struct SameSizeSpan {
    out: std::ops::Range<usize>,
    source: std::ops::Range<usize>,
}

impl ConvShape {
    fn same_size_span(
        &self,
        dy: usize,
        dx: usize,
        rows_valid: &std::ops::Range<usize>,
        cols_valid: &std::ops::Range<usize>,
    ) -> Option<SameSizeSpan> {
        if self.stride != 1
            || self.out_width != self.width
            || rows_valid.is_empty()
            || cols_valid.is_empty()
        {
            return None;
        }
        let width = self.width;
        let out = rows_valid.start * width + cols_valid.start
            ..(rows_valid.end - 1) * width + cols_valid.end;
        // Output (oy, ox) reads (oy + dy − padding, ox + dx − padding): with equal widths, the
        // same offset for every position.
        let first =
            (rows_valid.start + dy - self.padding) * width + cols_valid.start + dx - self.padding;
        Some(SameSizeSpan {
            source: first..first + out.len(),
            out,
        })
    }
}

/// Unfolds a CNHW input into `columns`, `[in·k·k, batch·out_h·out_w]`, row `(c·k + dy)·k + dx`
/// (the order of a `[out, in, k, k]` weight flattened), zero where the kernel hangs over the
/// padding.
pub(crate) fn unfold(input: &[f32], shape: &ConvShape, columns: &mut [f32]) {
    let (k, plane) = (shape.kernel, shape.height * shape.width);
    let positions = shape.out_height * shape.out_width;
    let row_len = shape.column_count();
    columns[..shape.column_rows() * row_len]
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(row, out)| {
            let (channel, dy, dx) = (row / (k * k), row / k % k, row % k);
            let rows_valid = shape.valid_outputs(dy, shape.height, shape.out_height);
            let cols_valid = shape.valid_outputs(dx, shape.width, shape.out_width);
            for (image, out) in out.chunks_exact_mut(positions).enumerate() {
                let source = &input[(channel * shape.batch + image) * plane..][..plane];
                if let Some(span) = shape.same_size_span(dy, dx, &rows_valid, &cols_valid) {
                    // One copy of the valid rows (their wrapped edges included), then the
                    // edges and the rows outside set to zero: short rows make a copy per row
                    // cost more than the values it moves.
                    out[span.out.clone()].copy_from_slice(&source[span.source]);
                    out[..span.out.start].fill(0.0);
                    out[span.out.end..].fill(0.0);
                    for row in out.chunks_exact_mut(shape.out_width) {
                        row[..cols_valid.start].fill(0.0);
                        row[cols_valid.end..].fill(0.0);
                    }
                    continue;
                }
                for (oy, out_row) in out.chunks_exact_mut(shape.out_width).enumerate() {
                    if !rows_valid.contains(&oy) || cols_valid.is_empty() {
                        out_row.fill(0.0);
                        continue;
                    }
                    let y = oy * shape.stride + dy - shape.padding;
                    let source_row = &source[y * shape.width..][..shape.width];
                    out_row[..cols_valid.start].fill(0.0);
                    out_row[cols_valid.end..].fill(0.0);
                    let x0 = cols_valid.start * shape.stride + dx - shape.padding;
                    if shape.stride == 1 {
                        out_row[cols_valid.clone()]
                            .copy_from_slice(&source_row[x0..x0 + cols_valid.len()]);
                    } else {
                        for (slot, ox) in out_row[cols_valid.clone()].iter_mut().zip(0..) {
                            *slot = source_row[x0 + ox * shape.stride];
                        }
                    }
                }
            }
        });
}

/// The adjoint of `unfold`: adds each column value back onto the input pixel it came from,
/// giving the input gradient `[in, batch, h, w]` (overwritten, not accumulated). The values
/// of `columns` that fell on the padding may be set to zero on the way.
///
/// One task per input channel; within it the kernel offsets run in a fixed order, so the sums
/// do not depend on the thread count.
pub(crate) fn fold(columns: &mut [f32], shape: &ConvShape, input_grad: &mut [f32]) {
    let (k, plane) = (shape.kernel, shape.height * shape.width);
    let positions = shape.out_height * shape.out_width;
    let row_len = shape.column_count();
    input_grad[..shape.in_channels * shape.batch * plane]
        .par_chunks_mut(shape.batch * plane)
        .zip(columns[..shape.column_rows() * row_len].par_chunks_mut(k * k * row_len))
        .for_each(|(grad, columns)| {
            grad.fill(0.0);
            for dy in 0..k {
                let rows_valid = shape.valid_outputs(dy, shape.height, shape.out_height);
                for dx in 0..k {
                    let cols_valid = shape.valid_outputs(dx, shape.width, shape.out_width);
                    if cols_valid.is_empty() {
                        continue;
                    }
                    let source = &mut columns[(dy * k + dx) * row_len..][..row_len];
                    for (image, grad) in grad.chunks_exact_mut(plane).enumerate() {
                        let source = &mut source[image * positions..][..positions];
                        if let Some(span) = shape.same_size_span(dy, dx, &rows_valid, &cols_valid) {
                            // As in `unfold`: zero the values that fell on the padding, then
                            // add the valid rows as one span (the wrapped edges add zeros).
                            for row in source.chunks_exact_mut(shape.out_width) {
                                row[..cols_valid.start].fill(0.0);
                                row[cols_valid.end..].fill(0.0);
                            }
                            for (g, &s) in grad[span.source].iter_mut().zip(&source[span.out]) {
                                *g += s;
                            }
                            continue;
                        }
                        for oy in rows_valid.clone() {
                            let y = oy * shape.stride + dy - shape.padding;
                            let grad_row = &mut grad[y * shape.width..][..shape.width];
                            let source_row = &source[oy * shape.out_width..][..shape.out_width];
                            let x0 = cols_valid.start * shape.stride + dx - shape.padding;
                            if shape.stride == 1 {
                                for (g, &s) in grad_row[x0..x0 + cols_valid.len()]
                                    .iter_mut()
                                    .zip(&source_row[cols_valid.clone()])
                                {
                                    *g += s;
                                }
                            } else {
                                for (ox, &s) in source_row[cols_valid.clone()].iter().enumerate() {
                                    grad_row[x0 + ox * shape.stride] += s;
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// The part of a conv layer after its product: optional 2×2/2 max-pool, then bias and ReLU.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activate {
    pub channels: usize,
    pub batch: usize,
    /// Size of the product's maps (before pooling).
    pub height: usize,
    pub width: usize,
    pub pool: bool,
}

impl Activate {
    /// Output maps' height and width.
    pub(crate) fn out_size(&self) -> (usize, usize) {
        if self.pool {
            (self.height / 2, self.width / 2)
        } else {
            (self.height, self.width)
        }
    }

    /// Output values per channel (all images).
    pub(crate) fn out_len(&self) -> usize {
        let (height, width) = self.out_size();
        self.batch * height * width
    }

    /// `output = relu(pool(maps) + bias)`, CNHW. With a pool, `winners` records which of the
    /// four inputs of each window was the first largest (0..4, row-major).
    ///
    /// Pooling before the bias and the ReLU gives the same values as after (both commute with a
    /// per-channel max) on a quarter of the elements.
    pub(crate) fn forward(
        &self,
        maps: &[f32],
        bias: &[f32],
        output: &mut [f32],
        winners: &mut [u8],
    ) {
        let in_len = self.batch * self.height * self.width;
        let out_len = self.out_len();
        let (out_height, out_width) = self.out_size();
        if !self.pool {
            output[..self.channels * out_len]
                .par_chunks_mut(out_len)
                .zip(maps.par_chunks(in_len))
                .zip(bias)
                .for_each(|((out, maps), &bias)| {
                    for (o, &m) in out.iter_mut().zip(maps) {
                        *o = (m + bias).max(0.0);
                    }
                });
            return;
        }
        output[..self.channels * out_len]
            .par_chunks_mut(out_len)
            .zip(winners[..self.channels * out_len].par_chunks_mut(out_len))
            .zip(maps.par_chunks(in_len))
            .zip(bias)
            .for_each(|(((out, winners), maps), &bias)| {
                let rows = out
                    .chunks_exact_mut(out_width)
                    .zip(winners.chunks_exact_mut(out_width));
                let images = maps.chunks_exact(self.height * self.width);
                let pairs = images.flat_map(|image| {
                    (0..out_height).map(move |py| {
                        (
                            &image[2 * py * self.width..][..2 * out_width],
                            &image[(2 * py + 1) * self.width..][..2 * out_width],
                        )
                    })
                });
                for ((out, winners), (top, bottom)) in rows.zip(pairs) {
                    for (px, (o, w)) in out.iter_mut().zip(winners.iter_mut()).enumerate() {
                        // The first largest of (a, b, c, d), row-major, without a loop: the
                        // larger of each row's pair, then of the two (ties keep the earlier).
                        let (a, b) = (top[2 * px], top[2 * px + 1]);
                        let (c, d) = (bottom[2 * px], bottom[2 * px + 1]);
                        let (upper, upper_at) = if b > a { (b, 1) } else { (a, 0) };
                        let (lower, lower_at) = if d > c { (d, 3) } else { (c, 2) };
                        let (best, at) = if lower > upper {
                            (lower, lower_at)
                        } else {
                            (upper, upper_at)
                        };
                        *o = (best + bias).max(0.0);
                        *w = at;
                    }
                }
            });
    }

    /// From the gradient of the output (`output_grad`, CNHW) to that of the product's maps
    /// (`maps_grad`, overwritten) and of the bias (`bias_grad`, overwritten).
    pub(crate) fn backward(
        &self,
        output: &[f32],
        winners: &[u8],
        output_grad: &[f32],
        maps_grad: &mut [f32],
        bias_grad: &mut [f32],
    ) {
        let in_len = self.batch * self.height * self.width;
        let out_len = self.out_len();
        let (out_height, out_width) = self.out_size();
        maps_grad[..self.channels * in_len]
            .par_chunks_mut(in_len)
            .zip(bias_grad[..self.channels].par_iter_mut())
            .enumerate()
            .for_each(|(channel, (maps_grad, bias_grad))| {
                let output = &output[channel * out_len..][..out_len];
                let output_grad = &output_grad[channel * out_len..][..out_len];
                let mut sum = 0f32;
                if !self.pool {
                    for ((g, &o), &d) in maps_grad.iter_mut().zip(output).zip(output_grad) {
                        *g = if o > 0.0 { d } else { 0.0 };
                        sum += *g;
                    }
                    *bias_grad = sum;
                    return;
                }
                let winners = &winners[channel * out_len..][..out_len];
                maps_grad.fill(0.0);
                let mut slot = 0;
                for image in maps_grad.chunks_exact_mut(self.height * self.width) {
                    for py in 0..out_height {
                        for px in 0..out_width {
                            if output[slot] > 0.0 {
                                let winner = winners[slot] as usize;
                                let y = 2 * py + winner / 2;
                                let x = 2 * px + winner % 2;
                                image[y * self.width + x] = output_grad[slot];
                                sum += output_grad[slot];
                            }
                            slot += 1;
                        }
                    }
                }
                *bias_grad = sum;
            });
    }
}

/// Adds `bias` to every row of `values` (`[rows, bias.len()]`), then applies ReLU if asked.
pub(crate) fn add_bias_rows(values: &mut [f32], bias: &[f32], relu: bool) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
            if relu {
                *v = v.max(0.0);
            }
        }
    }
}

/// Column sums of `values` (`[rows, sums.len()]`), rows added in order.
pub(crate) fn column_sums(values: &[f32], sums: &mut [f32]) {
    sums.fill(0.0);
    for row in values.chunks_exact(sums.len()) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
}

/// Swaps the two outer axes of `[rows, cols, block]` values: `output[c][r] = input[r][c]`, each
/// a `block` of contiguous values. CNHW `[channels, batch, positions]` to batch-major is
/// `transpose_blocks(input, channels, batch, positions, output)`; back is
/// `transpose_blocks(input, batch, channels, positions, output)`.
pub(crate) fn transpose_blocks(
    input: &[f32],
    rows: usize,
    cols: usize,
    block: usize,
    output: &mut [f32],
) {
    for row in 0..rows {
        for col in 0..cols {
            output[(col * rows + row) * block..][..block]
                .copy_from_slice(&input[(row * cols + col) * block..][..block]);
        }
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
