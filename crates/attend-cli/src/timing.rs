//! Wall-clock sampling for benchmarks and comparisons: one way to time
//! things, so every ratio in a report is measured alike.

use std::time::Instant;

/// Fewest timed runs behind a median: one slow run on a shared machine must
/// not become the reported number.
pub const MIN_SAMPLES: usize = 3;

/// Wall times of `f` in seconds, sorted: at least `min_runs` (and
/// [`MIN_SAMPLES`]) runs, repeated until `min_seconds` have passed, at most
/// 200 unless `min_runs` asks for more. A first run shorter than a quarter
/// of the budget is a discarded warm-up (first-touch allocations, thread
/// pool start); a longer one is the first sample.
pub fn sample_seconds<E>(min_runs: usize, min_seconds: f64, mut f: impl FnMut() -> Result<(), E>) -> Result<Vec<f64>, E> {
    let min_runs = min_runs.max(MIN_SAMPLES);
    let cap = min_runs.max(200);
    let start = Instant::now();
    f()?;
    let first = start.elapsed().as_secs_f64();
    let (mut times, mut total) = if first * 4.0 >= min_seconds { (vec![first], first) } else { (Vec::new(), 0.0) };
    while (total < min_seconds || times.len() < min_runs) && times.len() < cap {
        let t = Instant::now();
        f()?;
        let s = t.elapsed().as_secs_f64();
        total += s;
        times.push(s);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// [`sample_seconds`] in milliseconds.
pub fn sample_ms<E>(min_runs: usize, min_seconds: f64, f: impl FnMut() -> Result<(), E>) -> Result<Vec<f64>, E> {
    Ok(sample_seconds(min_runs, min_seconds, f)?.into_iter().map(|s| s * 1e3).collect())
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Median seconds of an infallible `f` (see [`sample_seconds`]) and the number of runs.
pub fn median_seconds(min_seconds: f64, mut f: impl FnMut()) -> (f64, usize) {
    let times = sample_seconds::<std::convert::Infallible>(MIN_SAMPLES, min_seconds, || {
        f();
        Ok(())
    })
    .unwrap_or_else(|e| match e {});
    (quantile(&times, 0.5), times.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_sorted_and_respect_the_minimum_count_and_errors_stop_sampling() {
        let mut calls = 0;
        // A no-op never fills a second: the run count caps at 200, after a discarded warm-up.
        let t = sample_seconds::<()>(5, 1.0, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert!(t.len() == 200 && t.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(calls, 201, "one warm-up run, discarded");
        // Without a time budget the first run counts and the minimum decides.
        assert_eq!(sample_seconds::<()>(5, 0.0, || Ok(())).unwrap().len(), 5);
        let mut n = 0;
        let err = sample_seconds(5, 0.0, || {
            n += 1;
            if n == 3 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!(err, Err("boom"));
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
