//! The CoNLL 2018 shared task metrics (Zeman et al. 2018), written from
//! their published definition and checked against the official script
//! (`eval.py` of UniversalDependencies/tools) on the files in our tests.
//!
//! Both files are read as one stream of characters: the FORMs of all
//! tokens, concatenated, with every space character (Unicode category Zs)
//! removed. The two streams must be equal. A token or a sentence is then a
//! span of that stream, and counts as correct when the other file has the
//! same span. Words that are tokens align by their spans; words inside
//! multiword tokens align by the longest common subsequence of their
//! lowercased FORMs within the smallest span that holds every multiword
//! token touching it. Tag and dependency metrics count aligned words whose
//! columns agree; each is reported as precision (over the system's words),
//! recall (over the gold words), F1, and accuracy over the aligned words.
//!
//! One difference from the script: a file whose HEAD column is `_`
//! throughout (a tagger that does not parse) is accepted, and the
//! dependency metrics are then left out instead of failing the whole run.

use crate::data::conllu::{Sentence, TokenId};
use crate::error::{Error, Result};
use std::path::Path;

/// Feature names the metrics count (UFeats); others are ignored.
const UNIVERSAL_FEATURES: &[&str] = &[
    "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy", "Number", "Case", "Definite", "Degree", "VerbForm",
    "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person", "Polite",
];
const CONTENT_DEPRELS: &[&str] = &[
    "nsubj",
    "obj",
    "iobj",
    "csubj",
    "ccomp",
    "xcomp",
    "obl",
    "vocative",
    "expl",
    "dislocated",
    "advcl",
    "advmod",
    "discourse",
    "nmod",
    "appos",
    "nummod",
    "acl",
    "amod",
    "conj",
    "fixed",
    "flat",
    "compound",
    "list",
    "parataxis",
    "orphan",
    "goeswith",
    "reparandum",
    "root",
    "dep",
];
const FUNCTIONAL_DEPRELS: &[&str] = &["aux", "cop", "mark", "det", "clf", "case", "cc"];

/// The metrics in the order the official script prints them.
pub const METRICS: [&str; 13] =
    ["Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats", "AllTags", "Lemmas", "UAS", "LAS", "CLAS", "MLAS", "BLEX"];

/// The features UFeats compares: the universal ones of a FEATS string,
/// sorted, joined by `|` (the official script's rule).
pub fn universal_feats(feats: &str) -> String {
    let mut kept: Vec<&str> =
        feats.split('|').filter(|f| f.split_once('=').is_some_and(|(name, _)| UNIVERSAL_FEATURES.contains(&name))).collect();
    kept.sort_unstable();
    kept.join("|")
}

/// Unicode category Zs (space separators): removed from FORMs before matching.
pub fn is_space_separator(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone)]
struct Word {
    /// The token's span (the whole multiword token for its words).
    span: Span,
    multiword: bool,
    form_lower: String,
    lemma: String,
    upos: String,
    xpos: String,
    /// Universal features only, sorted, joined by `|`.
    feats: String,
    /// The universal part of DEPREL (before any `:`).
    deprel: String,
    /// Index of the parent in the file's words; None for the root.
    parent: Option<usize>,
    functional_children: Vec<usize>,
}

impl Word {
    fn is_content(&self) -> bool {
        CONTENT_DEPRELS.contains(&self.deprel.as_str())
    }
}

/// A CoNLL-U file as the metrics see it.
#[derive(Debug, Clone)]
pub struct UdDocument {
    chars: Vec<char>,
    tokens: Vec<(Span, usize)>,
    sentences: Vec<Span>,
    words: Vec<Word>,
    /// False when HEAD is `_` throughout (no dependency metrics).
    parsed: bool,
}

