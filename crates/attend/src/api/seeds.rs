//! Multi-seed runs, the same for every kind that has them: one model per
//! seed in `OUT/seed-S`, the settings in `OUT/seeds.json` so that a resumed
//! run can finish every seed and the report, and the mean and spread of
//! their scores.

use crate::error::{Error, Result};
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
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Parse { path, line: e.line(), message: e.to_string() })
}

/// Saves a multi-seed run's settings in `out` (created if needed).
pub fn write_plan<T: Serialize>(out: &Path, plan: &T) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_json(&out.join(PLAN), plan)
}

/// Writes `value` as pretty JSON to `path` (a run's report).
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Where seed `seed` of a run of `seeds` in `out` goes, and the prefix of its messages.
pub fn seed_dir(out: &Path, seeds: usize, seed: u64) -> (PathBuf, String) {
    if seeds == 1 {
        (out.to_path_buf(), String::new())
    } else {
        (out.join(format!("seed-{seed}")), format!("seed {seed} "))
    }
}

/// Whether seed directory `dir` holds a saved state to continue from.
pub fn has_saved_state(dir: &Path) -> bool {
    dir.join("resume/state.json").exists()
}

/// `why` a run in `dir` was interrupted, naming the directory that finishes
/// every seed when `dir` is one seed of a multi-seed run.
pub fn interrupted(why: String, dir: &Path) -> String {
    match dir.parent().filter(|p| p.join(PLAN).exists()) {
        Some(out) => format!("{why} (or `resume` {} to finish every seed and the report)", out.display()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_spread() {
        assert_eq!(mean_std(&[]), (0.0, 0.0));
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn plans_round_trip_and_name_the_run_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_plan::<Vec<u32>>(dir.path()).unwrap(), None);
        write_plan(dir.path(), &vec![1u32, 2]).unwrap();
        assert_eq!(read_plan::<Vec<u32>>(dir.path()).unwrap(), Some(vec![1, 2]));
        let (seed, prefix) = seed_dir(dir.path(), 3, 43);
        assert_eq!((seed.file_name().unwrap().to_str().unwrap(), prefix.as_str()), ("seed-43", "seed 43 "));
        assert!(interrupted("stopped".into(), &seed).contains(&format!("`resume` {}", dir.path().display())));
        assert_eq!(seed_dir(dir.path(), 1, 43).0, dir.path());
    }
}
