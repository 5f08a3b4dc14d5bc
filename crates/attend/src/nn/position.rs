//! Positional encodings: self-attention has no notion of order, so position
//! information is added to each vector (sinusoidal or learned) or rotated
//! into queries and keys (rotary, RoPE).

use super::params::{Init, ParamStore};
use candle_core::{Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Which positional encoding a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PositionKind {
    /// No position information: the model sees a bag of vectors.
    None,
    /// Fixed sines and cosines of geometric frequencies (Vaswani et al.).
    Sinusoidal,
    /// A learned vector per position, up to `max_positions`.
    Learned,
    /// Rotary position embedding: relative positions through rotated q and k.
    #[default]
    Rope,
}

impl std::str::FromStr for PositionKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "sinusoidal" => Ok(Self::Sinusoidal),
            "learned" => Ok(Self::Learned),
            "rope" => Ok(Self::Rope),
            _ => Err(format!("unknown position encoding {s:?} (expected none, sinusoidal, learned or rope)")),
        }
    }
}

/// Sinusoidal table `[seq, dim]`: PE(p, 2i) = sin(p / 10000^(2i/dim)), PE(p, 2i+1) = cos(...).
pub fn sinusoidal_table(seq: usize, dim: usize, device: &Device) -> Result<Tensor> {
    sinusoidal_rows(0, seq, dim, device)
}

/// Rows `first .. first + seq` of [`sinusoidal_table`], built without the
/// rows before them (a slice of a long input costs its own length only).
pub fn sinusoidal_rows(first: usize, seq: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; seq * dim];
    for p in 0..seq {
        for i in 0..dim / 2 {
            let angle = (first + p) as f64 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            data[p * dim + 2 * i] = angle.sin() as f32;
            data[p * dim + 2 * i + 1] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (seq, dim), device)
}

/// The additive encodings (sinusoidal or learned) of the model input.
pub struct PositionEncoding {
    kind: PositionKind,
    learned: Option<Tensor>, // [max_positions, dim]
    max_positions: usize,
}

impl PositionEncoding {
    pub fn new(store: &mut ParamStore, name: &str, kind: PositionKind, dim: usize, max_positions: usize) -> Result<Self> {
        let learned = match kind {
            PositionKind::Learned => Some(store.add(&format!("{name}.weight"), &[max_positions, dim], Init::Normal(0.02))?),
            _ => None,
        };
        Ok(PositionEncoding { kind, learned, max_positions })
    }

    /// Adds position vectors to `x` `[batch, seq, dim]` (identity for none and rope).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_from(x, 0)
    }

    /// As [`forward`](Self::forward) for a slice of a longer sequence whose
    /// first row sits at position `first`.
    pub fn forward_from(&self, x: &Tensor, first: usize) -> Result<Tensor> {
        let (_, seq, dim) = x.dims3()?;
        match self.kind {
            PositionKind::None | PositionKind::Rope => Ok(x.clone()),
            PositionKind::Sinusoidal => x.broadcast_add(&sinusoidal_rows(first, seq, dim, x.device())?),
            PositionKind::Learned => {
                if first + seq > self.max_positions {
                    candle_core::bail!(
                        "sequence of {} words is longer than the learned position table ({}); retrain with a larger `max_positions` or use `position` rope",
                        first + seq,
                        self.max_positions
                    );
                }
                x.broadcast_add(&self.learned.as_ref().expect("learned table").narrow(0, first, seq)?)
            }
        }
    }
}

/// Rotary embedding tables for one sequence length: rotates pairs
/// (x_i, x_{i+d/2}) of each head's query and key by angle p * theta_i, so
/// q_p . k_r depends on p - r only.
pub struct Rotary {
    cos: Tensor, // [seq, head_dim/2]
    sin: Tensor,
    /// The same tables on the host, for the fused attention op.
    host: (Vec<f32>, Vec<f32>),
}

impl Rotary {
    pub fn new(seq: usize, head_dim: usize, device: &Device) -> Result<Self> {
        Self::new_from(0, seq, head_dim, device)
    }

    /// Tables for positions `first .. first + seq` (a slice of a longer
    /// sequence, rotated exactly as in the whole).
    pub fn new_from(first: usize, seq: usize, head_dim: usize, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let mut cos = vec![0f32; seq * half];
        let mut sin = vec![0f32; seq * half];
        for p in 0..seq {
            for i in 0..half {
                let angle = (first + p) as f64 / 10000f64.powf(2.0 * i as f64 / head_dim as f64);
                cos[p * half + i] = angle.cos() as f32;
                sin[p * half + i] = angle.sin() as f32;
            }
        }
        Ok(Rotary {
            cos: Tensor::from_vec(cos.clone(), (seq, half), device)?,
            sin: Tensor::from_vec(sin.clone(), (seq, half), device)?,
            host: (cos, sin),
        })
    }

    /// The cos and sin tables `[seq, head_dim / 2]` as plain slices.
    pub fn tables(&self) -> (&[f32], &[f32]) {
        (&self.host.0, &self.host.1)
    }

    /// Rotates `x` `[batch, heads, seq, head_dim]`.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let r1 = (x1.broadcast_mul(&self.cos)? - x2.broadcast_mul(&self.sin)?)?;
        let r2 = (x1.broadcast_mul(&self.sin)? + x2.broadcast_mul(&self.cos)?)?;
        Tensor::cat(&[r1, r2], D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotary_scores_depend_on_relative_position_only() {
        let dev = Device::Cpu;
        let rot = Rotary::new(8, 4, &dev).unwrap();
        let q = Tensor::new(&[0.3f32, -1.0, 0.5, 2.0], &dev).unwrap();
        let k = Tensor::new(&[1.0f32, 0.2, -0.7, 0.4], &dev).unwrap();
        let rep = |v: &Tensor| v.reshape((1, 1, 1, 4)).unwrap().repeat((1, 1, 8, 1)).unwrap();
        let (qr, kr) = (rot.apply(&rep(&q)).unwrap(), rot.apply(&rep(&k)).unwrap());
        let row = |t: &Tensor, p: usize| t.squeeze(0).unwrap().squeeze(0).unwrap().get(p).unwrap();
        let score = |p: usize, r: usize| (row(&qr, p) * row(&kr, r)).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((score(3, 1) - score(6, 4)).abs() < 1e-5);
        assert!((score(2, 2) - score(7, 7)).abs() < 1e-5);
        assert!((score(2, 2) - score(3, 1)).abs() > 1e-3);
    }

    #[test]
    fn sinusoidal_first_rows() {
        let t = sinusoidal_table(2, 4, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(t[0], vec![0.0, 1.0, 0.0, 1.0]);
        assert!((t[1][0] - 1f32.sin()).abs() < 1e-6);
        assert!((t[1][2] - 0.01f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn sinusoidal_rows_are_the_table_from_an_offset() {
        let whole = sinusoidal_table(40, 6, &Device::Cpu).unwrap().narrow(0, 25, 15).unwrap().to_vec2::<f32>().unwrap();
        let rows = sinusoidal_rows(25, 15, 6, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(whole, rows);
    }
}
