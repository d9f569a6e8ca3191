//! Tests of the whole model against committed fixtures: parity with
//! `transformers` and the hub download path. They live in the library's own
//! test binary, so the workspace links one binary fewer.

mod batch;
mod hub;
mod parity;
mod precision;

/// The largest element-wise difference of two vectors of the same length.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
