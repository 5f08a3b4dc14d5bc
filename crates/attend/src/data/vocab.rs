//! Vocabularies: words, characters and tags.
//!
//! Words are looked up by a normalised form (lower case, digits as `0`) so
//! "Monday"/"monday" and "1999"/"2001" share an embedding; the character
//! encoder still sees the original spelling, which is how words unseen in
//! training (about 10% of EWT test tokens) get a useful vector.

use crate::data::conllu::{Sentence, Token};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Index of the padding entry in word and character vocabularies.
pub const PAD: u32 = 0;
/// Index of the unknown entry in word and character vocabularies.
pub const UNK: u32 = 1;
/// Character markers around each word, so the encoder sees prefixes and suffixes.
pub const BOW: u32 = 2;
pub const EOW: u32 = 3;

/// A string <-> index table.
///
/// ```
/// use attend::data::vocab::Vocab;
/// let v = Vocab::new(vec!["<pad>".into(), "<unk>".into(), "cat".into()]);
/// assert_eq!(v.get("cat"), Some(2));
/// assert_eq!(v.name(2), "cat");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    items: Vec<String>,
    index: HashMap<String, u32>,
}

impl From<Vec<String>> for Vocab {
    fn from(items: Vec<String>) -> Self {
        Self::new(items)
    }
}

impl From<Vocab> for Vec<String> {
    fn from(v: Vocab) -> Self {
        v.items
    }
}

impl Vocab {
    pub fn new(items: Vec<String>) -> Self {
        let index = items.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        Vocab { items, index }
    }
    pub fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }
    /// Index of `s`, or [`UNK`].
    pub fn get_or_unk(&self, s: &str) -> u32 {
        self.get(s).unwrap_or(UNK)
    }
    pub fn name(&self, i: u32) -> &str {
        &self.items[i as usize]
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn items(&self) -> &[String] {
        &self.items
    }
}

/// The normalised form a word is looked up by.
pub fn normalize_word(form: &str) -> String {
    form.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).flat_map(char::to_lowercase).collect()
}

/// A CoNLL-U column a tagger can predict, each with its own head on the
/// shared encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Column {
    /// Universal part of speech (always predicted).
    Upos,
    /// The treebank's own part-of-speech tag.
    Xpos,
    /// Morphological features, predicted as the whole `FEATS` string
    /// (`Number=Sing|Person=3`, or `_` for none).
    Feats,
}

impl Column {
    pub const ALL: [Column; 3] = [Column::Upos, Column::Xpos, Column::Feats];

    /// The column's name as the CoNLL-U format spells it.
    pub fn name(self) -> &'static str {
        match self {
            Column::Upos => "UPOS",
            Column::Xpos => "XPOS",
            Column::Feats => "FEATS",
        }
    }

    /// The token's value in this column.
    pub fn of(self, t: &Token) -> &str {
        match self {
            Column::Upos => &t.upos,
            Column::Xpos => &t.xpos,
            Column::Feats => &t.feats,
        }
    }

    /// Sets the token's value in this column.
    pub fn set(self, t: &mut Token, value: &str) {
        let slot = match self {
            Column::Upos => &mut t.upos,
            Column::Xpos => &mut t.xpos,
            Column::Feats => &mut t.feats,
        };
        value.clone_into(slot);
    }

    /// Whether `value` is a label to learn: `_` means "not annotated" in
    /// UPOS and XPOS, but "no features" in FEATS, which is a class of its own.
    fn is_label(self, value: &str) -> bool {
        self == Column::Feats || value != "_"
    }
}

impl std::str::FromStr for Column {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "upos" => Ok(Column::Upos),
            "xpos" => Ok(Column::Xpos),
            "feats" | "ufeats" => Ok(Column::Feats),
            _ => Err(format!("unknown column '{s}': use upos, xpos or feats")),
        }
    }
}

/// The vocabularies of a tagger, saved as `vocab.json` in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggerVocab {
    /// Normalised training words; entries 0 and 1 are `<pad>` and `<unk>`.
    pub words: Vocab,
    /// Training frequency of each word entry (for word dropout).
    pub word_counts: Vec<u32>,
    /// Training characters; entries 0..4 are `<pad>`, `<unk>`, `<w>`, `</w>`.
    pub chars: Vocab,
    /// UPOS tags seen in training, sorted.
    pub tags: Vocab,
    /// XPOS tags seen in training, sorted, when the tagger predicts XPOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xpos: Option<Vocab>,
    /// FEATS strings seen in training, sorted, when the tagger predicts FEATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feats: Option<Vocab>,
    /// With more than one column: every combination of labels (one index
    /// per column of [`columns`](Self::columns)) seen on a training word,
    /// sorted. Decoding chooses among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combinations: Option<Vec<Vec<u32>>>,
}

