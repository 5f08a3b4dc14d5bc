//! From a [`SeriesSet`] to the model's inputs: per-channel normalisation
//! with the training set's statistics, missing values, patches, the
//! summary slot, and labels mapped to the model's classes. What is learned
//! from the training data is a [`DataSpec`], saved as `data.json`.

use super::config::SequenceConfig;
use crate::data::series::{Label, Series, SeriesSet, Target, NO_LABEL};
use crate::error::{Error, Result};
use attend_kernels::loss::IGNORE;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// A gold class the model does not know (it is scored as wrong).
pub const UNSEEN: u32 = u32::MAX - 1;

/// What a model learned about its data: saved as `data.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub target: Target,
    /// Class names, in the order of the model's outputs.
    pub classes: Vec<String>,
    pub dims: usize,
    /// Per-channel mean and standard deviation of the training vectors
    /// (missing values left out); inputs become `(x - mean) / std`.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Regression: the targets' mean and standard deviation (the model
    /// predicts the standardised target).
    pub target_mean: f32,
    pub target_std: f32,
}

impl DataSpec {
    /// Statistics of the training sequences `train` (indices into `set`).
    pub fn fit(set: &SeriesSet, train: &[usize]) -> Result<DataSpec> {
        let d = set.dims;
        if set.target == Target::Unlabelled {
            return Err(Error::Input(format!("{}: has no labels to train on", set.path.display())));
        }
        let (mut sum, mut sq, mut n) = (vec![0f64; d], vec![0f64; d], vec![0u64; d]);
        for &i in train {
            for row in set.series[i].values.chunks_exact(d) {
                for (c, &v) in row.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                    sum[c] += v as f64;
                    sq[c] += (v as f64) * (v as f64);
                    n[c] += 1;
                }
            }
        }
        let mean: Vec<f64> = sum.iter().zip(&n).map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 }).collect();
        // A constant (or never observed) channel keeps std 1: it carries no scale to undo.
        let std = sq
            .iter()
            .zip(&n)
            .zip(&mean)
            .map(|((q, &n), m)| if n > 0 { (q / n as f64 - m * m).max(0.0).sqrt() } else { 0.0 })
            .map(|s| if s > 1e-8 { s as f32 } else { 1.0 })
            .collect();
        let values: Vec<f64> = train
            .iter()
            .filter_map(|&i| match set.series[i].label {
                Label::Value(v) => Some(v as f64),
                _ => None,
            })
            .collect();
        let tm = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let ts = (values.iter().map(|v| (v - tm).powi(2)).sum::<f64>() / values.len().max(1) as f64).sqrt();
        Ok(DataSpec {
            target: set.target,
            classes: set.classes.clone(),
            dims: d,
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
            target_mean: tm as f32,
            target_std: if ts > 1e-8 { ts as f32 } else { 1.0 },
        })
    }

    /// Number of head outputs.
    pub fn outputs(&self) -> usize {
        if self.target == Target::SequenceValue {
            1
        } else {
            self.classes.len()
        }
    }

    /// Checks that `set` can go into a model trained on this spec, and maps
    /// its class ids to the model's (a class the model never saw maps to [`UNSEEN`]).
    pub fn class_map(&self, set: &SeriesSet) -> Result<Vec<u32>> {
        if set.dims != self.dims && !set.series.is_empty() {
            return Err(Error::Input(format!(
                "{}: vectors have {} values, the model was trained on {}",
                set.path.display(),
                set.dims,
                self.dims
            )));
        }
        if set.target != Target::Unlabelled && set.target != self.target {
            return Err(Error::Input(format!("{}: has {}, but the model predicts {}", set.path.display(), set.target, self.target)));
        }
        Ok(set.classes.iter().map(|c| self.classes.iter().position(|k| k == c).map_or(UNSEEN, |k| k as u32)).collect())
    }
}

/// One sequence ready for the model: `tokens` rows of `width` inputs
/// (patches; the summary slot first if any) and its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub rows: Vec<f32>,
    pub tokens: usize,
    /// Per vector: a class per token ([`NO_LABEL`] -> ignored); per sequence: one class.
    pub classes: Vec<u32>,
    /// Regression: the standardised target.
    pub value: f32,
}