impl UdDocument {
    /// Builds the metric view of parsed CoNLL-U; `path` labels errors.
    pub fn new(sentences: &[Sentence], path: &Path) -> Result<Self> {
        let err = |line: usize, m: String| Error::Parse { path: path.to_path_buf(), line, message: m };
        let mut doc = UdDocument { chars: Vec::new(), tokens: Vec::new(), sentences: Vec::new(), words: Vec::new(), parsed: true };
        let mut any_head = false;
        let mut any_blank_head = false;
        let mut heads: Vec<(usize, Option<usize>)> = Vec::new();
        for s in sentences {
            let start = doc.chars.len();
            let mut mwt_until = 0usize;
            for (k, t) in s.tokens.iter().enumerate() {
                let line = s.line + s.comments.len() + k;
                let is_word = match t.id {
                    TokenId::Empty(..) => continue,
                    TokenId::Range(_, b) => {
                        mwt_until = b;
                        false
                    }
                    TokenId::Word(_) => true,
                };
                let in_mwt = matches!(t.id, TokenId::Word(n) if n <= mwt_until);
                if !in_mwt {
                    let form: Vec<char> = t.form.chars().filter(|&c| !is_space_separator(c)).collect();
                    if form.is_empty() {
                        return Err(err(line, "a FORM made only of spaces (the metrics match tokens by their characters)".into()));
                    }
                    let span = Span { start: doc.chars.len(), end: doc.chars.len() + form.len() };
                    doc.chars.extend(form);
                    doc.tokens.push((span, line));
                }
                if !is_word {
                    continue;
                }
                let span = doc.tokens.last().expect("a token precedes its words").0;
                let head = match t.head.as_str() {
                    "_" => {
                        any_blank_head = true;
                        None
                    }
                    h => {
                        any_head = true;
                        let n: usize = h.parse().map_err(|_| err(line, format!("cannot parse HEAD {h:?}")))?;
                        let words = s.word_count();
                        if n > words {
                            return Err(err(line, format!("HEAD {n} points outside its sentence of {words} words")));
                        }
                        Some(n)
                    }
                };
                heads.push((line, head));
                doc.words.push(Word {
                    span,
                    multiword: in_mwt,
                    form_lower: t.form.chars().filter(|&c| !is_space_separator(c)).collect::<String>().to_lowercase(),
                    lemma: t.lemma.clone(),
                    upos: t.upos.clone(),
                    xpos: t.xpos.clone(),
                    feats: universal_feats(&t.feats),
                    deprel: t.deprel.split(':').next().unwrap_or("").to_string(),
                    parent: None,
                    functional_children: Vec::new(),
                });
            }
            doc.sentences.push(Span { start, end: doc.chars.len() });
        }
        if any_head && any_blank_head {
            let (line, _) = heads.iter().find(|(_, h)| h.is_none()).expect("a blank head exists");
            return Err(err(*line, "HEAD is `_` here but a number elsewhere in the file: give every word a HEAD, or none".into()));
        }
        doc.parsed = !any_blank_head;
        if doc.parsed {
            doc.link_trees(sentences, &heads, path)?;
        }
        Ok(doc)
    }

    /// Sets parents and functional children; refuses cycles and sentences
    /// without exactly one root, as the official script does.
    fn link_trees(&mut self, sentences: &[Sentence], heads: &[(usize, Option<usize>)], path: &Path) -> Result<()> {
        let mut first = 0usize;
        for s in sentences {
            let n = s.word_count();
            let end_line = s.line + s.comments.len() + s.tokens.len();
            let err = |m: String| Error::Parse { path: path.to_path_buf(), line: end_line, message: m };
            let mut roots = 0;
            for i in 0..n {
                let h = heads[first + i].1.expect("parsed");
                self.words[first + i].parent = if h == 0 { None } else { Some(first + h - 1) };
                roots += usize::from(h == 0);
            }
            for i in 0..n {
                // Walk up at most n steps: more means a cycle.
                let mut at = first + i;
                for step in 0..=n {
                    match self.words[at].parent {
                        None => break,
                        Some(p) if step < n => at = p,
                        Some(_) => return Err(err("the sentence ending here has a cycle in its HEADs".into())),
                    }
                }
            }
            if roots == 0 {
                return Err(err("the sentence ending here has no root (HEAD 0)".into()));
            }
            if roots > 1 {
                return Err(err(format!("the sentence ending here has {roots} roots (HEAD 0); the metrics need one")));
            }
            for i in first..first + n {
                if let Some(p) = self.words[i].parent {
                    if FUNCTIONAL_DEPRELS.contains(&self.words[i].deprel.as_str()) {
                        self.words[p].functional_children.push(i);
                    }
                }
            }
            first += n;
        }
        Ok(())
    }

