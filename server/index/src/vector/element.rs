//! The float type the HNSW graph stores.
//!
//! hora computes every distance through its element type's `SIMDOptmized`
//! impl. For `f32` that impl is a plain `iter().sum()` on stable Rust (its SIMD
//! path needs nightly `packed_simd`), and a sequential float sum cannot be
//! vectorised, so each 512-d distance is a chain of 512 dependent adds. The
//! graph build is almost all distance evaluations (tens of thousands per
//! insert at ef_construction 200), so this kernel sets the build time. hora
//! exposes the element type as a trait (`FloatElement`), so the graph stores
//! `HnswF32` instead: an `f32` whose distances run SimSIMD's kernels, which
//! pick AVX-512, AVX2 or NEON at run time; a portable build cannot assume any
//! of them at compile time. The arithmetic traits below only forward to `f32`;
//! serialisation is transparent, so dumps are byte-for-byte what an `f32`
//! graph writes.

use std::iter::Sum;
use std::num::FpCategory;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Rem, RemAssign, Sub, SubAssign};

use bytemuck::{Pod, Zeroable};
use hora::core::node::FloatElement;
use hora::core::simd_metrics::SIMDOptmized;
use num_traits::{Float, FloatConst, FromPrimitive, Num, NumCast, One, Signed, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};
use simsimd::SpatialSimilarity;

/// `repr(transparent)` + `Pod` let slices convert to and from `&[f32]`
/// without copying: vectors go into hora and out to SimSIMD as they are.
#[derive(Debug, Default, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, Pod, Zeroable)]
#[serde(transparent)]
#[repr(transparent)]
pub(super) struct HnswF32(pub(super) f32);

fn as_f32(v: &[HnswF32]) -> &[f32] {
    bytemuck::cast_slice(v)
}

/// SimSIMD answers `None` only for slices of different lengths.
fn simsimd_distance(d: Option<f64>) -> Result<HnswF32, &'static str> {
    d.map(|d| HnswF32(d as f32)).ok_or("different dimensions")
}

impl SIMDOptmized for HnswF32 {
    /// Negated, as hora's own impl: smaller means closer.
    fn dot_product(a: &[Self], b: &[Self]) -> Result<Self, &'static str> {
        simsimd_distance(f32::dot(as_f32(a), as_f32(b)).map(|d| -d))
    }

    /// Not used by the graph (it is built with the Euclidean metric); kept
    /// exact for completeness.
    fn manhattan_distance(a: &[Self], b: &[Self]) -> Result<Self, &'static str> {
        same_len(a, b)?;
        Ok(Self(a.iter().zip(b).map(|(x, y)| (x.0 - y.0).abs()).sum()))
    }

    /// Squared, as hora's own impl.
    fn euclidean_distance(a: &[Self], b: &[Self]) -> Result<Self, &'static str> {
        simsimd_distance(f32::l2sq(as_f32(a), as_f32(b)))
    }
}

fn same_len(a: &[HnswF32], b: &[HnswF32]) -> Result<(), &'static str> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err("different dimensions")
    }
}

impl FloatElement for HnswF32 {
    fn float_one() -> Self {
        Self(1.0)
    }

    /// hora's own impls return 1.0 here; only its unused angular metric reads it.
    fn float_two() -> Self {
        Self(2.0)
    }

    fn float_zero() -> Self {
        Self(0.0)
    }

    fn zero_patch_num() -> Self {
        Self(1.34e-6)
    }
}

macro_rules! binary_ops {
    ($($trait:ident $method:ident $assign_trait:ident $assign_method:ident $op:tt;)*) => {$(
        impl $trait for HnswF32 {
            type Output = Self;
            fn $method(self, rhs: Self) -> Self {
                Self(self.0 $op rhs.0)
            }
        }
        impl $assign_trait for HnswF32 {
            fn $assign_method(&mut self, rhs: Self) {
                self.0 = self.0 $op rhs.0;
            }
        }
    )*};
}

