//! The optimizer every model trains with: AdamW (fused, one kernel call per
//! parameter) with its moments kept by parameter name so that they can be
//! saved with a checkpoint, a learning-rate schedule (linear warmup, then
//! cosine decay or constant), and clipping by global gradient norm.
//!
//! ```
//! use attend::optim::Schedule;
//! let s = Schedule { lr: 1.0, warmup_steps: 10, min_lr_ratio: 0.1 };
//! assert_eq!(s.lr_at(5, 110), 0.5);
//! assert!((s.lr_at(110, 110) - 0.1).abs() < 1e-6);
//! // min_lr_ratio 1 is a constant rate after warmup (GAT's Adam).
//! assert_eq!(Schedule { lr: 0.005, warmup_steps: 0, min_lr_ratio: 1.0 }.lr_at(7, 5000), 0.005);
//! ```

use crate::error::Result;
use crate::nn::ParamStore;
use crate::ops;
use attend_kernels::adamw::AdamWStep;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, TensorId, Var};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Learning rate over the steps of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f32,
    /// Linear warmup from 0 over this many steps.
    pub warmup_steps: usize,
    /// After warmup the rate decays (cosine) to `lr * min_lr_ratio`; 1 keeps it constant.
    pub min_lr_ratio: f32,
}

impl Schedule {
    /// Learning rate at 1-based `step` of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f32 {
        if step <= self.warmup_steps {
            return self.lr * step as f32 / self.warmup_steps.max(1) as f32;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f32 / span as f32).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }
}

/// AdamW settings. Decoupled weight decay and L2 apply to matrices only
/// (rank >= 2), not to biases or gains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    /// Clip to this global gradient norm (0 = off).
    pub clip: f32,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// L2 added to the gradient (Adam with classic weight decay, as in GAT).
    pub l2: f32,
}

/// AdamW with its moments kept by parameter name, so they can be saved with
/// a checkpoint and training resumed exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdamW {
    pub m: BTreeMap<String, Vec<f32>>,
    pub v: BTreeMap<String, Vec<f32>>,
    pub step: u64,
}

/// The gradients of one backward pass: candle's store, and the tables
/// whose gradients came back as rows ([`ops::embedding_rows`]: a training
/// step's word embedding), by the table's tensor id.
#[derive(Debug, Default)]
pub struct Gradients {
    pub dense: GradStore,
    pub rows: HashMap<TensorId, ops::RowGrad>,
}

impl From<GradStore> for Gradients {
    fn from(dense: GradStore) -> Self {
        Gradients { dense, rows: HashMap::new() }
    }
}

impl Gradients {
    /// `dense` with the row gradients a backward pass left in a sink
    /// ([`ops::RowGrads::take`]). A table looked up more than once gets the
    /// sum of its lookups' rows.
    pub fn new(dense: GradStore, rows: Vec<(TensorId, ops::RowGrad)>) -> Self {
        let mut by_table: HashMap<TensorId, ops::RowGrad> = HashMap::new();
        for (id, g) in rows {
            match by_table.entry(id) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(g);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let sum = e.get().add(&g);
                    e.insert(sum);
                }
            }
        }
        Gradients { dense, rows: by_table }
    }
}

/// One parameter's gradient over the parts of a step.
enum Grad<'a> {
    /// Dense tensors, to add in order.
    Dense(Vec<&'a Tensor>),
    /// Rows of a table, to add in order.
    Rows(Vec<&'a ops::RowGrad>),
    /// A table with both (not made by attend's models): the rows made dense.
    Mixed(Vec<Tensor>),
}

impl Grad<'_> {
    fn sum_of_squares(&self, elements: usize) -> Result<f64> {
        Ok(match self {
            Grad::Dense(g) => ops::sum_of_squares(g)?,
            Grad::Rows(g) => ops::sum_of_squares_rows(elements, g),
            Grad::Mixed(g) => ops::sum_of_squares(&g.iter().collect::<Vec<_>>())?,
        })
    }
}