    /// Reads and checks a CoNLL-U file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::new(&crate::data::conllu::read_file(path)?, path)
    }

    pub fn word_count(&self) -> usize {
        self.words.len()
    }
}

/// Counts behind one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Score {
    pub correct: usize,
    pub gold: usize,
    pub system: usize,
    /// Aligned words the metric was scored on (None for span metrics).
    pub aligned: Option<usize>,
}

impl Score {
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.system)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.gold)
    }
    pub fn f1(&self) -> f64 {
        ratio(2 * self.correct, self.system + self.gold)
    }
    pub fn aligned_accuracy(&self) -> Option<f64> {
        self.aligned.filter(|&a| a > 0).map(|a| ratio(self.correct, a))
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Every metric of one comparison; dependency metrics are None when either
/// file has no HEADs.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub scores: Vec<(&'static str, Option<Score>)>,
}

impl Evaluation {
    pub fn get(&self, metric: &str) -> Option<Score> {
        self.scores.iter().find(|(m, _)| *m == metric).and_then(|(_, s)| *s)
    }

    /// The table the official script prints with `-v`.
    pub fn table(&self) -> String {
        let mut out = String::from("Metric     | Precision |    Recall |  F1 Score | AligndAcc\n");
        out.push_str("-----------+-----------+-----------+-----------+-----------\n");
        for (name, score) in &self.scores {
            match score {
                Some(s) => {
                    out.push_str(&format!(
                        "{:11}|{:10.2} |{:10.2} |{:10.2} |{}\n",
                        name,
                        100.0 * s.precision(),
                        100.0 * s.recall(),
                        100.0 * s.f1(),
                        s.aligned_accuracy().map_or(String::new(), |a| format!("{:10.2}", 100.0 * a))
                    ));
                }
                None => out.push_str(&format!("{name:11}|         - |         - |         - |  (no HEADs)\n")),
            }
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, score) in &self.scores {
            let v = match score {
                Some(s) => serde_json::json!({
                    "precision": s.precision(), "recall": s.recall(), "f1": s.f1(),
                    "aligned_accuracy": s.aligned_accuracy(),
                    "correct": s.correct, "gold": s.gold, "system": s.system, "aligned": s.aligned,
                }),
                None => serde_json::Value::Null,
            };
            map.insert(name.to_string(), v);
        }
        serde_json::Value::Object(map)
    }
}

fn spans_score(gold: &[Span], system: &[Span]) -> Score {
    let (mut correct, mut gi, mut si) = (0, 0, 0);
    while gi < gold.len() && si < system.len() {
        if system[si].start < gold[gi].start {
            si += 1;
        } else if gold[gi].start < system[si].start {
            gi += 1;
        } else {
            correct += usize::from(gold[gi].end == system[si].end);
            gi += 1;
            si += 1;
        }
    }
    Score { correct, gold: gold.len(), system: system.len(), aligned: None }
}

/// Aligned (gold, system) word indices, in order.
fn align_words(gold: &[Word], system: &[Word]) -> Vec<(usize, usize)> {
    let mut aligned = Vec::new();
    let (mut gi, mut si) = (0, 0);
    while gi < gold.len() && si < system.len() {
        if gold[gi].multiword || system[si].multiword {
            let (gs, ss, ge, se) = multiword_span(gold, system, gi, si);
            gi = ge;
            si = se;
            if ge > gs && se > ss {
                align_lcs(&gold[gs..ge], &system[ss..se], gs, ss, &mut aligned);
            }
        } else if gold[gi].span == system[si].span {
            aligned.push((gi, si));
            gi += 1;
            si += 1;
        } else if gold[gi].span.start <= system[si].span.start {
            gi += 1;
        } else {
            si += 1;
        }
    }
    aligned
}