binary_ops! {
    Add add AddAssign add_assign +;
    Sub sub SubAssign sub_assign -;
    Mul mul MulAssign mul_assign *;
    Div div DivAssign div_assign /;
    Rem rem RemAssign rem_assign %;
}

impl Neg for HnswF32 {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl Sum for HnswF32 {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        Self(iter.map(|x| x.0).sum())
    }
}

impl Zero for HnswF32 {
    fn zero() -> Self {
        Self(0.0)
    }
    fn is_zero(&self) -> bool {
        self.0 == 0.0
    }
}

impl One for HnswF32 {
    fn one() -> Self {
        Self(1.0)
    }
}

impl Num for HnswF32 {
    type FromStrRadixErr = <f32 as Num>::FromStrRadixErr;
    fn from_str_radix(s: &str, radix: u32) -> Result<Self, Self::FromStrRadixErr> {
        f32::from_str_radix(s, radix).map(Self)
    }
}

impl ToPrimitive for HnswF32 {
    fn to_i64(&self) -> Option<i64> {
        self.0.to_i64()
    }
    fn to_u64(&self) -> Option<u64> {
        self.0.to_u64()
    }
    fn to_f32(&self) -> Option<f32> {
        Some(self.0)
    }
    fn to_f64(&self) -> Option<f64> {
        Some(self.0.into())
    }
}

impl NumCast for HnswF32 {
    fn from<T: ToPrimitive>(n: T) -> Option<Self> {
        n.to_f32().map(Self)
    }
}

impl FromPrimitive for HnswF32 {
    fn from_i64(n: i64) -> Option<Self> {
        f32::from_i64(n).map(Self)
    }
    fn from_u64(n: u64) -> Option<Self> {
        f32::from_u64(n).map(Self)
    }
    fn from_f32(n: f32) -> Option<Self> {
        Some(Self(n))
    }
    fn from_f64(n: f64) -> Option<Self> {
        f32::from_f64(n).map(Self)
    }
}

impl Signed for HnswF32 {
    fn abs(&self) -> Self {
        Self(self.0.abs())
    }
    fn abs_sub(&self, other: &Self) -> Self {
        Self(Signed::abs_sub(&self.0, &other.0))
    }
    fn signum(&self) -> Self {
        Self(self.0.signum())
    }
    fn is_positive(&self) -> bool {
        Signed::is_positive(&self.0)
    }
    fn is_negative(&self) -> bool {
        Signed::is_negative(&self.0)
    }
}

macro_rules! consts {
    ($($name:ident => $value:expr;)*) => {$(
        fn $name() -> Self {
            Self($value)
        }
    )*};
}

macro_rules! unary {
    ($($name:ident)*) => {$(
        fn $name(self) -> Self {
            Self(self.0.$name())
        }
    )*};
}

macro_rules! binary {
    ($($name:ident)*) => {$(
        fn $name(self, other: Self) -> Self {
            Self(self.0.$name(other.0))
        }
    )*};
}

macro_rules! predicates {
    ($($name:ident)*) => {$(
        fn $name(self) -> bool {
            self.0.$name()
        }
    )*};
}

impl FloatConst for HnswF32 {
    consts! {
        E => std::f32::consts::E;
        FRAC_1_PI => std::f32::consts::FRAC_1_PI;
        FRAC_1_SQRT_2 => std::f32::consts::FRAC_1_SQRT_2;
        FRAC_2_PI => std::f32::consts::FRAC_2_PI;
        FRAC_2_SQRT_PI => std::f32::consts::FRAC_2_SQRT_PI;
        FRAC_PI_2 => std::f32::consts::FRAC_PI_2;
        FRAC_PI_3 => std::f32::consts::FRAC_PI_3;
        FRAC_PI_4 => std::f32::consts::FRAC_PI_4;
        FRAC_PI_6 => std::f32::consts::FRAC_PI_6;
        FRAC_PI_8 => std::f32::consts::FRAC_PI_8;
        LN_10 => std::f32::consts::LN_10;
        LN_2 => std::f32::consts::LN_2;
        LOG10_E => std::f32::consts::LOG10_E;
        LOG2_E => std::f32::consts::LOG2_E;
        PI => std::f32::consts::PI;
        SQRT_2 => std::f32::consts::SQRT_2;
    }
}