impl AdamW {
    /// Applies one update from `grads` at learning rate `lr`; returns the
    /// gradient norm before clipping. Parameters without a gradient are left alone.
    pub fn update(&mut self, params: &ParamStore, grads: &GradStore, lr: f32, h: &AdamWConfig) -> Result<f32> {
        self.update_parts(params, &[(grads, None)], lr, h)
    }

    /// [`update`](Self::update) from the sum of several passes' gradients
    /// (the pieces of a data-parallel step), added in order element by
    /// element inside the update's own pass, never stored: one part gives
    /// exactly [`update`](Self::update). A table's rows
    /// ([`Gradients::rows`]) count as the dense table with zeros elsewhere,
    /// bit for bit. The parameters are updated in parallel (and each large
    /// one in fixed chunks); the gradient norm adds each parameter's sum of
    /// squares in parameter order, so the result does not depend on the
    /// thread count.
    pub fn update_sum(&mut self, params: &ParamStore, parts: &[Gradients], lr: f32, h: &AdamWConfig) -> Result<f32> {
        let parts: Vec<_> = parts.iter().map(|g| (&g.dense, Some(&g.rows))).collect();
        self.update_parts(params, &parts, lr, h)
    }

    fn update_parts(
        &mut self,
        params: &ParamStore,
        parts: &[(&GradStore, Option<&HashMap<TensorId, ops::RowGrad>>)],
        lr: f32,
        h: &AdamWConfig,
    ) -> Result<f32> {
        self.step += 1;
        // Each parameter with a gradient in some part, with those parts in order.
        let mut work: Vec<(&String, &Var, Grad)> = Vec::new();
        for (name, var) in params.vars() {
            let dense: Vec<&Tensor> = parts.iter().filter_map(|p| p.0.get(var)).collect();
            let rows: Vec<&ops::RowGrad> = parts.iter().filter_map(|p| p.1.and_then(|r| r.get(&var.id()))).collect();
            let grad = match (dense.is_empty(), rows.is_empty()) {
                (true, true) => continue,
                (false, true) => Grad::Dense(dense),
                (true, false) => Grad::Rows(rows),
                (false, false) => {
                    let table = var.dim(0)?;
                    let mut mixed = Vec::new();
                    for p in parts {
                        let d = p.0.get(var);
                        let r = p.1.and_then(|r| r.get(&var.id())).map(|r| r.to_dense(table)).transpose()?;
                        mixed.extend(match (d, r) {
                            (Some(d), Some(r)) => Some((d + r)?),
                            (Some(d), None) => Some(d.clone()),
                            (None, r) => r,
                        });
                    }
                    Grad::Mixed(mixed)
                }
            };
            work.push((name, var, grad));
        }
        let squares = work.par_iter().map(|(_, var, grad)| grad.sum_of_squares(var.elem_count())).collect::<Result<Vec<f64>>>()?;
        let norm = squares.iter().sum::<f64>().sqrt() as f32;
        let grad_scale = if h.clip > 0.0 && norm > h.clip { h.clip / norm } else { 1.0 };
        for (name, var, _) in &work {
            let n = var.elem_count();
            self.m.entry((*name).clone()).or_insert_with(|| vec![0.0; n]);
            self.v.entry((*name).clone()).or_insert_with(|| vec![0.0; n]);
        }
        let mut ms: HashMap<&str, &mut Vec<f32>> = self.m.iter_mut().map(|(k, x)| (k.as_str(), x)).collect();
        let mut vs: HashMap<&str, &mut Vec<f32>> = self.v.iter_mut().map(|(k, x)| (k.as_str(), x)).collect();
        let jobs: Vec<_> = work
            .iter()
            .map(|(name, var, grad)| {
                let m = ms.remove(name.as_str()).expect("a moment was made above for every parameter");
                let v = vs.remove(name.as_str()).expect("a moment was made above for every parameter");
                (*var, grad, m, v)
            })
            .collect();
        let step = self.step;
        jobs.into_par_iter().try_for_each(|(var, grad, m, v)| -> Result<()> {
            let matrix = var.rank() >= 2;
            let step = AdamWStep {
                lr,
                beta1: h.beta1,
                beta2: h.beta2,
                eps: 1e-8,
                weight_decay: if matrix { h.weight_decay } else { 0.0 },
                step,
                grad_scale,
                l2: if matrix { h.l2 } else { 0.0 },
            };
            match grad {
                Grad::Dense(g) => ops::adamw_step(var.as_tensor(), g, m, v, step)?,
                Grad::Rows(g) => ops::adamw_step_rows(var.as_tensor(), g, m, v, step)?,
                Grad::Mixed(g) => ops::adamw_step(var.as_tensor(), &g.iter().collect::<Vec<_>>(), m, v, step)?,
            }
            Ok(())
        })?;
        Ok(norm)
    }

