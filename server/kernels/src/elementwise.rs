//! The element-wise steps around the matrix products (GELU, softmax), in
//! plain arithmetic the compiler vectorises, compiled twice: for the
//! baseline x86-64 target (4 lanes) and for AVX-512 (16 lanes), picked at
//! run time. The workspace builds for the baseline, so without the second
//! copy these loops ran at a quarter of the width the CPU has.
#![allow(
    unsafe_code,
    reason = "calling the AVX-512 copies needs the CPU check `unsafe` expresses"
)]

/// GELU (erf form) of every value, in place.
pub fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has the features the copy was compiled for (checked).
        unsafe { gelu_avx512(values) };
        return;
    }
    gelu_plain(values);
}

/// Softmax of each `width`-long row of `values`, in place.
pub fn softmax_rows_in_place(values: &mut [f32], width: usize) {
    if width == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has the features the copy was compiled for (checked).
        unsafe { softmax_avx512(values, width) };
        return;
    }
    softmax_plain(values, width);
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("fma")
}

#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "an index loop stays inline in the AVX-512 copy"
)]
fn gelu_plain(values: &mut [f32]) {
    for index in 0..values.len() {
        values[index] = gelu_scalar(values[index]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    gelu_plain(values);
}

#[inline(always)]
fn softmax_plain(values: &mut [f32], width: usize) {
    let mut start = 0;
    while start + width <= values.len() {
        softmax_row(&mut values[start..start + width]);
        start += width;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn softmax_avx512(values: &mut [f32], width: usize) {
    softmax_plain(values, width);
}

/// Lanes of the partial maxima and sums: float reductions only vectorise
/// when the code itself keeps several accumulators (the compiler may not
/// reorder a single running sum).
const LANES: usize = 16;

/// `e^(x − max) / Σ e^(x − max)` over one row. Masked keys carry a large
/// negative bias, not −∞, so the max is finite wherever a row has one
/// unmasked key; a row without any finite value becomes NaN, as in PyTorch.
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "index loops keep the code inline (see the comment)"
)]
fn softmax_row(row: &mut [f32]) {
    // Index loops only: iterator adapters (`for_each`, `sum`) may be left
    // out of line, compiled for the baseline target, and lose the AVX-512
    // copy its width.
    let len = row.len();
    let whole = len / LANES * LANES;
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut start = 0;
    while start < whole {
        for lane in 0..LANES {
            let value = row[start + lane];
            maxima[lane] = if value > maxima[lane] { value } else { maxima[lane] };
        }
        start += LANES;
    }
    let mut max = f32::NEG_INFINITY;
    for lane in 0..LANES {
        max = if maxima[lane] > max { maxima[lane] } else { max };
    }
    for index in whole..len {
        max = if row[index] > max { row[index] } else { max };
    }
    if !max.is_finite() {
        row.fill(f32::NAN);
        return;
    }
    // The exponentials as a pure map, then their sum: fused into one loop
    // the compiler kept it scalar.
    for index in 0..len {
        row[index] = exp_negative(max - row[index]);
    }
    let mut sums = [0f32; LANES];
    let mut start = 0;
    while start < whole {
        for lane in 0..LANES {
            sums[lane] += row[start + lane];
        }
        start += LANES;
    }
    let mut sum = 0f32;
    for lane in 0..LANES {
        sum += sums[lane];
    }
    for index in whole..len {
        sum += row[index];
    }
    let inverse = 1.0 / sum;
    for index in 0..len {
        row[index] *= inverse;
    }
}

/// `0.5·x·(1 + erf(x/√2))` from branch-free arithmetic the compiler turns
/// into SIMD: erfc by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7)
/// over a polynomial `exp`. `1 + erf` is taken as `erfc(|z|)` for negative
/// `x` and `2 − erfc(z)` otherwise, so the negative tail keeps its relative
/// precision instead of cancelling against 1.
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + P * z);
    let series = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erfc = series * exp_negative(z * z);
    let one_plus_erf = if x < 0.0 { erfc } else { 2.0 - erfc };
    0.5 * x * one_plus_erf
}

