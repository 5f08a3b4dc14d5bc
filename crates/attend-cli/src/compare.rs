//! Measured comparisons between encoders (self-attention, windowed
//! attention, the BiLSTM baseline): tagging latency by sequence length,
//! throughput on a batch, accuracy by distance on the long-range task, and
//! the latency plot.

use crate::timing::{quantile, sample_ms};
use attend::data::conllu::Sentence;
use attend::data::synthetic::nearest_repeat;
use attend::data::vocab::TaggerVocab;
use attend::models::Tagger;
use attend::{Error, Result};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Median of `f`'s wall time in milliseconds over at least `min_runs` runs
/// and at least `min_seconds`.
pub fn median_ms(min_runs: usize, min_seconds: f64, f: impl FnMut() -> Result<()>) -> Result<f64> {
    Ok(quantile(&sample_ms(min_runs, min_seconds, f)?, 0.5))
}

/// Median time to tag one sequence of `words`.
pub fn latency_ms(model: &Tagger, vocab: &TaggerVocab, words: &[String], min_runs: usize, min_seconds: f64) -> Result<f64> {
    let sentence = [Sentence::from_words(words)];
    model.predict(&sentence, vocab, usize::MAX)?; // warm-up: first-touch allocations, thread pool
    median_ms(min_runs, min_seconds, || Ok(model.predict(&sentence, vocab, usize::MAX).map(|_| ())?))
}

/// Tokens per second tagging `sentences` in batches of `batch_tokens`
/// (median of at least 3 passes).
pub fn throughput(model: &Tagger, vocab: &TaggerVocab, sentences: &[Sentence], batch_tokens: usize, min_seconds: f64) -> Result<f64> {
    let tokens: usize = sentences.iter().map(Sentence::word_count).sum();
    let ms = median_ms(3, min_seconds, || Ok(model.predict(sentences, vocab, batch_tokens).map(|_| ())?))?;
    Ok(tokens as f64 / (ms / 1e3))
}

/// Accuracy of one distance bucket of the long-range task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DistanceRow {
    /// `"1-4"`, `"65+"`, or `"once"` for symbols with no repeat.
    pub bucket: String,
    pub tokens: usize,
    pub correct: usize,
}

impl DistanceRow {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.tokens.max(1) as f64
    }
}

/// Tags `test` (the [`attend::data::synthetic::repeat_task`]) and scores
/// each position by the distance to its symbol's nearest repeat, in buckets
/// ending at `edges` (e.g. `[4, 16, 64]` gives 1-4, 5-16, 17-64, 65+).
pub fn accuracy_by_distance(model: &Tagger, vocab: &TaggerVocab, test: &[Sentence], edges: &[usize]) -> Result<Vec<DistanceRow>> {
    let predicted = model.predict(test, vocab, attend::models::EVAL_BATCH_TOKENS)?;
    let mut rows: Vec<DistanceRow> = (0..=edges.len())
        .map(|k| {
            let lo = if k == 0 { 1 } else { edges[k - 1] + 1 };
            let bucket = if k == edges.len() { format!("{lo}+") } else { format!("{lo}-{}", edges[k]) };
            DistanceRow { bucket, tokens: 0, correct: 0 }
        })
        .collect();
    rows.push(DistanceRow { bucket: "once".into(), tokens: 0, correct: 0 });
    for (sentence, tags) in test.iter().zip(&predicted) {
        let forms: Vec<&str> = sentence.words().map(|t| t.form.as_str()).collect();
        for ((token, d), &tag) in sentence.words().zip(nearest_repeat(&forms)).zip(tags) {
            let k = match d {
                Some(d) => edges.iter().position(|&e| d <= e).unwrap_or(edges.len()),
                None => edges.len() + 1,
            };
            rows[k].tokens += 1;
            rows[k].correct += usize::from(vocab.tags.name(tag) == token.upos);
        }
    }
    Ok(rows)
}

/// Draws latency (ms, log scale) against sequence length (log scale), one
/// line per series.
pub fn latency_plot(path: &Path, title: &str, series: &[(String, Vec<(usize, f64)>)]) -> Result<()> {
    crate::viz::ensure_font()?;
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x as f64);
        x1 = x1.max(x as f64);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err(Error::Input("nothing to plot".into()));
    }
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 / 1.3..x1 * 1.3).log_scale(), (y0 / 1.5..y1 * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("sequence length (tokens)")
            .y_desc("latency to tag one sequence (ms)")
            .x_label_formatter(&|x| format!("{}", x.round() as u64))
            .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.2}") })
            .draw()?;
        let colours = [RGBColor(8, 48, 107), RGBColor(66, 146, 198), RGBColor(217, 72, 1), RGBColor(90, 90, 90)];
        for (k, (name, pts)) in series.iter().enumerate() {
            let colour = colours[k % colours.len()];
            let line: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x as f64, y)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_plot_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        let series = vec![("a".to_string(), vec![(16, 0.5), (1024, 20.0)]), ("b".to_string(), vec![(16, 1.0), (1024, 5.0)])];
        latency_plot(&path, "test", &series).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
        assert!(latency_plot(&path, "empty", &[]).is_err());
    }
}