impl Float for HnswF32 {
    consts! {
        nan => f32::NAN;
        infinity => f32::INFINITY;
        neg_infinity => f32::NEG_INFINITY;
        neg_zero => -0.0;
        min_value => f32::MIN;
        min_positive_value => f32::MIN_POSITIVE;
        max_value => f32::MAX;
    }

    unary! {
        floor ceil round trunc fract abs signum recip sqrt exp exp2 ln log2 log10
        cbrt sin cos tan asin acos atan exp_m1 ln_1p sinh cosh tanh asinh acosh atanh
    }

    binary! { powf log max min hypot atan2 }

    predicates! { is_nan is_infinite is_finite is_normal is_sign_positive is_sign_negative }

    fn classify(self) -> FpCategory {
        self.0.classify()
    }

    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(self.0.mul_add(a.0, b.0))
    }

    fn powi(self, n: i32) -> Self {
        Self(self.0.powi(n))
    }

    fn abs_sub(self, other: Self) -> Self {
        Self((self.0 - other.0).max(0.0))
    }

    fn sin_cos(self) -> (Self, Self) {
        let (s, c) = self.0.sin_cos();
        (Self(s), Self(c))
    }

    fn integer_decode(self) -> (u64, i16, i8) {
        Float::integer_decode(self.0)
    }
}

/// Views `f32`s as the graph's element type (same layout, no copy).
pub(super) fn to_elements(v: &[f32]) -> &[HnswF32] {
    bytemuck::cast_slice(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(x: f32) -> f64 {
        x.into()
    }

    fn reference_squared(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| wide(x - y).powi(2)).sum()
    }

    #[test]
    fn kernels_match_a_wide_sum_for_every_tail_length() {
        for len in [0, 1, 15, 16, 17, 31, 512, 515] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            let (ea, eb) = (to_elements(&a), to_elements(&b));
            let squared = HnswF32::euclidean_distance(ea, eb).map(|d| d.0);
            let expected = reference_squared(&a, &b);
            assert!(
                matches!(squared, Ok(d) if (wide(d) - expected).abs() <= 1e-4 * expected.max(1.0)),
                "len {len}: {squared:?} vs {expected}"
            );
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| wide(x * y)).sum();
            let neg_dot = HnswF32::dot_product(ea, eb).map(|d| d.0);
            assert!(
                matches!(neg_dot, Ok(d) if (wide(d) + dot).abs() <= 1e-4 * dot.abs().max(1.0)),
                "len {len}"
            );
            let l1: f64 = a.iter().zip(&b).map(|(x, y)| wide((x - y).abs())).sum();
            let manhattan = HnswF32::manhattan_distance(ea, eb).map(|d| d.0);
            assert!(
                matches!(manhattan, Ok(d) if (wide(d) - l1).abs() <= 1e-4 * l1.max(1.0)),
                "len {len}"
            );
        }
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let (a, b) = (to_elements(&[1.0, 2.0]), to_elements(&[1.0]));
        assert!(HnswF32::euclidean_distance(a, b).is_err());
        assert!(HnswF32::dot_product(a, b).is_err());
        assert!(HnswF32::manhattan_distance(a, b).is_err());
    }

    #[test]
    fn serialises_exactly_like_f32() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::to_string(&HnswF32(0.25))?,
            serde_json::to_string(&0.25f32)?
        );
        let back: HnswF32 = serde_json::from_str("0.5")?;
        assert_eq!(back, HnswF32(0.5));
        Ok(())
    }
}
