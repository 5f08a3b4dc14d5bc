//! A stacked bidirectional LSTM encoder: the recurrent baseline the
//! self-attention encoder is compared with. Each direction's input
//! projection runs as one matrix product over all steps; the recurrence
//! runs on the fused [`ops::lstm`] kernel.

use super::ctx::Ctx;
use super::params::{Init, Linear, ParamStore};
use crate::ops;
use candle_core::{Device, Result, Tensor};

/// One direction of one layer.
struct Direction {
    /// `x -> 4 x hidden` gate inputs (i, f, g, o), with bias.
    input: Linear,
    /// Recurrent weights `[hidden, 4 x hidden]`.
    recurrent: Tensor,
}

impl Direction {
    fn new(store: &mut ParamStore, name: &str, input: usize, hidden: usize) -> Result<Self> {
        let linear = Linear::new(store, &format!("{name}.input"), input, 4 * hidden, true)?;
        // Forget gates start open (bias 1), the usual LSTM initialisation.
        if let Some(bias) = store.get(&format!("{name}.input.bias")) {
            let b: Vec<f32> = (0..4 * hidden).map(|j| if (hidden..2 * hidden).contains(&j) { 1.0 } else { 0.0 }).collect();
            bias.set(&Tensor::from_vec(b, 4 * hidden, &Device::Cpu)?)?;
        }
        let recurrent = store.add(&format!("{name}.recurrent"), &[hidden, 4 * hidden], Init::XavierUniform)?;
        Ok(Direction { input: linear, recurrent })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::lstm(&self.input.forward(x)?, &self.recurrent)
    }
}

/// `layers` bidirectional LSTM layers; each outputs the forward and
/// backward states side by side (`2 x hidden` wide).
pub struct BiLstm {
    layers: Vec<(Direction, Direction)>,
    hidden: usize,
    dropout: f32,
}

impl BiLstm {
    pub fn new(store: &mut ParamStore, name: &str, layers: usize, input: usize, hidden: usize, dropout: f32) -> Result<Self> {
        let layers = (0..layers)
            .map(|l| {
                let width = if l == 0 { input } else { 2 * hidden };
                Ok((
                    Direction::new(store, &format!("{name}.{l}.forward"), width, hidden)?,
                    Direction::new(store, &format!("{name}.{l}.backward"), width, hidden)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BiLstm { layers, hidden, dropout })
    }

    /// Output width.
    pub fn width(&self) -> usize {
        2 * self.hidden
    }

    /// `x` `[batch, steps, input]` with sequence `b` holding `lengths[b]`
    /// real steps (padding after them) -> `[batch, steps, 2 x hidden]`.
    pub fn forward(&self, x: &Tensor, lengths: &[usize], ctx: &mut Ctx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let reverse = reversal(lengths, t, x.device())?;
        let flip = |x: &Tensor| -> Result<Tensor> {
            let (_, _, d) = x.dims3()?;
            x.reshape((b * t, d))?.index_select(&reverse, 0)?.reshape((b, t, d))
        };
        let mut h = x.clone();
        for (l, (fwd, bwd)) in self.layers.iter().enumerate() {
            if l > 0 {
                h = ctx.dropout(&h, self.dropout)?;
            }
            let forward = fwd.forward(&h)?;
            let backward = flip(&bwd.forward(&flip(&h)?)?)?;
            h = Tensor::cat(&[forward, backward], 2)?;
            if !ctx.train {
                h = h.detach(); // inference: free this layer's intermediates now
            }
        }
        Ok(h)
    }
}

/// Row indices into `[batch x steps]` that reverse each sequence within
/// its length and leave the padding where it is (an involution).
fn reversal(lengths: &[usize], steps: usize, device: &Device) -> Result<Tensor> {
    let idx: Vec<u32> = lengths
        .iter()
        .enumerate()
        .flat_map(|(b, &n)| (0..steps).map(move |s| (b * steps + if s < n { n - 1 - s } else { s }) as u32))
        .collect();
    Tensor::from_vec(idx, lengths.len() * steps, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversal_flips_within_length_only() {
        let r = reversal(&[3, 1, 0], 3, &Device::Cpu).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(r, vec![2, 1, 0, 3, 4, 5, 6, 7, 8]);
    }

    /// A sequence's outputs do not depend on the padding after it or on
    /// the other sequences of the batch (both directions).
    #[test]
    fn padding_and_batch_mates_do_not_leak() {
        let mut store = ParamStore::new(3);
        let net = BiLstm::new(&mut store, "rnn", 2, 5, 4, 0.0).unwrap();
        let data: Vec<f32> = (0..2 * 6 * 5).map(|i| ((i * 31 % 17) as f32) / 8.0 - 1.0).collect();
        let x = Tensor::from_vec(data, (2, 6, 5), &Device::Cpu).unwrap();
        let both = net.forward(&x, &[4, 6], &mut Ctx::eval()).unwrap();
        let alone = net.forward(&x.narrow(0, 0, 1).unwrap().narrow(1, 0, 4).unwrap(), &[4], &mut Ctx::eval()).unwrap();
        let a = both.narrow(0, 0, 1).unwrap().narrow(1, 0, 4).unwrap();
        let d = (a - alone).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "differs by {d}");
    }
}