/// Turns sequences into model inputs.
pub fn encode(set: &SeriesSet, spec: &DataSpec, config: &SequenceConfig) -> Result<Vec<Encoded>> {
    let map = spec.class_map(set)?;
    let remap = |c: u32| if c == NO_LABEL { IGNORE } else { map.get(c as usize).copied().unwrap_or(UNSEEN) };
    Ok(set.series.iter().map(|s| encode_one(s, spec, config, &remap)).collect())
}

fn encode_one(s: &Series, spec: &DataSpec, c: &SequenceConfig, remap: &dyn Fn(u32) -> u32) -> Encoded {
    let d = spec.dims;
    let per_vector = c.vector_width();
    let width = c.input_width();
    let summary = usize::from(c.summary());
    let patches = s.len.div_ceil(c.patch);
    let tokens = patches + summary;
    let mut rows = vec![0f32; tokens * width];
    if summary == 1 {
        rows[width - 1] = 1.0; // the summary slot's flag; every other input of it is 0
    }
    // The sequence's own per-channel mean and deviation, after the training-set normalisation.
    let normalised = |k: usize, x: f32| (x - spec.mean[k]) / spec.std[k];
    let own: Vec<(f32, f32)> = if c.sequence_norm { sequence_stats(s, d, &normalised) } else { vec![(0.0, 1.0); d] };
    // Each vector's inputs: its values (a missing one is the mean, 0 after
    // normalisation) and, when the model has them, the missing indicators.
    let mut features = vec![0f32; s.len * per_vector];
    for (v, f) in s.values.chunks_exact(d).zip(features.chunks_exact_mut(per_vector)) {
        for (k, &x) in v.iter().enumerate() {
            if x.is_nan() {
                if c.missing_indicators {
                    f[d + k] = 1.0;
                }
            } else {
                f[k] = (normalised(k, x) - own[k].0) / own[k].1;
            }
        }
    }
    let (slot, half) = (c.slot_width(), if c.stem > 0 { c.stem_kernel / 2 } else { 0 });
    let stats_at = slot * c.patch;
    for t in 0..s.len {
        let row = &mut rows[(summary + t / c.patch) * width..][..width];
        let at = (t % c.patch) * slot;
        // The vector, or the window around it for the stem (zeros beyond the ends).
        for (j, u) in (t as isize - half as isize..=(t + half) as isize).enumerate() {
            if (0..s.len as isize).contains(&u) {
                row[at + j * per_vector..][..per_vector].copy_from_slice(&features[u as usize * per_vector..][..per_vector]);
            }
        }
        if c.sequence_norm {
            for (k, (m, sd)) in own.iter().enumerate() {
                row[stats_at + 2 * k] = *m;
                row[stats_at + 2 * k + 1] = sd.ln();
            }
            row[stats_at + 2 * d] = (s.len as f32).ln();
        }
    }
    let (classes, value) = match &s.label {
        Label::None => (vec![], 0.0),
        Label::Class(k) => (vec![remap(*k)], 0.0),
        Label::Value(v) => (vec![], (v - spec.target_mean) / spec.target_std),
        Label::PerVector(ls) => (ls.iter().map(|&k| remap(k)).collect(), 0.0),
    };
    Encoded { rows, tokens, classes, value }
}

/// Mean and standard deviation of each channel of `s` (observed values,
/// through `normalised`); a flat or unobserved channel gets deviation 1e-3.
fn sequence_stats(s: &Series, d: usize, normalised: &dyn Fn(usize, f32) -> f32) -> Vec<(f32, f32)> {
    (0..d)
        .map(|k| {
            let xs: Vec<f64> = s.values.chunks_exact(d).map(|v| v[k]).filter(|x| !x.is_nan()).map(|x| normalised(k, x) as f64).collect();
            let n = xs.len().max(1) as f64;
            let m = xs.iter().sum::<f64>() / n;
            let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt().max(1e-3);
            (m as f32, sd as f32)
        })
        .collect()
}

impl Encoded {
    /// Rows `lo..hi` alone (for slices of a long sequence and training crops).
    pub fn slice(&self, lo: usize, hi: usize, width: usize) -> Encoded {
        let per_token = self.classes.len() == self.tokens;
        Encoded {
            rows: self.rows[lo * width..hi * width].to_vec(),
            tokens: hi - lo,
            classes: if per_token { self.classes[lo..hi].to_vec() } else { self.classes.clone() },
            value: self.value,
        }
    }
}

