//! Scores of a sequence model: accuracy, macro-F1 and per-class precision,
//! recall and F1 for classes (per sequence or per vector); RMSE and MAE for
//! numbers.

use super::input::{DataSpec, Encoded, UNSEEN};
use crate::data::series::Target;
use attend_kernels::loss::IGNORE;
use serde::{Deserialize, Serialize};

/// What the model says about one sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A class id per vector, or one for the sequence.
    Classes(Vec<u32>),
    /// Regression: the number, in the data's units.
    Value(f32),
}

/// One class's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

impl ClassScore {
    pub fn precision(&self) -> f64 {
        self.correct as f64 / self.predicted.max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.correct as f64 / self.gold.max(1) as f64
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
}

/// How a model did on labelled sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    pub target: Target,
    /// Scored units: sequences, or labelled vectors.
    pub count: usize,
    pub correct: usize,
    /// Gold classes the model never saw in training (scored as wrong).
    pub unseen: usize,
    pub per_class: Vec<ClassScore>,
    /// Regression, in the data's units.
    pub rmse: f64,
    pub mae: f64,
}

impl SeriesReport {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }

    /// The mean F1 over the classes present in the gold labels or the predictions.
    pub fn macro_f1(&self) -> f64 {
        let present: Vec<f64> = self.per_class.iter().filter(|c| c.gold + c.predicted > 0).map(ClassScore::f1).collect();
        present.iter().sum::<f64>() / present.len().max(1) as f64
    }

    /// What model selection maximises: accuracy, or minus the RMSE.
    pub fn selection_score(&self) -> f64 {
        if self.target == Target::SequenceValue {
            -self.rmse
        } else {
            self.accuracy()
        }
    }

    /// One line: accuracy and macro-F1, or RMSE and MAE.
    pub fn summary(&self) -> String {
        match self.target {
            Target::SequenceValue => format!("RMSE {:.4}, MAE {:.4} ({} sequences)", self.rmse, self.mae, self.count),
            Target::VectorClass => {
                format!("accuracy {:.2}%, macro-F1 {:.2}% ({} vectors)", 100.0 * self.accuracy(), 100.0 * self.macro_f1(), self.count)
            }
            _ => format!("accuracy {:.2}%, macro-F1 {:.2}% ({} sequences)", 100.0 * self.accuracy(), 100.0 * self.macro_f1(), self.count),
        }
    }

    /// The report with derived numbers, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut j = serde_json::to_value(self).expect("serialisable");
        if self.target == Target::SequenceValue {
            j.as_object_mut().expect("object").retain(|k, _| !matches!(k.as_str(), "correct" | "unseen" | "per_class"));
        } else {
            j["accuracy"] = self.accuracy().into();
            j["macro_f1"] = self.macro_f1().into();
            j.as_object_mut().expect("object").retain(|k, _| !matches!(k.as_str(), "rmse" | "mae"));
            for (c, s) in j["per_class"].as_array_mut().expect("array").iter_mut().zip(&self.per_class) {
                c["precision"] = s.precision().into();
                c["recall"] = s.recall().into();
                c["f1"] = s.f1().into();
            }
        }
        j
    }
}

/// Scores `predicted` against the gold labels in `data`.
pub fn score(data: &[Encoded], predicted: &[Output], spec: &DataSpec) -> SeriesReport {
    let mut r = SeriesReport {
        target: spec.target,
        count: 0,
        correct: 0,
        unseen: 0,
        per_class: spec.classes.iter().map(|c| ClassScore { class: c.clone(), gold: 0, predicted: 0, correct: 0 }).collect(),
        rmse: 0.0,
        mae: 0.0,
    };
    let (mut se, mut ae) = (0f64, 0f64);
    for (e, p) in data.iter().zip(predicted) {
        match p {
            Output::Value(v) => {
                let gold = (e.value * spec.target_std + spec.target_mean) as f64;
                se += (*v as f64 - gold).powi(2);
                ae += (*v as f64 - gold).abs();
                r.count += 1;
            }
            Output::Classes(classes) => {
                for (&g, &c) in e.classes.iter().zip(classes).filter(|(&g, _)| g != IGNORE) {
                    r.count += 1;
                    r.per_class[c as usize].predicted += 1;
                    if g == UNSEEN {
                        r.unseen += 1;
                        continue;
                    }
                    r.per_class[g as usize].gold += 1;
                    if g == c {
                        r.correct += 1;
                        r.per_class[g as usize].correct += 1;
                    }
                }
            }
        }
    }
    if r.target == Target::SequenceValue {
        r.rmse = (se / r.count.max(1) as f64).sqrt();
        r.mae = ae / r.count.max(1) as f64;
    }
    r
}