/// The smallest span from (gi, si) holding every multiword token it touches:
/// (gold start, system start, gold end, system end) as word indices.
fn multiword_span(gold: &[Word], system: &[Word], mut gi: usize, mut si: usize) -> (usize, usize, usize, usize) {
    let mut end;
    if gold[gi].multiword {
        end = gold[gi].span.end;
        if !system[si].multiword && system[si].span.start < gold[gi].span.start {
            si += 1;
        }
    } else {
        end = system[si].span.end;
        if !gold[gi].multiword && gold[gi].span.start < system[si].span.start {
            gi += 1;
        }
    }
    let (gs, ss) = (gi, si);
    let beyond = |words: &[Word], i: usize, end: usize| {
        i >= words.len() || if words[i].multiword { words[i].span.start >= end } else { words[i].span.end > end }
    };
    let extend = |w: &Word, end: usize| if w.multiword && w.span.end > end { w.span.end } else { end };
    while !beyond(gold, gi, end) || !beyond(system, si, end) {
        if gi < gold.len() && (si >= system.len() || gold[gi].span.start <= system[si].span.start) {
            end = extend(&gold[gi], end);
            gi += 1;
        } else {
            end = extend(&system[si], end);
            si += 1;
        }
    }
    (gs, ss, gi, si)
}

fn align_lcs(gold: &[Word], system: &[Word], g0: usize, s0: usize, aligned: &mut Vec<(usize, usize)>) {
    let (n, m) = (gold.len(), system.len());
    // lcs[g][s]: the LCS length of gold[g..] and system[s..]; row/column n/m are 0.
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for g in (0..n).rev() {
        for s in (0..m).rev() {
            let same = if gold[g].form_lower == system[s].form_lower { 1 + lcs[g + 1][s + 1] } else { 0 };
            lcs[g][s] = same.max(lcs[g + 1][s]).max(lcs[g][s + 1]);
        }
    }
    let (mut g, mut s) = (0, 0);
    while g < n && s < m {
        if gold[g].form_lower == system[s].form_lower {
            aligned.push((g0 + g, s0 + s));
            g += 1;
            s += 1;
        } else if lcs[g][s] == lcs[g + 1][s] {
            g += 1;
        } else {
            s += 1;
        }
    }
}

/// Where a word's parent is, seen from the gold file.
#[derive(PartialEq)]
enum Parent {
    Root,
    Gold(usize),
    NotAligned,
}