    /// The state as named tensors: `m.NAME`, `v.NAME` and `step` (two u32
    /// halves: candle's safetensors has no u64).
    pub fn to_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut state = HashMap::new();
        let dev = Device::Cpu;
        for (prefix, moments) in [("m", &self.m), ("v", &self.v)] {
            for (name, x) in moments {
                state.insert(format!("{prefix}.{name}"), Tensor::from_slice(x, x.len(), &dev)?);
            }
        }
        state.insert("step".into(), Tensor::new(&[self.step as u32, (self.step >> 32) as u32], &dev)?);
        Ok(state)
    }

    /// Reads what [`to_tensors`](Self::to_tensors) wrote; errors name the tensor.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> std::result::Result<Self, String> {
        let mut opt = AdamW::default();
        for (key, t) in tensors {
            let bad = |e: candle_core::Error| format!("{key}: {e}");
            if key == "step" {
                let halves = t.to_vec1::<u32>().map_err(bad)?;
                opt.step = halves.first().copied().unwrap_or(0) as u64 | (halves.get(1).copied().unwrap_or(0) as u64) << 32;
            } else if let Some(name) = key.strip_prefix("m.") {
                opt.m.insert(name.to_string(), t.to_vec1::<f32>().map_err(bad)?);
            } else if let Some(name) = key.strip_prefix("v.") {
                opt.v.insert(name.to_string(), t.to_vec1::<f32>().map_err(bad)?);
            } else {
                return Err(format!("unexpected tensor {key}"));
            }
        }
        Ok(opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = Schedule { lr: 1.0, warmup_steps: 10, min_lr_ratio: 0.1 };
        assert!((s.lr_at(5, 110) - 0.5).abs() < 1e-6);
        assert!((s.lr_at(10, 110) - 1.0).abs() < 1e-6);
        assert!((s.lr_at(60, 110) - 0.55).abs() < 1e-5);
        assert!((s.lr_at(110, 110) - 0.1).abs() < 1e-6);
        assert!(s.lr_at(40, 110) > s.lr_at(80, 110));
    }

    #[test]
    fn state_round_trips_and_clipping_bounds_the_first_step() {
        let mut store = ParamStore::new(1);
        let w = store.add("w", &[2, 3], Init::Normal(1.0)).unwrap();
        let before = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let loss = (w.sqr().unwrap().sum_all().unwrap() * 100.0).unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::default();
        let h = AdamWConfig { beta1: 0.9, beta2: 0.999, clip: 1.0, weight_decay: 0.0, l2: 0.0 };
        let norm = opt.update(&store, &grads, 0.1, &h).unwrap();
        assert!(norm > 1.0, "the gradient is large: {norm}");
        // Adam's first step moves every weight by about lr, whatever the scale.
        let after = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in before.iter().zip(&after) {
            assert!(((a - b).abs() - 0.1).abs() < 1e-3, "{a} -> {b}");
        }
        opt.step = (1u64 << 33) + 5;
        assert_eq!(AdamW::from_tensors(opt.to_tensors().unwrap()).unwrap(), opt);
        let mut bad = opt.to_tensors().unwrap();
        bad.insert("x".into(), Tensor::new(&[1f32], &Device::Cpu).unwrap());
        assert_eq!(AdamW::from_tensors(bad).unwrap_err(), "unexpected tensor x");
    }

    #[test]
    fn update_from_parts_equals_update_from_their_sum() {
        let make = || {
            let mut store = ParamStore::new(7);
            let w = store.add("w", &[70, 90], Init::Normal(1.0)).unwrap();
            let b = store.add("b", &[90], Init::Normal(1.0)).unwrap();
            (store, w, b)
        };
        let h = AdamWConfig { beta1: 0.9, beta2: 0.98, clip: 5.0, weight_decay: 0.01, l2: 0.0 };
        let loss =
            |w: &Tensor, b: &Tensor, k: f64| (w.sin().unwrap() * k).unwrap().broadcast_add(b).unwrap().sqr().unwrap().sum_all().unwrap();
        let (s1, w1, b1) = make();
        let parts: Vec<Gradients> = vec![loss(&w1, &b1, 1.0).backward().unwrap().into(), loss(&w1, &b1, -0.3).backward().unwrap().into()];
        let (s2, w2, b2) = make();
        let whole = (loss(&w2, &b2, 1.0) + loss(&w2, &b2, -0.3)).unwrap().backward().unwrap();
        let (mut o1, mut o2) = (AdamW::default(), AdamW::default());
        for _ in 0..3 {
            let n1 = o1.update_sum(&s1, &parts, 0.01, &h).unwrap();
            let n2 = o2.update(&s2, &whole, 0.01, &h).unwrap();
            assert!((n1 - n2).abs() <= 1e-5 * n2, "{n1} vs {n2}");
        }
        for (a, b) in [(&w1, &w2), (&b1, &b2)] {
            let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "weights differ by {diff}");
        }
        assert_eq!(o1.step, 3);
        assert_eq!(o1.m.keys().collect::<Vec<_>>(), o2.m.keys().collect::<Vec<_>>());
    }

    /// A table looked up twice in one pass gets the sum of both lookups'
    /// rows, and the update from rows matches the update from the dense
    /// gradient candle builds for the same lookups.
    #[test]
    fn rows_of_two_lookups_add_up_and_update_as_the_dense_table() {
        use std::sync::Arc;
        let make = || {
            let mut store = ParamStore::new(3);
            let t = store.add("t", &[9, 4], Init::Normal(1.0)).unwrap();
            (store, t)
        };
        let (a, b): (Vec<u32>, Vec<u32>) = (vec![1, 5, 1, 8], vec![5, 0, 2]);
        let h = AdamWConfig { beta1: 0.9, beta2: 0.98, clip: 0.5, weight_decay: 0.01, l2: 0.0 };
        let loss =
            |x: Tensor, y: Tensor| (x.sin().unwrap().sum_all().unwrap() + (y * 3.0).unwrap().sqr().unwrap().sum_all().unwrap()).unwrap();
        let (s1, t1) = make();
        let sink = Arc::new(ops::RowGrads::default());
        let l = loss(ops::embedding_rows(&t1, &a, &sink).unwrap(), ops::embedding_rows(&t1, &b, &sink).unwrap());
        let grads = Gradients::new(l.backward().unwrap(), sink.take());
        assert!(grads.dense.get(&t1).is_none());
        assert_eq!(grads.rows[&t1.id()].ids, vec![0, 1, 2, 5, 8]);
        let (s2, t2) = make();
        let idx = |ids: &[u32]| Tensor::from_slice(ids, ids.len(), &Device::Cpu).unwrap();
        let dense = loss(t2.index_select(&idx(&a), 0).unwrap(), t2.index_select(&idx(&b), 0).unwrap()).backward().unwrap();
        let want = dense.get(&t2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = grads.rows[&t1.id()].to_dense(9).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(want.iter().zip(&got).all(|(x, y)| (x - y).abs() <= 1e-6 * x.abs().max(1.0)), "{want:?} vs {got:?}");
        let (mut o1, mut o2) = (AdamW::default(), AdamW::default());
        let n1 = o1.update_sum(&s1, std::slice::from_ref(&grads), 0.01, &h).unwrap();
        let n2 = o2.update(&s2, &dense, 0.01, &h).unwrap();
        assert!((n1 - n2).abs() <= 1e-5 * n2, "{n1} vs {n2}");
        let (w1, w2) = (t1.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(w1.iter().zip(&w2).all(|(x, y)| (x - y).abs() <= 1e-6), "{w1:?} vs {w2:?}");
    }
}
