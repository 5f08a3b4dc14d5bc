//! Scoring a tagger: UPOS accuracy overall, on words unseen in training,
//! and per tag; and, for the columns the model predicts, XPOS, UFeats and
//! AllTags as the CoNLL 2018 shared task defines them (with gold tokens,
//! their F1 is this accuracy).

use crate::data::conllu::Sentence;
use crate::data::ud_eval::universal_feats;
use crate::data::vocab::{Column, TaggerVocab};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts for one tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagStats {
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

/// Accuracy of a tagger against gold labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub tokens: usize,
    /// Words with the right UPOS.
    pub correct: usize,
    pub unknown_tokens: usize,
    pub unknown_correct: usize,
    pub per_tag: BTreeMap<String, TagStats>,
    /// Words with the right XPOS, when the model predicts XPOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xpos_correct: Option<usize>,
    /// Words with the right universal features (UFeats), when the model predicts FEATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ufeats_correct: Option<usize>,
    /// Words with UPOS, XPOS and UFeats all right (AllTags), when the model predicts all three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_tags_correct: Option<usize>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl EvalReport {
    /// UPOS accuracy.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.tokens)
    }
    pub fn unknown_accuracy(&self) -> f64 {
        ratio(self.unknown_correct, self.unknown_tokens)
    }

    /// Accuracy per CoNLL 2018 metric the model was scored on: `UPOS`, and
    /// `XPOS`, `UFeats`, `AllTags` when it predicts them.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![("UPOS", self.accuracy())];
        for (name, correct) in [("XPOS", self.xpos_correct), ("UFeats", self.ufeats_correct), ("AllTags", self.all_tags_correct)] {
            if let Some(c) = correct {
                out.push((name, ratio(c, self.tokens)));
            }
        }
        out
    }

    /// What model selection maximises: the mean accuracy of the predicted
    /// columns (UPOS, XPOS, UFeats; AllTags is left out as it repeats them).
    /// For a UPOS-only model this is the UPOS accuracy.
    pub fn selection_score(&self) -> f64 {
        let columns: Vec<f64> = self.metrics().into_iter().filter(|(name, _)| *name != "AllTags").map(|(_, a)| a).collect();
        columns.iter().sum::<f64>() / columns.len() as f64
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
        let mut j = serde_json::json!({
            "tokens": self.tokens, "correct": self.correct, "accuracy": self.accuracy(),
            "unknown_tokens": self.unknown_tokens, "unknown_correct": self.unknown_correct,
            "unknown_accuracy": self.unknown_accuracy(), "per_tag": per_tag,
        });
        j["metrics"] =
            self.metrics().into_iter().map(|(name, a)| (name.to_string(), serde_json::json!(a))).collect::<serde_json::Map<_, _>>().into();
        j
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

/// Compares the labels of `tagged` (the same words as `gold`, labelled by a
/// model that predicts `columns`) with `gold`. Gold labels the model has
/// never seen count as errors (it cannot predict them).
pub fn score(gold: &[Sentence], tagged: &[Sentence], vocab: &TaggerVocab, columns: &[Column]) -> EvalReport {
    let mut r = EvalReport::default();
    let xpos = columns.contains(&Column::Xpos);
    let feats = columns.contains(&Column::Feats);
    r.xpos_correct = xpos.then_some(0);
    r.ufeats_correct = feats.then_some(0);
    r.all_tags_correct = (xpos && feats).then_some(0);
    for (s, system) in gold.iter().zip(tagged) {
        for (t, sys) in s.words().zip(system.words()) {
            let p = sys.upos.as_str();
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
            // compared only for the columns the model predicts (a count is kept only then)
            let xpos_ok = xpos && t.xpos == sys.xpos;
            let feats_ok = feats && universal_feats(&t.feats) == universal_feats(&sys.feats);
            for (count, right) in
                [(&mut r.xpos_correct, xpos_ok), (&mut r.ufeats_correct, feats_ok), (&mut r.all_tags_correct, ok && xpos_ok && feats_ok)]
            {
                if let Some(c) = count {
                    *c += right as usize;
                }
            }
        }
    }
    r
}
