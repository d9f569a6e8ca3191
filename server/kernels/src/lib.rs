//! CPU kernels of CLAP's inference: matrix products with bf16 inputs and f32
//! sums for `--precision bf16`, and the element-wise GELU and softmax of
//! both precisions ([`gelu_in_place`], [`softmax_rows_in_place`]).
//!
//! Weights are rounded to bf16 once, at load, and packed in the layout the
//! CPU's bf16 dot-product instructions read: per block of 16 output columns,
//! input rows taken in pairs and interleaved (`[n/16][k/2][16][2]`). One such
//! 64-byte row is exactly an AMX tile row and an AVX512 register, so both
//! kernels load weights without a shuffle. Activations are rounded per call
//! (round to nearest even). Every sum stays f32, as `tdpbf16ps` and
//! `vdpbf16ps` accumulate, so the only loss is the inputs' 8-bit mantissa.
//!
//! Three kernels compute the same product, the fastest the CPU offers picked
//! once per process ([`Bf16Kernel::best`]): AMX tiles (Intel Sapphire Rapids
//! and later; Linux must grant the process the tile state), AVX512-BF16 (AMD
//! Zen 4 and later, Intel Cooper Lake and later), and portable code for any
//! other CPU, which gives the same numbers more slowly.

use rayon::prelude::*;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod elementwise;

pub use elementwise::{exp_negative, gelu_in_place, gelu_scalar, softmax_rows_in_place};

/// Columns per packed block: one 64-byte row of 16 bf16 pairs.
const BLOCK_COLUMNS: usize = 16;
/// Rows and columns of one unit of work, and what `k` is padded to: an AMX
/// product step covers 32 rows × 32 columns × 32 inputs.
const TILE: usize = 32;

/// How the products run on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tile multiplies (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 dot products (`vdpbf16ps`).
    Avx512Bf16,
    /// Plain code: the same rounding and f32 sums, without bf16 hardware.
    Portable,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU and OS support, decided once.
    pub fn best() -> Self {
        static BEST: std::sync::OnceLock<Bf16Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Self::available().into_iter().next().unwrap_or(Self::Portable))
    }

    /// Every kernel this machine can run, fastest first (always ends with
    /// [`Bf16Kernel::Portable`]).
    pub fn available() -> Vec<Self> {
        [Self::Amx, Self::Avx512Bf16, Self::Portable]
            .into_iter()
            .filter(|kernel| kernel.is_supported())
            .collect()
    }

    /// Whether this machine can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Self::Amx => amx::usable(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Bf16 => avx512::usable(),
            Self::Portable => true,
            #[allow(unreachable_patterns, reason = "reachable off x86-64 Linux")]
            _ => false,
        }
    }

    /// Whether the CPU multiplies bf16 in hardware with this kernel.
    pub fn is_hardware(self) -> bool {
        self != Self::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "AMX-BF16",
            Self::Avx512Bf16 => "AVX512-BF16",
            Self::Portable => "portable (no bf16 instructions)",
        }
    }

    /// Rows the activations are padded to for this kernel.
    fn row_tile(self) -> usize {
        match self {
            Self::Amx => TILE,
            Self::Avx512Bf16 | Self::Portable => 8,
        }
    }
}

/// f32 → bf16, rounding to nearest even; NaN stays NaN.
#[inline]
pub fn to_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x40) as u16;
    // A select, not an early return, so conversion loops vectorise.
    if value.is_nan() { quiet_nan } else { rounded }
}

/// bf16 → f32 (exact).
#[inline]
pub fn from_bf16(value: u16) -> f32 {
    f32::from_bits(u32::from(value) << 16)
}

/// A `[k, n]` weight matrix rounded to bf16 and packed for the kernels.
#[derive(Debug, Clone)]
pub struct Bf16Weights {
    inputs: usize,
    outputs: usize,
    padded_inputs: usize,
    padded_outputs: usize,
    /// `[padded_outputs / 16][padded_inputs / 2][16][2]`, zero-padded.
    packed: Vec<u16>,
}