/// `e^(−w)` for `w ≥ 0` to about one ulp, flushing to 0 past `w = 87`:
/// `2^n · e^r` with `n = round(−w / ln 2)`, `|r| ≤ ln 2 / 2`, and a degree-6
/// Taylor polynomial for `e^r`.
#[inline(always)]
pub fn exp_negative(w: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without
    // a rounding instruction the baseline x86-64 target lacks.
    const ROUND: f32 = 12_582_912.0;
    let w = w.min(87.0);
    let shifted = -w * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (-w - n * LN2_HI) - n * LN2_LO;
    let poly = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `shifted` is ROUND + n exactly (n in −126..=0), so its bits are
    // ROUND's plus n: the integer comes out without a float-to-int
    // conversion, whose saturating semantics would not vectorise.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    poly * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_follow_the_definition() {
        for width in [1usize, 7, 16, 64, 77] {
            let mut values: Vec<f32> = (0..3 * width)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
                .collect();
            if width > 10 {
                values[width..width + 5].fill(f32::MIN);
            }
            let input = values.clone();
            softmax_rows_in_place(&mut values, width);
            let mut plain = input.clone();
            softmax_plain(&mut plain, width);
            for (row, (ours, given)) in values
                .chunks_exact(width)
                .zip(input.chunks_exact(width))
                .enumerate()
            {
                let max = given
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, |m, v| m.max(f64::from(v)));
                let total: f64 = given.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                for (o, g) in ours.iter().zip(given) {
                    let exact = (f64::from(*g) - max).exp() / total;
                    assert!(
                        (f64::from(*o) - exact).abs() <= 1e-6 * exact.max(1e-3),
                        "row {row}: {o} vs {exact}"
                    );
                }
            }
            assert_eq!(
                values, plain,
                "the dispatched copy computes what the plain one does"
            );
        }
        let mut empty = [f32::NEG_INFINITY; 4];
        softmax_rows_in_place(&mut empty, 4);
        assert!(empty.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn the_dispatched_gelu_equals_the_scalar_one() {
        let mut values: Vec<f32> = (-5000..5000).map(|i| i as f32 * 1.7e-3).collect();
        let expected: Vec<f32> = values.iter().map(|&v| gelu_scalar(v)).collect();
        gelu_in_place(&mut values);
        assert_eq!(values, expected);
    }

    fn gelu_reference(x: f64) -> f64 {
        0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) or continued fraction, so
    /// the test does not lean on the approximation it checks.
    fn libm_erf(x: f64) -> f64 {
        let sign = x.signum();
        let x = x.abs();
        if x < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sign * sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = f64::from(k) / 2.0 / (x + fraction);
            }
            let erfc = (-x * x).exp() / std::f64::consts::PI.sqrt() / (x + fraction);
            sign * (1.0 - erfc)
        }
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        // Error relative to max(1, |gelu|): absolute near zero, where the
        // activations that matter live, relative for large inputs.
        let error = |x: f32| {
            let exact = gelu_reference(f64::from(x));
            (f64::from(gelu_scalar(x)) - exact).abs() / exact.abs().max(1.0)
        };
        let worst = (-200_000..=200_000)
            .map(|step| error(step as f32 * 1e-4))
            .fold(0.0f64, f64::max);
        assert!(worst < 1e-6, "max error {worst}");
        for x in [-1e30f32, -100.0, -30.0, 30.0, 100.0, 1e30] {
            assert!(error(x) < 1e-6, "{x}: {}", error(x));
        }
        assert_eq!(gelu_scalar(0.0), 0.0);
    }

    #[test]
    fn exp_negative_is_accurate_to_an_ulp_or_two() {
        for step in 0..=86_900 {
            let w = step as f32 * 1e-3;
            let exact = (-f64::from(w)).exp();
            let relative = (f64::from(exp_negative(w)) - exact).abs() / exact;
            assert!(relative < 3e-7, "e^-{w}: relative error {relative}");
        }
        assert!(exp_negative(1e6) < 1e-37);
    }
}