impl TaggerVocab {
    /// Builds vocabularies from training sentences: every normalised word,
    /// every character, every UPOS tag.
    pub fn build(train: &[Sentence]) -> Self {
        Self::build_for(train, &[Column::Upos])
    }

    /// [`build`](Self::build) with a label table for each of `columns`
    /// (UPOS is always included). A column with no label in the training
    /// data (XPOS all `_`, or FEATS all `_`) gets no table: there is
    /// nothing to learn.
    pub fn build_for(train: &[Sentence], columns: &[Column]) -> Self {
        let mut v = Self::build_words(train);
        for c in [Column::Xpos, Column::Feats] {
            if !columns.contains(&c) {
                continue;
            }
            let mut values: Vec<String> =
                train.iter().flat_map(|s| s.words()).map(|t| c.of(t)).filter(|x| c.is_label(x)).map(str::to_string).collect();
            values.sort();
            values.dedup();
            let informative = match c {
                Column::Feats => values.iter().any(|x| x != "_"),
                _ => !values.is_empty(),
            };
            let table = informative.then(|| Vocab::new(values));
            match c {
                Column::Xpos => v.xpos = table,
                _ => v.feats = table,
            }
        }
        let columns = v.columns();
        if columns.len() > 1 {
            let mut seen: Vec<Vec<u32>> = train
                .iter()
                .flat_map(|s| s.words())
                .filter_map(|t| columns.iter().map(|&c| v.label_id(c, t)).collect::<Option<Vec<u32>>>())
                .collect();
            seen.sort_unstable();
            seen.dedup();
            v.combinations = Some(seen);
        }
        v
    }

    /// The label table of `column`, if the tagger predicts it.
    pub fn column(&self, column: Column) -> Option<&Vocab> {
        match column {
            Column::Upos => Some(&self.tags),
            Column::Xpos => self.xpos.as_ref(),
            Column::Feats => self.feats.as_ref(),
        }
    }

