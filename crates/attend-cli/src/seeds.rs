//! Multi-seed runs (`--seeds N`), the same for every `attend train` that
//! has them: one model per seed in `OUT/seed-S`, the settings in
//! `OUT/seeds.json` so that `--resume OUT` can finish every seed and the
//! report, and the mean and spread of their scores.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

const PLAN: &str = "seeds.json";

/// The saved settings of the multi-seed run in `dir`, if it is one.
pub fn read_plan<T: DeserializeOwned>(dir: &Path) -> Result<Option<T>> {
    let path = dir.join(PLAN);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?))
}

/// Saves a multi-seed run's settings in `out` (created if needed).
pub fn write_plan<T: Serialize>(out: &Path, plan: &T) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(PLAN);
    std::fs::write(&path, serde_json::to_string_pretty(plan)?).with_context(|| format!("writing {}", path.display()))
}

/// Where seed `seed` of a run of `seeds` in `out` goes, and the prefix of its messages.
pub fn seed_dir(out: &Path, seeds: usize, seed: u64) -> (PathBuf, String) {
    if seeds == 1 {
        (out.to_path_buf(), String::new())
    } else {
        (out.join(format!("seed-{seed}")), format!("seed {seed} "))
    }
}

/// `why` a run in `dir` was interrupted, with the command that finishes
/// every seed when `dir` is one seed of a multi-seed run.
pub fn interrupted(why: String, dir: &Path) -> String {
    match dir.parent().filter(|p| p.join(PLAN).exists()) {
        Some(out) => format!("{why} (or --resume {} to finish every seed and the report)", out.display()),
        None => why,
    }
}

/// Mean and sample standard deviation (0 and 0 for no values).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}
