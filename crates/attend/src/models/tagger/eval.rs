//! Scoring a tagger: UPOS accuracy overall, on words unseen in training,
//! and per tag.

use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts for one tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagStats {
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

/// UPOS accuracy, overall, on words unseen in training, and per tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub tokens: usize,
    pub correct: usize,
    pub unknown_tokens: usize,
    pub unknown_correct: usize,
    pub per_tag: BTreeMap<String, TagStats>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl EvalReport {
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.tokens)
    }
    pub fn unknown_accuracy(&self) -> f64 {
        ratio(self.unknown_correct, self.unknown_tokens)
    }
    /// A JSON object with the counts and the derived accuracies.
    pub fn to_json(&self) -> serde_json::Value {
        let per_tag: serde_json::Map<String, serde_json::Value> = self
            .per_tag
            .iter()
            .map(|(tag, s)| {
                let (p, r) = (ratio(s.correct, s.predicted), ratio(s.correct, s.gold));
                let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
                (tag.clone(), serde_json::json!({"gold": s.gold, "predicted": s.predicted, "correct": s.correct, "precision": p, "recall": r, "f1": f1}))
            })
            .collect();
        serde_json::json!({
            "tokens": self.tokens, "correct": self.correct, "accuracy": self.accuracy(),
            "unknown_tokens": self.unknown_tokens, "unknown_correct": self.unknown_correct,
            "unknown_accuracy": self.unknown_accuracy(), "per_tag": per_tag,
        })
    }
}

/// Checks that every gold UPOS in `gold` (read from `path`) is a tag the
/// model knows: an unseen tag can never be predicted, and usually means the
/// wrong column or an untagged file.
pub fn check_gold_tags(gold: &[Sentence], vocab: &TaggerVocab, path: &std::path::Path) -> crate::Result<()> {
    for s in gold {
        for (i, t) in s.tokens.iter().enumerate() {
            if !matches!(t.id, crate::data::conllu::TokenId::Word(_)) || vocab.tags.get(&t.upos).is_some() {
                continue;
            }
            let line = s.line + s.comments.len() + i;
            let message = if t.upos == "_" {
                "no gold UPOS (\"_\") for this word: eval needs a tagged file (attend tag tags untagged text)".to_string()
            } else {
                let known: Vec<&str> = (0..vocab.tags.len() as u32).map(|i| vocab.tags.name(i)).filter(|n| !n.starts_with('<')).collect();
                format!("gold UPOS {:?} never occurred in the model's training data (it knows {})", t.upos, known.join(" "))
            };
            return Err(crate::Error::Parse { path: path.to_path_buf(), line, message });
        }
    }
    Ok(())
}

/// Compares predicted tags with the gold UPOS of `gold`. Gold tags the model
/// has never seen count as errors (it cannot predict them).
pub fn score(gold: &[Sentence], predicted: &[Vec<u32>], vocab: &TaggerVocab) -> EvalReport {
    let mut r = EvalReport::default();
    for (s, tags) in gold.iter().zip(predicted) {
        for (t, &p) in s.words().zip(tags) {
            let p = vocab.tags.name(p);
            let ok = t.upos == p;
            r.tokens += 1;
            r.correct += ok as usize;
            if vocab.is_unknown(&t.form) {
                r.unknown_tokens += 1;
                r.unknown_correct += ok as usize;
            }
            r.per_tag.entry(t.upos.clone()).or_default().gold += 1;
            r.per_tag.entry(p.to_string()).or_default().predicted += 1;
            if ok {
                r.per_tag.get_mut(p).expect("inserted above").correct += 1;
            }
        }
    }
    r
}
