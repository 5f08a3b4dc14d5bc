//! Parameters: a named, ordered store with seeded initialisation, and the
//! small layers built on it.

use crate::nn::ctx::Ctx;
use crate::ops;
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::collections::BTreeMap;

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
    /// Glorot/Xavier uniform for a `[fan_in, fan_out]` matrix.
    XavierUniform,
}

/// All trainable parameters of a model, by name, in a fixed (sorted) order
/// so that optimizer updates and gradient norms are reproducible.
///
/// ```
/// use attend::nn::{Init, ParamStore};
/// let mut store = ParamStore::new(7);
/// let w = store.add("layer.weight", &[4, 3], Init::XavierUniform).unwrap();
/// assert_eq!(w.dims(), &[4, 3]);
/// assert_eq!(store.len(), 1);
/// ```
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    rng: ChaCha8Rng,
    device: Device,
    /// Put before every name [`add`](Self::add) is given (several copies of one network in one store).
    prefix: String,
}

impl ParamStore {
    /// An empty store whose initial values are drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        ParamStore { vars: BTreeMap::new(), rng: ChaCha8Rng::seed_from_u64(seed), device: Device::Cpu, prefix: String::new() }
    }

    /// From now on, parameters are named `prefix` + the name given to
    /// [`add`](Self::add) (`""`: the names as given).
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    /// Creates a parameter. Names must be unique.
    pub fn add(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let name = format!("{}{name}", self.prefix);
        if self.vars.contains_key(&name) {
            candle_core::bail!("parameter {name} defined twice");
        }
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let dist = Normal::new(0.0, std).expect("valid std");
                (0..n).map(|_| dist.sample(&mut self.rng)).collect()
            }
            Init::XavierUniform => {
                let (fan_in, fan_out) = (shape[0], shape[shape.len() - 1]);
                let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                (0..n).map(|_| self.rng.random_range(-a..a)).collect()
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        let t = var.as_tensor().clone();
        self.vars.insert(name, var);
        Ok(t)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalars.
    pub fn num_scalars(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Copies of all values, by name (for saving or keeping the best model).
    pub fn snapshot(&self) -> Result<BTreeMap<String, Tensor>> {
        self.vars.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
    }

    /// Sets values from `tensors`, which must hold exactly this store's names
    /// and shapes; every difference is listed in the error.
    pub fn load(&self, tensors: &BTreeMap<String, Tensor>) -> std::result::Result<(), String> {
        let mut problems = Vec::new();
        for (name, var) in &self.vars {
            match tensors.get(name) {
                None => problems.push(format!("missing parameter {name} {:?}", var.dims())),
                Some(t) if t.dims() != var.dims() => {
                    problems.push(format!("parameter {name}: checkpoint has shape {:?}, config expects {:?}", t.dims(), var.dims()))
                }
                Some(t) if t.dtype() != DType::F32 => problems.push(format!("parameter {name}: dtype {:?}, expected f32", t.dtype())),
                Some(_) => {}
            }
        }
        for name in tensors.keys().filter(|k| !self.vars.contains_key(*k)) {
            problems.push(format!("unexpected parameter {name}"));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        for (name, var) in &self.vars {
            var.set(&tensors[name]).map_err(|e| format!("parameter {name}: {e}"))?;
        }
        Ok(())
    }
}

/// y = x W + b, for x of any rank with the last dimension `in_dim`.
pub struct Linear {
    pub weight: Tensor, // [in, out]
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(store: &mut ParamStore, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = store.add(&format!("{name}.weight"), &[in_dim, out_dim], Init::XavierUniform)?;
        let bias = if bias { Some(store.add(&format!("{name}.bias"), &[out_dim], Init::Zeros)?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// `x W + b`: one fused op with a bias (see [`ops::linear`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, ops::Activation::Identity)
    }

    /// `GELU(x W + b)`, the activation in the same op.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, ops::Activation::Gelu)
    }

    fn forward_with(&self, x: &Tensor, act: ops::Activation) -> Result<Tensor> {
        match &self.bias {
            Some(b) => ops::linear(x, &self.weight, b, act),
            None => {
                let y = self.forward_reference(x)?;
                match act {
                    ops::Activation::Identity => Ok(y),
                    ops::Activation::Gelu => y.gelu_erf(),
                }
            }
        }
    }

    /// `x W + b` in candle ops (matmul, broadcast add): the fused op's
    /// reference twin, and the path of a layer without bias.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        // One GEMM over all rows rather than a batched one per leading index.
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().unwrap() = self.weight.dim(1)?;
        y.reshape(out)
    }
}

/// A lookup table of vectors.
pub struct Embedding {
    pub table: Tensor, // [count, dim]
}

impl Embedding {
    pub fn new(store: &mut ParamStore, name: &str, count: usize, dim: usize, std: f32) -> Result<Self> {
        Ok(Embedding { table: store.add(&format!("{name}.weight"), &[count, dim], Init::Normal(std))? })
    }

    /// Rows of the table for `ids` (u32, any shape): shape `[..ids, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.table.dim(1)?);
        self.table.index_select(&ids.flatten_all()?, 0)?.reshape(shape)
    }

    /// Rows of the table for `ids` (`[..shape, dim]`), under `ctx`: in a
    /// training step that collects row gradients (`ctx.rows`), backward
    /// leaves the table's gradient there as rows
    /// ([`ops::embedding_rows`]); otherwise as [`forward`](Self::forward).
    pub fn forward_in(&self, ids: &[u32], shape: &[usize], ctx: &Ctx) -> Result<Tensor> {
        let mut dims = shape.to_vec();
        dims.push(self.table.dim(1)?);
        match &ctx.rows {
            Some(sink) if ctx.train => ops::embedding_rows(&self.table, ids, sink)?.reshape(dims),
            _ => self.forward(&Tensor::from_slice(ids, shape, &Device::Cpu)?),
        }
    }
}

/// Layer norm over the last dimension, through the fused op (with backward).
pub struct LayerNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, name: &str, dim: usize) -> Result<Self> {
        Ok(LayerNorm {
            gamma: store.add(&format!("{name}.gamma"), &[dim], Init::Ones)?,
            beta: store.add(&format!("{name}.beta"), &[dim], Init::Zeros)?,
            eps: 1e-5,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.gamma, &self.beta, self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The vendored candle builds an embedding's gradient in one pass (see
    /// vendor/candle-core/ATTEND-PATCH.md): it must equal candle's own
    /// `zeros + index_add` bit for bit, with repeated ids, for a table
    /// looked up once and twice (the second lookup adds through
    /// `index_add`).
    #[test]
    fn an_embedding_gradient_equals_index_add_onto_zeros() {
        let dev = Device::Cpu;
        let table = Var::from_tensor(&Tensor::randn(0f32, 1.0, (7, 5), &dev).unwrap()).unwrap();
        let ids = Tensor::new(&[3u32, 0, 3, 6, 3, 1], &dev).unwrap();
        let upstream = Tensor::randn(0f32, 1.0, (6, 5), &dev).unwrap();
        let once = table.index_select(&ids, 0).unwrap();
        let grads = (once * &upstream).unwrap().sum_all().unwrap().backward().unwrap();
        let reference = table.zeros_like().unwrap().index_add(&ids, &upstream, 0).unwrap();
        let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(grads.get(&table).unwrap()), bits(&reference));
        assert!(bits(&reference).iter().any(|&b| b != 0));

        let other = Tensor::new(&[2u32, 3], &dev).unwrap();
        let second = Tensor::randn(0f32, 1.0, (2, 5), &dev).unwrap();
        let loss = ((table.index_select(&ids, 0).unwrap() * &upstream).unwrap().sum_all().unwrap()
            + (table.index_select(&other, 0).unwrap() * &second).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let both = reference.index_add(&other, &second, 0).unwrap();
        let got = grads.get(&table).unwrap();
        // The two lookups reach the table in either order: equal up to rounding.
        let diff = (got - &both).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{diff}");
    }

    /// The vendored candle starts no element-wise pool of its own unless
    /// `CANDLE_NUM_THREADS` asks for one (see its ATTEND-PATCH.md): its
    /// spinning threads would fight attend's pool, in every front end. A
    /// large element-wise op (past the size candle splits) still computes
    /// on the calling thread.
    #[test]
    fn candle_runs_element_wise_ops_on_the_calling_thread() {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            assert_eq!(candle_core::utils::barrier_pool().n_workers(), 0);
        }
        let n = 200_000;
        let x = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap();
        let y = ((&x + &x).unwrap().sqrt().unwrap()).to_vec1::<f32>().unwrap();
        assert!(y.iter().enumerate().all(|(i, &v)| v == (2.0 * i as f32).sqrt()));
    }
}
