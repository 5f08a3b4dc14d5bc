//! A small synthetic treebank for tests, examples and smoke runs.
//!
//! Sentences follow `DET (ADJ) NOUN VERB (DET NOUN | PRON) (ADP DET NOUN) PUNCT`.
//! Two things make it a real tagging problem rather than a lookup:
//! - ambiguous words ("run", "watch", "light") are NOUN after a determiner or
//!   adjective and VERB after a noun, so the tag depends on context;
//! - nouns, adjectives and verbs are invented from random stems with telling
//!   suffixes (-ness/-tion, -ous/-ful, -ed/-izes), so held-out sentences
//!   hold words never seen in training, taggable only from their spelling.
//!
//! XPOS and FEATS follow from the UPOS and the word (a verb in -ed is past
//! tense, VBD; in -izes/-ates or an ambiguous one present, VBZ; "the" is
//! definite, the other determiners not), so a model can learn all three.

use crate::data::conllu::Sentence;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DET: &[&str] = &["the", "a", "this", "every", "that"];
const ADP: &[&str] = &["in", "on", "with", "under", "near"];
const PRON: &[&str] = &["it", "them", "her", "him"];
const AMBIGUOUS: &[&str] = &["run", "watch", "light", "plant", "cook"];
const CONSONANTS: &[char] = &['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z'];
const VOWELS: &[char] = &['a', 'e', 'i', 'o', 'u'];

fn stem(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.random_range(1..=2) {
        s.push(*CONSONANTS.choose(rng).expect("nonempty"));
        s.push(*VOWELS.choose(rng).expect("nonempty"));
    }
    s.push(*CONSONANTS.choose(rng).expect("nonempty"));
    s
}

fn invented(rng: &mut ChaCha8Rng, tag: &str) -> String {
    let suffixes: &[&str] = match tag {
        "NOUN" => &["ness", "tion", "ment"],
        "ADJ" => &["ous", "ful", "ive"],
        _ => &["ed", "izes", "ates"],
    };
    format!("{}{}", stem(rng), suffixes.choose(rng).expect("nonempty"))
}

/// `count` sentences drawn from `seed`. Different seeds share the closed-class
/// words and the ambiguous ones but mostly invent different open-class words.
pub fn toy_treebank(count: usize, seed: u64) -> Vec<Sentence> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A small fixed lexicon (shared by all seeds) plus fresh inventions.
    let mut lex_rng = ChaCha8Rng::seed_from_u64(0x1e8_1c0);
    let lexicon: Vec<(String, &str)> =
        ["NOUN", "ADJ", "VERB"].iter().flat_map(|&t| (0..12).map(|_| (invented(&mut lex_rng, t), t)).collect::<Vec<_>>()).collect();
    let open = |rng: &mut ChaCha8Rng, tag: &'static str| -> (String, &'static str) {
        if rng.random_bool(0.7) {
            let choices: Vec<&(String, &str)> = lexicon.iter().filter(|(_, t)| *t == tag).collect();
            (choices.choose(rng).expect("nonempty").0.clone(), tag)
        } else {
            (invented(rng, tag), tag)
        }
    };
    let pick = |rng: &mut ChaCha8Rng, words: &[&str], tag: &'static str| (words.choose(rng).expect("nonempty").to_string(), tag);
    (0..count)
        .map(|_| {
            let mut words: Vec<(String, &str)> = Vec::new();
            let noun_phrase = |rng: &mut ChaCha8Rng, words: &mut Vec<(String, &str)>| {
                words.push(pick(rng, DET, "DET"));
                if rng.random_bool(0.5) {
                    words.push(open(rng, "ADJ"));
                }
                words.push(if rng.random_bool(0.3) { pick(rng, AMBIGUOUS, "NOUN") } else { open(rng, "NOUN") });
            };
            noun_phrase(&mut rng, &mut words);
            words.push(if rng.random_bool(0.3) { pick(&mut rng, AMBIGUOUS, "VERB") } else { open(&mut rng, "VERB") });
            if rng.random_bool(0.5) {
                noun_phrase(&mut rng, &mut words);
            } else {
                words.push(pick(&mut rng, PRON, "PRON"));
            }
            if rng.random_bool(0.4) {
                words.push(pick(&mut rng, ADP, "ADP"));
                noun_phrase(&mut rng, &mut words);
            }
            words.push((".".into(), "PUNCT"));
            let forms: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
            let mut s = Sentence::from_words(&forms);
            for (t, (_, tag)) in s.words_mut().zip(&words) {
                t.upos = tag.to_string();
                let (xpos, feats) = toy_xpos_feats(tag, &t.form);
                t.xpos = xpos.into();
                t.feats = feats.into();
            }
            s
        })
        .collect()
}

