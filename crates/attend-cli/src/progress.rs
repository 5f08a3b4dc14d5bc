//! What every `attend train ...` shows and how it stops: a progress bar,
//! one line per epoch (every `every` epochs for full-batch training, whose
//! epochs take milliseconds), and Ctrl-C handling.

use attend::train::{EpochSummary, Observer, StepInfo};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Progress of a training run on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// One bar for the whole run (an epoch is one step) instead of one per epoch.
    whole_run: bool,
    /// What a step counts ("tok", "nodes") and what the dev set is called ("dev", "val").
    unit: &'static str,
    dev: &'static str,
    /// Print one line every this many epochs (and for the last).
    every: usize,
    epochs: usize,
    units: usize,
    started: Instant,
    prefix: String,
    /// How a dev score is shown (a percentage by default).
    score: fn(f64) -> String,
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

impl Progress {
    pub fn new(unit: &'static str, dev: &'static str, every: usize) -> Self {
        Progress {
            bar: None,
            whole_run: false,
            unit,
            dev,
            every: every.max(1),
            epochs: 0,
            units: 0,
            started: Instant::now(),
            prefix: String::new(),
            score: percent,
        }
    }

    /// Shows dev scores with `score` (e.g. minus the RMSE as "RMSE 0.12").
    pub fn with_score(mut self, score: fn(f64) -> String) -> Self {
        self.score = score;
        self
    }

    /// Text before each line (e.g. the seed of one of several runs).
    pub fn with_prefix(mut self, prefix: String) -> Self {
        self.prefix = prefix;
        self
    }

    fn bar(&self, len: usize, template: &str) -> ProgressBar {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar
    }

    /// Leaves the bar on screen as it was (an interrupted run).
    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn run_start(&mut self, epochs: usize, batches: usize) {
        self.epochs = epochs;
        self.whole_run = batches == 1;
        if self.whole_run {
            let bar = self.bar(epochs, "{prefix}[{bar:30}] epoch {pos}/{len} {msg}");
            bar.set_prefix(self.prefix.clone());
            self.bar = Some(bar);
        }
    }

    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        if !self.whole_run {
            self.bar =
                Some(self.bar(batches, &format!("{}epoch {epoch:>3} [{{bar:30}}] {{pos}}/{{len}} {{msg}} eta {{eta}}", self.prefix)));
        }
        self.units = 0;
        self.started = Instant::now();
    }

    fn step(&mut self, info: &StepInfo) {
        self.units += info.tokens;
        if let (Some(bar), false) = (&self.bar, self.whole_run) {
            let speed = self.units as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {:.4} lr {:.2e} {:.0} {}/s", info.loss, info.lr, speed, self.unit));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, s: &EpochSummary) {
        let dev_loss = s.dev_loss.map(|l| format!(" ({} loss {l:.4})", self.dev)).unwrap_or_default();
        if self.whole_run {
            if let Some(bar) = &self.bar {
                bar.set_position(s.epoch as u64);
                bar.set_message(format!(
                    "loss {:.4}  {} {}{dev_loss}  best {}",
                    s.train_loss,
                    self.dev,
                    (self.score)(s.dev_accuracy),
                    (self.score)(s.best_dev_accuracy)
                ));
            }
        } else if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if s.epoch.is_multiple_of(self.every) || s.epoch == self.epochs {
            let line = format!(
                "{}epoch {:>3}  loss {:.4}  {} {}{dev_loss}  best {}{}  {:.0} {}/s  {:.1} min",
                self.prefix,
                s.epoch,
                s.train_loss,
                self.dev,
                (self.score)(s.dev_accuracy),
                (self.score)(s.best_dev_accuracy),
                if s.improved { " (kept)" } else { "" },
                s.train_tokens_per_sec,
                self.unit,
                s.elapsed_sec / 60.0
            );
            match &self.bar {
                // A hidden bar (stderr is not a terminal) prints nothing: write the line itself.
                Some(bar) if !bar.is_hidden() => bar.println(line),
                _ => eprintln!("{line}"),
            }
        }
    }
}

static INTERRUPT: AtomicBool = AtomicBool::new(false);
static HANDLER: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();

/// Ctrl-C finishes the current step, saves and stops (the flag returned,
/// one for the process); a second Ctrl-C exits at once.
pub fn interrupt_flag() -> anyhow::Result<&'static AtomicBool> {
    let installed = HANDLER.get_or_init(|| {
        ctrlc::set_handler(|| {
            if INTERRUPT.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without saving");
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: saving after this step (press again to exit at once)");
        })
        .map_err(|e| e.to_string())
    });
    installed.as_ref().map_err(|e| anyhow::anyhow!("installing the Ctrl-C handler: {e}"))?;
    Ok(&INTERRUPT)
}