impl Bf16Weights {
    /// Packs `w`, row-major `[inputs, outputs]` (the layout `x · W` reads).
    ///
    /// # Panics
    /// If `w.len() != inputs * outputs` (a caller's shape bug, found at load).
    pub fn pack(w: &[f32], inputs: usize, outputs: usize) -> Self {
        assert_eq!(w.len(), inputs * outputs, "weight shape");
        let padded_inputs = inputs.div_ceil(TILE) * TILE;
        let padded_outputs = outputs.div_ceil(TILE) * TILE;
        let rounded: Vec<u16> = w.iter().map(|value| to_bf16(*value)).collect();
        let mut packed = vec![0u16; padded_inputs * padded_outputs];
        pack_into(&mut packed, padded_inputs, &rounded, inputs, outputs, false);
        Self {
            inputs,
            outputs,
            padded_inputs,
            padded_outputs,
            packed,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `a · W + bias` for `a` row-major `[rows, inputs]`, on the fastest kernel.
    pub fn matmul(&self, a: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        self.matmul_with(Bf16Kernel::best(), a, rows, bias)
    }

    /// [`Self::matmul`] on a chosen kernel (one of [`Bf16Kernel::available`];
    /// another falls back to the portable one).
    ///
    /// # Panics
    /// If `a` or `bias` does not have the shape the weights need.
    pub fn matmul_with(&self, kernel: Bf16Kernel, a: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        assert_eq!(a.len(), rows * self.inputs, "activation shape");
        if let Some(bias) = bias {
            assert_eq!(bias.len(), self.outputs, "bias shape");
        }
        let kernel = if kernel.is_supported() {
            kernel
        } else {
            Bf16Kernel::Portable
        };
        if rows == 0 {
            return Vec::new();
        }
        let row_tile = kernel.row_tile();
        let padded_rows = rows.div_ceil(row_tile) * row_tile;
        let rounded = round_rows(kernel, a, rows, self.inputs, padded_rows, self.padded_inputs);
        let mut out = vec![0f32; rows * self.outputs];
        let operands = Operands {
            kernel,
            left: &rounded,
            padded_rows,
            padded_inputs: self.padded_inputs,
            right: &self.packed,
            padded_outputs: self.padded_outputs,
        };
        multiply(operands, &mut out, self.outputs, bias);
        out
    }
}

/// Buffers one thread reuses across the pairs of a batched product.
#[derive(Default)]
struct Scratch {
    left: Vec<u16>,
    right: Vec<u16>,
    packed: Vec<u16>,
}

/// For each of `batch` pairs, `a[i] · b[i]`, in bf16 with f32 sums: `a` is
/// `[batch, m, k]`; `b` is `[batch, k, n]`, or with `b_transposed`
/// `[batch, n, k]` (the product with its transpose, as attention's `q · kᵀ`).
/// Returns `[batch, m, n]`.
///
/// # Panics
/// If the slices do not have those lengths.
pub fn batched_matmul(
    kernel: Bf16Kernel,
    a: &[f32],
    b: &[f32],
    (batch, m, k, n): (usize, usize, usize, usize),
    b_transposed: bool,
) -> Vec<f32> {
    assert_eq!(a.len(), batch * m * k, "left operand shape");
    assert_eq!(b.len(), batch * k * n, "right operand shape");
    let kernel = if kernel.is_supported() {
        kernel
    } else {
        Bf16Kernel::Portable
    };
    let mut out = vec![0f32; batch * m * n];
    if out.is_empty() {
        return out;
    }
    let row_tile = kernel.row_tile();
    let padded_rows = m.div_ceil(row_tile) * row_tile;
    let padded_inputs = k.div_ceil(TILE) * TILE;
    let padded_outputs = n.div_ceil(TILE) * TILE;
    let work = |scratch: &mut Scratch, (item, out): (usize, &mut [f32])| {
        let left = &a[item * m * k..(item + 1) * m * k];
        let right = &b[item * k * n..(item + 1) * k * n];
        scratch.left.clear();
        scratch.left.resize(padded_rows * padded_inputs, 0);
        for (source, target) in left
            .chunks_exact(k)
            .zip(scratch.left.chunks_exact_mut(padded_inputs))
        {
            round_into(kernel, source, &mut target[..k]);
        }
        scratch.right.resize(k * n, 0);
        round_into(kernel, right, &mut scratch.right);
        scratch.packed.clear();
        scratch.packed.resize(padded_inputs * padded_outputs, 0);
        pack_into(
            &mut scratch.packed,
            padded_inputs,
            &scratch.right,
            k,
            n,
            b_transposed,
        );
        let operands = Operands {
            kernel,
            left: &scratch.left,
            padded_rows,
            padded_inputs,
            right: &scratch.packed,
            padded_outputs,
        };
        multiply_serial(operands, out, n, None);
    };
    if batch * m * k * n < 1 << 18 {
        let mut scratch = Scratch::default();
        out.chunks_exact_mut(m * n)
            .enumerate()
            .for_each(|item| work(&mut scratch, item));
    } else {
        out.par_chunks_exact_mut(m * n)
            .enumerate()
            .for_each_init(Scratch::default, work);
    }
    out
}

/// Fills `packed` (`[padded_outputs / 16][padded_inputs / 2][16][2]`, zeroed)
/// from `rounded`, a bf16 matrix: `[inputs, outputs]` row-major, or with
/// `transposed` `[outputs, inputs]` (whose transpose is the right operand).
fn pack_into(
    packed: &mut [u16],
    padded_inputs: usize,
    rounded: &[u16],
    inputs: usize,
    outputs: usize,
    transposed: bool,
) {
    let pairs = padded_inputs / 2;
    for (block, chunk) in packed.chunks_exact_mut(pairs * 2 * BLOCK_COLUMNS).enumerate() {
        let first = block * BLOCK_COLUMNS;
        if first >= outputs {
            break;
        }
        let columns = BLOCK_COLUMNS.min(outputs - first);
        if transposed {
            // Row n of the stored matrix holds input pairs side by side already.
            for column in 0..columns {
                let source = &rounded[(first + column) * inputs..(first + column + 1) * inputs];
                for (pair, values) in source.chunks(2).enumerate() {
                    let target = (pair * BLOCK_COLUMNS + column) * 2;
                    chunk[target..target + values.len()].copy_from_slice(values);
                }
            }
        } else {
            for pair in 0..inputs.div_ceil(2) {
                let target = &mut chunk[pair * 2 * BLOCK_COLUMNS..(pair + 1) * 2 * BLOCK_COLUMNS];
                let even = &rounded[2 * pair * outputs + first..2 * pair * outputs + first + columns];
                for (column, value) in even.iter().enumerate() {
                    target[2 * column] = *value;
                }
                if 2 * pair + 1 < inputs {
                    let odd = &rounded
                        [(2 * pair + 1) * outputs + first..(2 * pair + 1) * outputs + first + columns];
                    for (column, value) in odd.iter().enumerate() {
                        target[2 * column + 1] = *value;
                    }
                }
            }
        }
    }
}

/// `a` (`[rows, inputs]` f32) rounded to bf16 into `[padded_rows, padded_inputs]`, zero-padded.
fn round_rows(
    kernel: Bf16Kernel,
    a: &[f32],
    rows: usize,
    inputs: usize,
    padded_rows: usize,
    padded_inputs: usize,
) -> Vec<u16> {
    let mut rounded = vec![0u16; padded_rows * padded_inputs];
    let convert = |(source, target): (&[f32], &mut [u16])| {
        for (row, target) in source
            .chunks_exact(inputs)
            .zip(target.chunks_exact_mut(padded_inputs))
        {
            round_into(kernel, row, &mut target[..inputs]);
        }
    };
    const ROWS_PER_TASK: usize = 64;
    let (source_chunk, target_chunk) = (
        ROWS_PER_TASK * inputs.max(1),
        ROWS_PER_TASK * padded_inputs.max(1),
    );
    if rows * inputs < 1 << 16 {
        a.chunks(source_chunk)
            .zip(rounded.chunks_mut(target_chunk))
            .for_each(convert);
    } else {
        a.par_chunks(source_chunk)
            .zip(rounded.par_chunks_mut(target_chunk))
            .for_each(convert);
    }
    rounded
}

/// `source` rounded to bf16 into `target` (same length).
fn round_into(kernel: Bf16Kernel, source: &[f32], target: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if kernel.is_hardware() {
        avx512::round_into(source, target);
        return;
    }
    let _ = kernel;
    target.iter_mut().zip(source).for_each(|(t, s)| *t = to_bf16(*s));
}

/// The operands of one product: `left` (`[padded_rows, padded_inputs]`
/// bf16) and `right` (packed, `padded_outputs` columns), and the kernel.
#[derive(Clone, Copy)]
struct Operands<'a> {
    kernel: Bf16Kernel,
    left: &'a [u16],
    padded_rows: usize,
    padded_inputs: usize,
    right: &'a [u16],
    padded_outputs: usize,
}

/// `out[rows, outputs] = left · right (+ bias)`, the row tiles spread over
/// the pool's threads, or the column tiles when there are few rows (a short
/// text query).
fn multiply(operands: Operands<'_>, out: &mut [f32], outputs: usize, bias: Option<&[f32]>) {
    let Operands {
        kernel,
        left,
        padded_rows,
        padded_inputs,
        right,
        padded_outputs,
    } = operands;
    let row_tile = kernel.row_tile();
    let rows = out.len() / outputs.max(1);
    let row_tiles = padded_rows / row_tile;
    let threads = rayon::current_num_threads();
    if rows * padded_inputs * padded_outputs < 1 << 20 {
        multiply_serial(operands, out, outputs, bias);
    } else if row_tiles >= 4 * threads {
        out.par_chunks_mut(row_tile * outputs)
            .enumerate()
            .for_each(|(tile, out_rows)| {
                let tile_operands = Operands {
                    left: &left[tile * row_tile * padded_inputs..(tile + 1) * row_tile * padded_inputs],
                    padded_rows: row_tile,
                    ..operands
                };
                multiply_serial(tile_operands, out_rows, outputs, bias);
            });
    } else {
        // Few rows: each thread takes a band of columns into its own buffer.
        let column_tiles = padded_outputs / TILE;
        let block_len = padded_inputs * BLOCK_COLUMNS * (TILE / BLOCK_COLUMNS);
        let bands: Vec<Vec<f32>> = (0..column_tiles)
            .into_par_iter()
            .map(|column_tile| {
                let columns = TILE.min(outputs - column_tile * TILE);
                let mut band = vec![0f32; rows * columns];
                let band_operands = Operands {
                    right: &right[column_tile * block_len..(column_tile + 1) * block_len],
                    padded_outputs: TILE,
                    ..operands
                };
                let band_bias = bias.map(|b| &b[column_tile * TILE..column_tile * TILE + columns]);
                multiply_serial(band_operands, &mut band, columns, band_bias);
                band
            })
            .collect();
        for (column_tile, band) in bands.iter().enumerate() {
            let columns = TILE.min(outputs - column_tile * TILE);
            for (out_row, band_row) in out.chunks_exact_mut(outputs).zip(band.chunks_exact(columns)) {
                out_row[column_tile * TILE..column_tile * TILE + columns].copy_from_slice(band_row);
            }
        }
    }
}

/// [`multiply`] on the calling thread: every row tile × column tile block in
/// turn, each computed into a small buffer and copied out with the bias.
fn multiply_serial(operands: Operands<'_>, out: &mut [f32], outputs: usize, bias: Option<&[f32]>) {
    let Operands {
        kernel,
        left: rounded,
        padded_rows,
        padded_inputs,
        right: packed,
        padded_outputs,
    } = operands;
    let row_tile = kernel.row_tile();
    let block_len = padded_inputs * BLOCK_COLUMNS * (TILE / BLOCK_COLUMNS);
    let mut block = [0f32; TILE * TILE];
    let block = &mut block[..row_tile * TILE];
    for (tile, out_rows) in out.chunks_mut(row_tile * outputs).enumerate() {
        let first_row = tile * row_tile;
        if first_row >= padded_rows {
            break;
        }
        let a_rows = &rounded[first_row * padded_inputs..(first_row + row_tile) * padded_inputs];
        for column_tile in 0..padded_outputs / TILE {
            let first_column = column_tile * TILE;
            if first_column >= outputs {
                break;
            }
            let weights = &packed[column_tile * block_len..(column_tile + 1) * block_len];
            product_block(kernel, a_rows, padded_inputs, weights, block);
            let columns = TILE.min(outputs - first_column);
            for (out_row, block_row) in out_rows.chunks_exact_mut(outputs).zip(block.chunks_exact(TILE)) {
                let target = &mut out_row[first_column..first_column + columns];
                target.copy_from_slice(&block_row[..columns]);
                if let Some(bias) = bias {
                    target
                        .iter_mut()
                        .zip(&bias[first_column..])
                        .for_each(|(value, b)| *value += b);
                }
            }
        }
    }
}

/// One `row_tile × 32` block: `a_rows` (`[row_tile, k]` bf16) times two
/// packed column blocks, on `kernel`.
fn product_block(kernel: Bf16Kernel, a_rows: &[u16], k: usize, weights: &[u16], out: &mut [f32]) {
    match kernel {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        Bf16Kernel::Amx => amx::block(a_rows, k, weights, out),
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Avx512Bf16 => avx512::block(a_rows, k, weights, out),
        _ => portable_block(a_rows, k, weights, out),
    }
}

/// The product of `a_rows` (`[r, k]` bf16) with two packed column blocks
/// (`[2][k/2][16][2]`), into `out` (`[r, 32]`), in plain code.
fn portable_block(a_rows: &[u16], k: usize, weights: &[u16], out: &mut [f32]) {
    let pairs = k / 2;
    for (a_row, out_row) in a_rows.chunks_exact(k).zip(out.chunks_exact_mut(TILE)) {
        for (half, out_part) in out_row.chunks_exact_mut(BLOCK_COLUMNS).enumerate() {
            let block = &weights[half * pairs * 2 * BLOCK_COLUMNS..(half + 1) * pairs * 2 * BLOCK_COLUMNS];
            let mut sums = [0f32; BLOCK_COLUMNS];
            for (pair, w) in block.chunks_exact(2 * BLOCK_COLUMNS).enumerate() {
                let a0 = from_bf16(a_row[2 * pair]);
                let a1 = from_bf16(a_row[2 * pair + 1]);
                for (column, sum) in sums.iter_mut().enumerate() {
                    *sum += a0 * from_bf16(w[2 * column]) + a1 * from_bf16(w[2 * column + 1]);
                }
            }
            out_part.copy_from_slice(&sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so failures reproduce.
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The product of the bf16-rounded inputs in f64: what every kernel approximates.
    fn reference(a: &[f32], w: &[f32], bias: &[f32], rows: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * n];
        for r in 0..rows {
            for c in 0..n {
                let mut sum = f64::from(bias[c]);
                for i in 0..k {
                    sum += f64::from(from_bf16(to_bf16(a[r * k + i])))
                        * f64::from(from_bf16(to_bf16(w[i * n + c])));
                }
                out[r * n + c] = sum;
            }
        }
        out
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(
            from_bf16(to_bf16(f32::MAX)),
            f32::INFINITY,
            "past bf16's largest finite value"
        );
    }

    #[test]
    fn every_kernel_gives_the_rounded_product_for_ragged_shapes() {
        let kernels = Bf16Kernel::available();
        println!("kernels on this machine: {kernels:?}");
        for &(rows, k, n) in &[
            (1, 7, 5),
            (3, 64, 48),
            (33, 96, 70),
            (70, 130, 33),
            (128, 512, 256),
        ] {
            let a = values(rows * k, 1 + rows as u64);
            let w = values(k * n, 2 + k as u64);
            let bias = values(n, 3);
            let expected = reference(&a, &w, &bias, rows, k, n);
            let packed = Bf16Weights::pack(&w, k, n);
            for &kernel in &kernels {
                let got = packed.matmul_with(kernel, &a, rows, Some(&bias));
                assert_eq!(got.len(), rows * n);
                for (index, (g, e)) in got.iter().zip(&expected).enumerate() {
                    // f32 sums of k products of values below 1: error grows with k.
                    let tolerance = 1e-6 * k as f64 + 1e-6 * e.abs();
                    assert!(
                        (f64::from(*g) - e).abs() <= tolerance,
                        "{kernel:?} {rows}×{k}×{n} at {index}: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn large_products_split_over_threads_match_the_single_thread_order() {
        let (rows, k, n) = (300, 256, 320);
        let a = values(rows * k, 7);
        let w = values(k * n, 8);
        let packed = Bf16Weights::pack(&w, k, n);
        let expected = reference(&a, &w, &vec![0.0; n], rows, k, n);
        for kernel in Bf16Kernel::available() {
            let got = packed.matmul_with(kernel, &a, rows, None);
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(g, e)| (f64::from(*g) - e).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-3, "{kernel:?}: worst error {worst}");
        }
    }

    #[test]
    fn batched_products_match_each_pair_in_both_layouts() {
        for &(batch, m, k, n) in &[(3, 64, 32, 64), (2, 7, 64, 7), (5, 64, 64, 32), (1, 1, 3, 2)] {
            let a = values(batch * m * k, 11);
            let b = values(batch * k * n, 12);
            for transposed in [false, true] {
                let mut expected = Vec::new();
                for item in 0..batch {
                    let left = &a[item * m * k..(item + 1) * m * k];
                    let right = &b[item * k * n..(item + 1) * k * n];
                    // As a [k, n] matrix whichever way it is stored.
                    let plain: Vec<f32> = (0..k * n)
                        .map(|i| {
                            let (kk, nn) = (i / n, i % n);
                            if transposed { right[nn * k + kk] } else { right[i] }
                        })
                        .collect();
                    expected.extend(reference(left, &plain, &vec![0.0; n], m, k, n));
                }
                for kernel in Bf16Kernel::available() {
                    let got = batched_matmul(kernel, &a, &b, (batch, m, k, n), transposed);
                    assert_eq!(got.len(), batch * m * n);
                    for (index, (g, e)) in got.iter().zip(&expected).enumerate() {
                        assert!(
                            (f64::from(*g) - e).abs() <= 1e-6 * k as f64 + 1e-6 * e.abs(),
                            "{kernel:?} {batch}×{m}×{k}×{n} transposed {transposed} at {index}: {g} vs {e}"
                        );
                    }
                }
            }
        }
        assert!(batched_matmul(Bf16Kernel::best(), &[], &[], (0, 4, 4, 4), false).is_empty());
    }

    #[test]
    fn no_rows_give_no_output() {
        let packed = Bf16Weights::pack(&values(6, 1), 2, 3);
        assert!(packed.matmul(&[], 0, None).is_empty());
    }
}