/// The toy treebank's XPOS and FEATS of a word with UPOS `tag`.
fn toy_xpos_feats(tag: &str, form: &str) -> (&'static str, &'static str) {
    match tag {
        "DET" if form == "the" => ("DT", "Definite=Def|PronType=Art"),
        "DET" => ("DT", "PronType=Dem"),
        "NOUN" => ("NN", "Number=Sing"),
        "ADJ" => ("JJ", "Degree=Pos"),
        "VERB" if form.ends_with("ed") => ("VBD", "Tense=Past|VerbForm=Fin"),
        "VERB" => ("VBZ", "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"),
        "PRON" => ("PRP", "Case=Acc|PronType=Prs"),
        "ADP" => ("IN", "_"),
        _ => (".", "_"),
    }
}

/// Writes a toy treebank directory (`toy-ud-{train,dev,test}.conllu`).
pub fn write_toy_treebank(dir: &std::path::Path, train: usize, dev: usize, test: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (split, n, seed) in [("train", train, 1), ("dev", dev, 2), ("test", test, 3)] {
        let text = crate::data::conllu::to_string(&toy_treebank(n, seed));
        std::fs::write(dir.join(format!("toy-ud-{split}.conllu")), text)?;
    }
    Ok(())
}

/// [`toy_treebank`] as a treebank of raw text holds it: the final period
/// glued to the last word (`SpaceAfter=No`), three sentences a paragraph
/// (`# newpar`), and a `# text` on each sentence.
pub fn toy_raw_treebank(count: usize, seed: u64) -> Vec<Sentence> {
    let mut sentences = toy_treebank(count, seed);
    for (i, s) in sentences.iter_mut().enumerate() {
        let words = s.word_count();
        s.tokens[words - 2].misc = "SpaceAfter=No".into();
        if i % 3 == 0 {
            s.comments.push(" newpar".into());
        }
        let text = crate::data::raw_text::sentence_text(s);
        s.comments.push(format!(" text = {text}"));
    }
    sentences
}

/// Tag of a position whose symbol appears elsewhere in its sequence.
pub const REPEATED: &str = "REP";
/// Tag of a position whose symbol appears nowhere else.
pub const ONCE: &str = "ONCE";

/// The long-range task: `count` sequences of `len` symbols (`s0`, `s1`, ...
/// drawn uniformly from `symbols`), each position tagged [`REPEATED`] when
/// its symbol occurs anywhere else in the sequence, else [`ONCE`]. Getting
/// it right needs to compare a position with every other, at any distance.
pub fn repeat_task(count: usize, len: usize, symbols: usize, seed: u64) -> Vec<Sentence> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let seq: Vec<usize> = (0..len).map(|_| rng.random_range(0..symbols.max(1))).collect();
            let forms: Vec<String> = seq.iter().map(|s| format!("s{s}")).collect();
            let mut sentence = Sentence::from_words(&forms);
            for (t, d) in sentence.words_mut().zip(nearest_repeat(&forms)) {
                t.upos = if d.is_some() { REPEATED } else { ONCE }.to_string();
            }
            sentence
        })
        .collect()
}

/// For each position, the distance to the nearest other position holding
/// the same form (`None`: the form occurs once).
pub fn nearest_repeat<S: AsRef<str>>(forms: &[S]) -> Vec<Option<usize>> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut best = vec![None::<usize>; forms.len()];
    for (i, f) in forms.iter().enumerate() {
        if let Some(&j) = last.get(f.as_ref()) {
            let d = i - j;
            best[i] = Some(best[i].map_or(d, |b: usize| b.min(d)));
            best[j] = Some(best[j].map_or(d, |b: usize| b.min(d)));
        }
        last.insert(f.as_ref(), i);
    }
    best
}