/// Scores `system` against `gold`. Fails when the two files do not hold the
/// same characters, naming the first place they differ.
pub fn evaluate(gold: &UdDocument, system: &UdDocument, gold_path: &Path, system_path: &Path) -> Result<Evaluation> {
    if gold.chars != system.chars {
        return Err(Error::Input(text_mismatch(gold, system, gold_path, system_path)));
    }
    let aligned = align_words(&gold.words, &system.words);
    let mut to_gold = vec![None; system.words.len()];
    for &(g, s) in &aligned {
        to_gold[s] = Some(g);
    }
    let gold_parent = |g: usize| gold.words[g].parent.map_or(Parent::Root, Parent::Gold);
    let system_parent = |s: usize| match system.words[s].parent {
        None => Parent::Root,
        Some(p) => to_gold[p].map_or(Parent::NotAligned, Parent::Gold),
    };
    let score = |filter: &dyn Fn(&Word) -> bool, same: &dyn Fn(usize, usize) -> bool| -> Score {
        let mut s = Score {
            correct: 0,
            gold: gold.words.iter().filter(|w| filter(w)).count(),
            system: system.words.iter().filter(|w| filter(w)).count(),
            aligned: Some(0),
        };
        for &(g, sy) in &aligned {
            if filter(&gold.words[g]) {
                *s.aligned.as_mut().expect("set") += 1;
                s.correct += usize::from(same(g, sy));
            }
        }
        s
    };
    let all = |_: &Word| true;
    let content = |w: &Word| w.is_content();
    let (gw, sw) = (&gold.words, &system.words);
    let lemma_ok = |g: usize, s: usize| gw[g].lemma == "_" || gw[g].lemma == sw[s].lemma;
    let head_ok = |g: usize, s: usize| gold_parent(g) == system_parent(s);
    let label_ok = |g: usize, s: usize| head_ok(g, s) && gw[g].deprel == sw[s].deprel;
    let tags_ok = |g: usize, s: usize| gw[g].upos == sw[s].upos && gw[g].feats == sw[s].feats;
    let children_ok = |g: usize, s: usize| {
        let (gc, sc) = (&gw[g].functional_children, &sw[s].functional_children);
        gc.len() == sc.len()
            && gc.iter().zip(sc).all(|(&a, &b)| {
                let parent_b = to_gold[b].map_or(Parent::NotAligned, Parent::Gold);
                Parent::Gold(a) == parent_b && gw[a].deprel == sw[b].deprel && tags_ok(a, b)
            })
    };
    let parsed = gold.parsed && system.parsed;
    let dep = |s: Score| if parsed { Some(s) } else { None };
    let words = Score { correct: aligned.len(), gold: gw.len(), system: sw.len(), aligned: None };
    let scores = vec![
        (
            "Tokens",
            Some(spans_score(&gold.tokens.iter().map(|t| t.0).collect::<Vec<_>>(), &system.tokens.iter().map(|t| t.0).collect::<Vec<_>>())),
        ),
        ("Sentences", Some(spans_score(&gold.sentences, &system.sentences))),
        ("Words", Some(words)),
        ("UPOS", Some(score(&all, &|g, s| gw[g].upos == sw[s].upos))),
        ("XPOS", Some(score(&all, &|g, s| gw[g].xpos == sw[s].xpos))),
        ("UFeats", Some(score(&all, &|g, s| gw[g].feats == sw[s].feats))),
        ("AllTags", Some(score(&all, &|g, s| tags_ok(g, s) && gw[g].xpos == sw[s].xpos))),
        ("Lemmas", Some(score(&all, &lemma_ok))),
        ("UAS", dep(score(&all, &head_ok))),
        ("LAS", dep(score(&all, &label_ok))),
        ("CLAS", dep(score(&content, &label_ok))),
        ("MLAS", dep(score(&content, &|g, s| label_ok(g, s) && tags_ok(g, s) && children_ok(g, s)))),
        ("BLEX", dep(score(&content, &|g, s| label_ok(g, s) && lemma_ok(g, s)))),
    ];
    Ok(Evaluation { scores })
}

fn text_mismatch(gold: &UdDocument, system: &UdDocument, gold_path: &Path, system_path: &Path) -> String {
    let at = gold.chars.iter().zip(&system.chars).take_while(|(a, b)| a == b).count();
    let around = |doc: &UdDocument, path: &Path| {
        let t = doc.tokens.iter().position(|(s, _)| s.end > at).unwrap_or(doc.tokens.len());
        let line = doc.tokens.get(t).or(doc.tokens.last()).map_or(0, |x| x.1);
        let next: String = doc.chars[at.min(doc.chars.len())..].iter().take(20).collect();
        format!("{}:{line}: next characters {next:?}", path.display())
    };
    format!(
        "the two files do not hold the same text (spaces aside); they differ after {at} characters:\n  gold   {}\n  system {}",
        around(gold, gold_path),
        around(system, system_path)
    )
}