/// Sequences padded into one tensor.
pub struct SeriesBatch {
    /// `[batch, seq, width]`.
    pub x: Tensor,
    pub lengths: Vec<usize>,
    /// Per vector: `batch * seq` classes ([`IGNORE`] on padding); per sequence: `batch`.
    pub classes: Vec<u32>,
    pub values: Vec<f32>,
}

impl SeriesBatch {
    pub fn new(data: &[Encoded], indices: &[usize], width: usize, per_vector: bool) -> candle_core::Result<Self> {
        let seq = indices.iter().map(|&i| data[i].tokens).max().unwrap_or(0);
        let mut x = vec![0f32; indices.len() * seq * width];
        let mut classes = Vec::with_capacity(indices.len() * if per_vector { seq } else { 1 });
        for (b, &i) in indices.iter().enumerate() {
            let e = &data[i];
            x[b * seq * width..][..e.rows.len()].copy_from_slice(&e.rows);
            // A class the model never saw has no output to score a loss against.
            let known = |c: u32| if c == UNSEEN { IGNORE } else { c };
            if per_vector {
                classes.extend(e.classes.iter().map(|&c| known(c)).chain(std::iter::repeat(IGNORE)).take(seq));
            } else {
                classes.push(e.classes.first().map_or(IGNORE, |&c| known(c)));
            }
        }
        Ok(SeriesBatch {
            x: Tensor::from_vec(x, (indices.len(), seq, width), &Device::Cpu)?,
            lengths: indices.iter().map(|&i| data[i].tokens).collect(),
            classes,
            values: indices.iter().map(|&i| data[i].value).collect(),
        })
    }

    /// Vectors with a label (per vector), or sequences.
    pub fn units(&self, per_vector: bool) -> usize {
        if per_vector {
            self.classes.iter().filter(|&&c| c != IGNORE).count()
        } else {
            self.lengths.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::series::{Label, Series};
    use std::path::PathBuf;

    fn set(values: Vec<f32>, dims: usize) -> SeriesSet {
        let len = values.len() / dims;
        SeriesSet {
            path: PathBuf::from("t.ts"),
            name: None,
            dims,
            target: Target::SequenceClass,
            classes: vec!["a".into()],
            series: vec![Series { values, len, label: Label::Class(0), line: 1 }],
        }
    }

    #[test]
    fn inputs_are_normalised_flagged_patched_and_windowed() {
        // Channel 0: 1, 3 and a missing value (mean 2, deviation 1); channel 1: 10, 30, 20 (mean 20, deviation 8.16).
        let train = set(vec![1.0, 10.0, 3.0, 30.0, f32::NAN, 20.0], 2);
        let spec = DataSpec::fit(&train, &[0]).unwrap();
        assert_eq!((spec.mean.clone(), spec.std[0]), (vec![2.0, 20.0], 1.0));
        assert!((spec.std[1] - (200.0f32 / 3.0).sqrt()).abs() < 1e-5, "{}", spec.std[1]);
        let c = SequenceConfig { dims: 2, missing_indicators: true, outputs: 1, patch: 2, ..SequenceConfig::default() };
        let e = &encode(&train, &spec, &c).unwrap()[0];
        // Two patches of two vectors, each vector [x0, x1, missing0, missing1]; the last patch half empty.
        assert_eq!((e.tokens, e.rows.len()), (2, 16));
        assert_eq!(&e.rows[0..4], &[-1.0, -10.0 / spec.std[1], 0.0, 0.0]);
        assert_eq!(&e.rows[8..12], &[0.0, 0.0, 1.0, 0.0], "missing: the mean (0) and its flag");
        assert_eq!(&e.rows[12..16], &[0.0; 4], "padding inside the last patch");
        // A stem of width 3: each slot holds the vector before, itself and the one after.
        let c = SequenceConfig { dims: 2, outputs: 1, stem: 4, stem_kernel: 3, ..SequenceConfig::default() };
        let plain = set(vec![2.0, 20.0, 3.0, 20.0, 4.0, 20.0], 2);
        let e = &encode(&plain, &spec, &c).unwrap()[0];
        assert_eq!((c.slot_width(), c.encoder_input_width()), (6, 4));
        assert_eq!(&e.rows[0..6], &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0], "before the start: zeros");
        assert_eq!(&e.rows[6..12], &[0.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
        assert_eq!(&e.rows[12..18], &[1.0, 0.0, 2.0, 0.0, 0.0, 0.0], "after the end: zeros");
    }
}