    /// The table sizes of a tagger built on this vocabulary, named as
    /// errors name them: words, chars, tags (UPOS), XPOS labels and FEATS
    /// labels (0 for a column it does not predict).
    pub fn sizes(&self) -> [(&'static str, usize); 5] {
        let len = |v: Option<&Vocab>| v.map_or(0, Vocab::len);
        [
            ("words", self.words.len()),
            ("chars", self.chars.len()),
            ("tags", self.tags.len()),
            ("XPOS labels", len(self.xpos.as_ref())),
            ("FEATS labels", len(self.feats.as_ref())),
        ]
    }

    /// The columns this vocabulary has labels for, UPOS first.
    pub fn columns(&self) -> Vec<Column> {
        Column::ALL.into_iter().filter(|&c| self.column(c).is_some()).collect()
    }

    /// The label index of the token's value in `column`, or `None` when the
    /// value is missing or unseen in training.
    pub fn label_id(&self, column: Column, t: &Token) -> Option<u32> {
        let value = column.of(t);
        if !column.is_label(value) {
            return None;
        }
        self.column(column)?.get(value)
    }

    fn build_words(train: &[Sentence]) -> Self {
        let mut word_freq: HashMap<String, u32> = HashMap::new();
        let mut char_freq: HashMap<char, u32> = HashMap::new();
        let mut tags: Vec<String> = Vec::new();
        for s in train {
            for t in s.words() {
                *word_freq.entry(normalize_word(&t.form)).or_default() += 1;
                for c in t.form.chars() {
                    *char_freq.entry(c).or_default() += 1;
                }
                if t.upos != "_" && !tags.contains(&t.upos) {
                    tags.push(t.upos.clone());
                }
            }
        }
        // Most frequent first, ties by string, so the order is reproducible.
        let mut words: Vec<(String, u32)> = word_freq.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut word_items = vec!["<pad>".to_string(), "<unk>".to_string()];
        let mut word_counts = vec![0, 0];
        for (w, c) in words {
            word_items.push(w);
            word_counts.push(c);
        }
        let mut chars: Vec<(char, u32)> = char_freq.into_iter().collect();
        chars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut char_items: Vec<String> = ["<pad>", "<unk>", "<w>", "</w>"].iter().map(|s| s.to_string()).collect();
        char_items.extend(chars.into_iter().map(|(c, _)| c.to_string()));
        tags.sort();
        TaggerVocab {
            words: Vocab::new(word_items),
            word_counts,
            chars: Vocab::new(char_items),
            tags: Vocab::new(tags),
            xpos: None,
            feats: None,
            combinations: None,
        }
    }

    /// Word index of a surface form ([`UNK`] if unseen in training).
    pub fn word_id(&self, form: &str) -> u32 {
        self.words.get_or_unk(&normalize_word(form))
    }

    /// True when the word's normalised form never occurred in training.
    pub fn is_unknown(&self, form: &str) -> bool {
        self.words.get(&normalize_word(form)).is_none()
    }

    /// Character indices of a word with `<w>`/`</w>` markers. A word longer
    /// than `max_chars` keeps its first and last `max_chars / 2` characters,
    /// where prefixes and suffixes (the part-of-speech clues) are.
    pub fn char_ids(&self, form: &str, max_chars: usize) -> Vec<u32> {
        let chars: Vec<char> = form.chars().collect();
        let kept: Vec<char> = if chars.len() > max_chars {
            let half = max_chars / 2;
            chars[..half].iter().chain(&chars[chars.len() - (max_chars - half)..]).copied().collect()
        } else {
            chars
        };
        let mut ids = Vec::with_capacity(kept.len() + 2);
        ids.push(BOW);
        let mut buf = [0u8; 4];
        ids.extend(kept.iter().map(|c| self.chars.get_or_unk(c.encode_utf8(&mut buf))));
        ids.push(EOW);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::conllu::Sentence;

    fn tagged(words: &[(&str, &str)]) -> Sentence {
        let mut s = Sentence::from_words(&words.iter().map(|w| w.0).collect::<Vec<_>>());
        for (t, w) in s.words_mut().zip(words) {
            t.upos = w.1.to_string();
        }
        s
    }

    #[test]
    fn builds_and_handles_unknowns() {
        let v = TaggerVocab::build(&[tagged(&[("The", "DET"), ("cat", "NOUN"), ("the", "DET"), ("1999", "NUM")])]);
        assert_eq!(v.words.name(2), "the");
        assert_eq!(v.word_counts[2], 2);
        assert_eq!(v.word_id("THE"), 2);
        assert_eq!(v.word_id("2024"), v.word_id("1999"));
        assert_eq!(v.word_id("dog"), UNK);
        assert!(v.is_unknown("dog") && !v.is_unknown("Cat"));
        assert_eq!(v.tags.items(), ["DET", "NOUN", "NUM"]);
        let ids = v.char_ids("cat", 20);
        assert_eq!(ids.len(), 5);
        assert_eq!((ids[0], ids[4]), (BOW, EOW));
        assert_eq!(v.char_ids("zzz", 20)[1], UNK);
        // long words keep prefix and suffix
        let long = v.char_ids("ttttttttttttttttttttttttcat", 6);
        assert_eq!(long.len(), 8);
        assert_eq!(&long[4..7], &v.char_ids("cat", 6)[1..4]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<TaggerVocab>(&json).unwrap(), v);
        assert!(!json.contains("xpos"), "a UPOS-only vocabulary is written as before");
    }

    #[test]
    fn xpos_and_feats_tables_skip_missing_values_but_keep_empty_feats() {
        let mut s = tagged(&[("The", "DET"), ("cats", "NOUN"), (".", "PUNCT")]);
        for (t, (x, f)) in s.words_mut().zip([("DT", "Definite=Def"), ("NNS", "Number=Plur"), ("_", "_")]) {
            t.xpos = x.into();
            t.feats = f.into();
        }
        let v = TaggerVocab::build_for(std::slice::from_ref(&s), &Column::ALL);
        assert_eq!(v.xpos.as_ref().unwrap().items(), ["DT", "NNS"]);
        assert_eq!(v.feats.as_ref().unwrap().items(), ["Definite=Def", "Number=Plur", "_"]);
        assert_eq!(v.columns(), Column::ALL);
        // DET DT Definite=Def, NOUN NNS Number=Plur; the PUNCT has no XPOS, so no combination
        assert_eq!(v.combinations.as_deref(), Some(&[vec![0, 0, 0], vec![1, 1, 1]][..]));
        let punct = s.words().nth(2).unwrap();
        assert_eq!(v.label_id(Column::Xpos, punct), None);
        assert_eq!(v.label_id(Column::Feats, punct), Some(2));
        // a column with nothing in it gets no table
        let plain = tagged(&[("a", "DET")]);
        let v = TaggerVocab::build_for(&[plain], &Column::ALL);
        assert_eq!(v.columns(), [Column::Upos]);
        let json = serde_json::to_string(&TaggerVocab::build_for(std::slice::from_ref(&s), &Column::ALL)).unwrap();
        assert!(serde_json::from_str::<TaggerVocab>(&json).unwrap().feats.is_some());
        assert_eq!("UFeats".parse::<Column>(), Ok(Column::Feats));
        assert!("lemma".parse::<Column>().is_err());
    }
}