/// Reads both files and scores them.
pub fn evaluate_files(gold: &Path, system: &Path) -> Result<Evaluation> {
    evaluate(&UdDocument::read(gold)?, &UdDocument::read(system)?, gold, system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::conllu::parse_bytes;

    /// A file in the official script's own test style: one entry per token,
    /// "form" or "mwt word word ..."; HEAD chains to the first word.
    fn doc(tokens: &[&str]) -> UdDocument {
        let mut lines = Vec::new();
        let mut n = 0;
        for t in tokens {
            let parts: Vec<&str> = t.split(' ').collect();
            let line = |form: &str, n: usize| format!("{n}\t{form}\t_\t_\t_\t_\t{}\t_\t_\t_", usize::from(n > 1));
            if parts.len() == 1 {
                n += 1;
                lines.push(line(parts[0], n));
            } else {
                lines.push(format!("{}-{}\t{}\t_\t_\t_\t_\t_\t_\t_\t_", n + 1, n + parts.len() - 1, parts[0]));
                for p in &parts[1..] {
                    n += 1;
                    lines.push(line(p, n));
                }
            }
        }
        let text = lines.join("\n") + "\n\n";
        UdDocument::new(&parse_bytes(text.as_bytes(), Path::new("t")).unwrap(), Path::new("t")).unwrap()
    }

    fn words_correct(gold: &[&str], system: &[&str]) -> usize {
        let e = evaluate(&doc(gold), &doc(system), Path::new("g"), Path::new("s")).unwrap();
        e.get("Words").unwrap().correct
    }

    /// The official script's own alignment tests (udeval.py, TestAlignment).
    #[test]
    fn alignment_matches_the_official_unit_tests() {
        assert_eq!(words_correct(&["a"], &["a"]), 1);
        assert_eq!(words_correct(&["a", "b", "c"], &["a", "b", "c"]), 3);
        assert_eq!(words_correct(&["abc a b c"], &["a", "b", "c"]), 3);
        assert_eq!(words_correct(&["a", "bc b c", "d"], &["a", "b", "c", "d"]), 4);
        assert_eq!(words_correct(&["abcd a b c d"], &["ab a b", "cd c d"]), 4);
        assert_eq!(words_correct(&["abc a b c", "de d e"], &["a", "bcd b c d", "e"]), 5);
        assert_eq!(words_correct(&["abcd"], &["a", "b", "c", "d"]), 0);
        assert_eq!(words_correct(&["abc", "d"], &["a", "b", "c", "d"]), 1);
        assert_eq!(words_correct(&["a", "bc", "d"], &["a", "b", "c", "d"]), 2);
        assert_eq!(words_correct(&["a", "bc b c", "d"], &["a", "b", "cd"]), 2);
        assert_eq!(words_correct(&["abc a BX c", "def d EX f"], &["ab a b", "cd c d", "ef e f"]), 4);
        assert_eq!(words_correct(&["ab a b", "cd bc d"], &["a", "bc", "d"]), 2);
        assert_eq!(words_correct(&["a", "bc b c", "d"], &["ab AX BX", "cd CX a"]), 1);
    }

    #[test]
    fn different_text_is_refused_with_the_place() {
        let e = evaluate(&doc(&["a"]), &doc(&["b"]), Path::new("g"), Path::new("s")).unwrap_err().to_string();
        assert!(e.contains("differ after 0 characters"), "{e}");
        assert!(e.contains("g:1"), "{e}");
    }

    #[test]
    fn bad_trees_are_refused_and_blank_heads_skip_dependency_metrics() {
        let read = |s: &str| UdDocument::new(&parse_bytes(s.as_bytes(), Path::new("t")).unwrap(), Path::new("t"));
        let w = |n: usize, h: &str| format!("{n}\tx\t_\t_\t_\t_\t{h}\tdep\t_\t_\n");
        let cycle = w(1, "2") + &w(2, "1") + "\n";
        assert!(read(&cycle).unwrap_err().to_string().contains("cycle"));
        let two_roots = w(1, "0") + &w(2, "0") + "\n";
        assert!(read(&two_roots).unwrap_err().to_string().contains("2 roots"));
        let outside = w(1, "0") + &w(2, "3") + "\n";
        assert!(read(&outside).unwrap_err().to_string().contains("t:2: HEAD 3 points outside"));
        let mixed = w(1, "0") + &w(2, "_") + "\n";
        assert!(read(&mixed).unwrap_err().to_string().contains("t:2: HEAD is `_`"));
        let blank = w(1, "_") + &w(2, "_") + "\n";
        let d = read(&blank).unwrap();
        let e = evaluate(&d, &d, Path::new("g"), Path::new("s")).unwrap();
        assert_eq!(e.get("UPOS").unwrap().f1(), 1.0);
        assert_eq!(e.get("LAS"), None);
    }

    #[test]
    fn space_separators_are_unicode_zs() {
        for c in [' ', '\u{a0}', '\u{2009}', '\u{3000}'] {
            assert!(is_space_separator(c));
        }
        for c in ['\t', '\n', 'a', '\u{200b}'] {
            assert!(!is_space_separator(c));
        }
    }
}
