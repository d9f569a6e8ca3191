//! The AVX512-BF16 kernel: 8 rows × 32 columns in 16 accumulator registers.
#![allow(unsafe_code, reason = "the AVX512 intrinsics are unsafe functions")]

use std::arch::x86_64::{
    __m256bh, __m256i, __m512, __m512bh, __m512i, _mm256_storeu_si256, _mm512_cvtneps_pbh, _mm512_dpbf16_ps,
    _mm512_loadu_ps, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_storeu_ps,
};

pub(crate) fn usable() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
}

const ROWS: usize = 8;

/// `out[8][32] = a_rows[8][k] · weights` for two packed column blocks
/// (`[2][k/2][16][2]`); `k` is even.
pub(crate) fn block(a_rows: &[u16], k: usize, weights: &[u16], out: &mut [f32]) {
    assert!(usable(), "the AVX512-BF16 kernel runs only where the CPU has it");
    assert!(
        k.is_multiple_of(2) && a_rows.len() == ROWS * k,
        "a is 8 rows of even k"
    );
    assert!(
        weights.len() == 2 * 16 * k && out.len() == ROWS * 32,
        "two column blocks, 8 × 32 out"
    );
    // SAFETY: the CPU has AVX512F and AVX512-BF16 (checked above), and the
    // slices have the lengths `block_inner` reads and writes (checked above).
    unsafe { block_inner(a_rows, k, weights, out) }
}

/// Each step takes one input pair: both rows of 32 packed weights are
/// loaded once, each row's pair of `a` is broadcast, and `vdpbf16ps` adds
/// `a0·w0 + a1·w1` into all 16 columns of a block at once.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn block_inner(a_rows: &[u16], k: usize, weights: &[u16], out: &mut [f32]) {
    let pairs = k / 2;
    let (left, right) = weights.split_at(16 * k);
    let mut sums: [[__m512; 2]; ROWS] = [[_mm512_setzero_ps(); 2]; ROWS];
    for pair in 0..pairs {
        let offset = pair * 32;
        // SAFETY: `offset + 32 <= 16·k` for `pair < k/2`, so both 64-byte loads
        // stay inside their weight block.
        let (w_left, w_right): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    left[offset..offset + 32].as_ptr().cast(),
                )),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    right[offset..offset + 32].as_ptr().cast(),
                )),
            )
        };
        for (row, row_sums) in sums.iter_mut().enumerate() {
            let index = row * k + 2 * pair;
            let bits = u32::from(a_rows[index]) | (u32::from(a_rows[index + 1]) << 16);
            // SAFETY: reinterpreting 16 lanes of 32 bits as 32 bf16 lanes.
            let a_pair: __m512bh =
                unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(bits as i32)) };
            row_sums[0] = _mm512_dpbf16_ps(row_sums[0], a_pair, w_left);
            row_sums[1] = _mm512_dpbf16_ps(row_sums[1], a_pair, w_right);
        }
    }
    for (row, row_sums) in sums.iter().enumerate() {
        for (half, sum) in row_sums.iter().enumerate() {
            let target = &mut out[row * 32 + half * 16..row * 32 + half * 16 + 16];
            // SAFETY: `target` is 16 f32, the width of one store.
            unsafe { _mm512_storeu_ps(target.as_mut_ptr(), *sum) };
        }
    }
}

/// `source` rounded to bf16 (nearest even) into `target`, 16 at a time with
/// `vcvtneps2bf16`; the tail in plain code. (The instruction reads input
/// denormals as zero, which the plain rounding keeps: both are well below
/// what bf16's 8-bit mantissa resolves next to the values around them.)
pub(crate) fn round_into(source: &[f32], target: &mut [u16]) {
    assert_eq!(source.len(), target.len(), "same length");
    if !usable() {
        target
            .iter_mut()
            .zip(source)
            .for_each(|(t, s)| *t = crate::to_bf16(*s));
        return;
    }
    // SAFETY: the CPU has AVX512F and AVX512-BF16 (checked above) and the
    // lengths are equal (checked above).
    unsafe { round_inner(source, target) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_inner(source: &[f32], target: &mut [u16]) {
    let whole = source.len() / 16 * 16;
    for (from, to) in source[..whole]
        .chunks_exact(16)
        .zip(target[..whole].chunks_exact_mut(16))
    {
        // SAFETY: `from` is 16 f32 and `to` 16 u16 (32 bytes), the widths of
        // this load and store.
        unsafe {
            let rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(from.as_ptr()));
            _mm256_storeu_si256(
                to.as_mut_ptr().cast(),
                std::mem::transmute::<__m256bh, __m256i>(rounded),
            );
        }
    }
    for (t, s) in target[whole..].iter_mut().zip(&source[whole..]) {
        *t = crate::to_bf16(*s);
    }
}
