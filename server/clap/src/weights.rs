//! Strict loading of the checkpoint's weights into the model's tensors.
//!
//! `model.safetensors` is read when present, otherwise `pytorch_model.bin` (the `torch.save`
//! archive some LAION repositories carry instead; parsed by `pytorch-reader`, no Python).
//! Every tensor the model needs is looked up by its `transformers` key and checked against the
//! shape the config implies; at the end, any key left unused is an error. Nothing is ever
//! initialised at random: a checkpoint that does not match its config fails loudly, naming the
//! tensor.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{ClapError, Result};

/// The weight files a checkpoint directory may hold, in the order they are preferred.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The weights file of the checkpoint in `dir`: `model.safetensors` when present, otherwise
/// `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// One tensor of the checkpoint: element type, shape and little-endian bytes.
struct Raw<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

/// The bytes of a weights file, kept for the loader to borrow from.
pub(crate) enum WeightBytes {
    Safetensors(Vec<u8>),
    /// `pytorch_model.bin` needs no bytes kept: its tensors are read out at open.
    Pytorch,
}

impl WeightBytes {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "bin") {
            return Ok(Self::Pytorch);
        }
        std::fs::read(path)
            .map(Self::Safetensors)
            .map_err(|source| ClapError::Io {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Reads tensors by name from a weights file and remembers which were used.
pub(crate) struct Loader<'a> {
    path: PathBuf,
    tensors: HashMap<String, Raw<'a>>,
    used: BTreeSet<String>,
    pub(crate) device: Device,
    /// What the linear layers' weights are kept in.
    pub(crate) precision: crate::Precision,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(path: &Path, bytes: &'a WeightBytes, device: &Device) -> Result<Self> {
        let tensors = match bytes {
            WeightBytes::Safetensors(bytes) => safetensors_tensors(path, bytes)?,
            WeightBytes::Pytorch => pytorch_tensors(path)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            used: BTreeSet::new(),
            device: device.clone(),
            precision: crate::Precision::F32,
        })
    }

    fn view(&mut self, name: &str, expected: &[usize]) -> Result<&Raw<'a>> {
        let view = self.tensors.get(name).ok_or_else(|| ClapError::MissingTensor {
            name: name.to_string(),
        })?;
        if view.shape != expected {
            return Err(ClapError::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: view.shape.clone(),
            });
        }
        self.used.insert(name.to_string());
        Ok(view)
    }

    /// The tensor `name` as f32 values in row-major order, after checking its shape.
    pub(crate) fn f32s(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.view(name, shape)?;
        let data: &[u8] = &view.data;
        let values = match view.dtype {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                .collect(),
            other => {
                return Err(ClapError::DType {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(values)
    }

    /// An integer buffer (e.g. `relative_position_index`) as i64 values.
    pub(crate) fn i64s(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        let view = self.view(name, shape)?;
        let data: &[u8] = &view.data;
        match view.dtype {
            Dtype::I64 => Ok(data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()),
            Dtype::I32 => Ok(data
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect()),
            other => Err(ClapError::DType {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }

    /// Marks a bookkeeping buffer the model does not need (e.g. `num_batches_tracked`) as
    /// consumed when present; its absence is fine.
    pub(crate) fn ignore(&mut self, name: &str) {
        if self.tensors.contains_key(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Whether the file has a tensor of this name.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Uploads host values as a tensor on the loader's device.
    pub(crate) fn upload<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// The tensor `name` with the given shape, on the device.
    pub(crate) fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.f32s(name, &shape)?;
        Ok(self.upload(values, shape))
    }

    /// Fails, naming them, if some tensors of the file were never used.
    pub(crate) fn finish(self) -> Result<()> {
        let mut unused: Vec<String> = self
            .tensors
            .keys()
            .filter(|n| !self.used.contains(*n))
            .cloned()
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        unused.sort();
        tracing::error!(file = %self.path.display(), ?unused, "checkpoint tensors not used by the model");
        Err(ClapError::UnusedTensors { names: unused })
    }
}

fn safetensors_tensors<'a>(path: &Path, bytes: &'a [u8]) -> Result<HashMap<String, Raw<'a>>> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| ClapError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let raw = Raw {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                data: Cow::Borrowed(view.data()),
            };
            (name, raw)
        })
        .collect())
}

/// Every tensor of a `torch.save` archive, read into memory with its bytes in the
/// little-endian row-major layout safetensors uses.
fn pytorch_tensors(path: &Path) -> Result<HashMap<String, Raw<'static>>> {
    let invalid = |message: String| ClapError::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| invalid(e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, tensor) in reader.tensors() {
        use pytorch_reader::DType as T;
        let dtype = match tensor.dtype() {
            T::F64 => Dtype::F64,
            T::F32 => Dtype::F32,
            T::F16 => Dtype::F16,
            T::BF16 => Dtype::BF16,
            T::I64 => Dtype::I64,
            T::I32 => Dtype::I32,
            T::I16 => Dtype::I16,
            T::I8 => Dtype::I8,
            T::U64 => Dtype::U64,
            T::U32 => Dtype::U32,
            T::U16 => Dtype::U16,
            T::U8 => Dtype::U8,
            T::Bool => Dtype::BOOL,
        };
        let data = tensor
            .read()
            .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
        let raw = Raw {
            dtype,
            shape: tensor.shape().to_vec(),
            data: Cow::Owned(data),
        };
        tensors.insert(name.clone(), raw);
    }
    Ok(tensors)
}

/// IEEE half to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: renormalise into a normal single.
            let mut e: i32 = -14;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            let m = m & 0x3ff;
            sign | (((e + 127) as u32) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