/// Vector sequences whose label per vector needs context from far away:
/// each sequence of `len` 3-wide vectors `[key, value, marker]` has one
/// marked vector (marker 1, anywhere) whose `key` is +1 or -1; every
/// vector's label is `same` when the sign of its own `value` equals the
/// key's, else `flip`. Without attending to the marked vector a model can
/// only guess (50%).
pub fn series_far_context(count: usize, len: usize, seed: u64) -> crate::data::series::SeriesSet {
    use crate::data::series::{Label, Series, SeriesSet, Target};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let series = (0..count)
        .map(|i| {
            let marked = rng.random_range(0..len);
            let key: f32 = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let mut values = Vec::with_capacity(len * 3);
            let mut labels = Vec::with_capacity(len);
            for t in 0..len {
                let value: f32 = rng.random_range(0.2..1.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let is_marked = t == marked;
                values.extend([if is_marked { key } else { rng.random_range(-1.0..1.0) }, value, f32::from(u8::from(is_marked))]);
                labels.push(u32::from(value.signum() != key));
            }
            Series { values, len, label: Label::PerVector(labels), line: i + 1 }
        })
        .collect();
    SeriesSet {
        path: "far-context.txt".into(),
        name: None,
        dims: 3,
        target: Target::VectorClass,
        classes: vec!["same".into(), "flip".into()],
        series,
    }
}

/// Vector sequences of 5..=`max_len` (odd) lengths whose one class needs
/// the whole sequence: `up` when most vectors' first value is positive,
/// `down` otherwise (values +-1 with noise in a second channel); some
/// values are missing (NaN) when `missing`.
pub fn series_majority(count: usize, max_len: usize, missing: bool, seed: u64) -> crate::data::series::SeriesSet {
    use crate::data::series::{Label, Series, SeriesSet, Target};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let series = (0..count)
        .map(|i| {
            let len = 2 * rng.random_range(2..=max_len.max(5) / 2) + 1;
            let mut values = Vec::with_capacity(len * 2);
            let mut up = 0;
            for _ in 0..len {
                let positive = rng.random_bool(0.5);
                up += usize::from(positive);
                values.extend([if positive { 1.0 } else { -1.0 }, rng.random_range(-1.0..1.0)]);
            }
            if missing {
                // The noise channel only: the label stays computable.
                values[1] = f32::NAN;
            }
            Series { values, len, label: Label::Class(u32::from(2 * up < len)), line: i + 1 }
        })
        .collect();
    SeriesSet {
        path: "majority.ts".into(),
        name: None,
        dims: 2,
        target: Target::SequenceClass,
        classes: vec!["up".into(), "down".into()],
        series,
    }
}

/// Univariate series of `len` steps where only the shape of one pattern
/// tells the class: a tooth of 24 steps that rises slowly and drops at
/// once (`slow-rise`) or rises at once and falls slowly (`slow-fall`, the
/// same tooth backwards), at a random place, with a random amplitude
/// (1 to 4), on a random level (-5 to 5), with noise (+-0.3). Position,
/// amplitude, level, mean and energy carry nothing about the class.
pub fn series_shape(count: usize, len: usize, seed: u64) -> crate::data::series::SeriesSet {
    use crate::data::series::{Label, Series, SeriesSet, Target};
    const TOOTH: usize = 24;
    let len = len.max(TOOTH + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let series = (0..count)
        .map(|i| {
            let slow_fall = rng.random_bool(0.5);
            let (amplitude, level, at) = (rng.random_range(1.0..4.0f32), rng.random_range(-5.0..5.0f32), rng.random_range(0..=len - TOOTH));
            let values = (0..len)
                .map(|t| {
                    let tooth = if (at..at + TOOTH).contains(&t) {
                        let k = (t - at) as f32 / (TOOTH - 1) as f32;
                        amplitude * if slow_fall { 1.0 - k } else { k }
                    } else {
                        0.0
                    };
                    level + tooth + rng.random_range(-0.3..0.3f32)
                })
                .collect();
            Series { values, len, label: Label::Class(u32::from(slow_fall)), line: i + 1 }
        })
        .collect();
    SeriesSet {
        path: "shape.ts".into(),
        name: None,
        dims: 1,
        target: Target::SequenceClass,
        classes: vec!["slow-rise".into(), "slow-fall".into()],
        series,
    }
}

#[cfg(test)]
mod repeat_tests {
    use super::*;

    #[test]
    fn nearest_repeat_finds_the_closest_other_occurrence() {
        assert_eq!(nearest_repeat(&["a", "b", "a", "c", "a", "b"]), vec![Some(2), Some(4), Some(2), None, Some(2), Some(4)]);
    }

    #[test]
    fn repeat_task_tags_match_the_definition() {
        for s in repeat_task(20, 30, 40, 1) {
            let forms: Vec<&str> = s.words().map(|t| t.form.as_str()).collect();
            for (i, t) in s.words().enumerate() {
                let elsewhere = forms.iter().enumerate().any(|(j, f)| j != i && *f == forms[i]);
                assert_eq!(t.upos == REPEATED, elsewhere);
            }
        }
    }
}
