//! Vocabularies: words, characters and tags.
//!
//! Words are looked up by a normalised form (lower case, digits as `0`) so
//! "Monday"/"monday" and "1999"/"2001" share an embedding; the character
//! encoder still sees the original spelling, which is how words unseen in
//! training (about 10% of EWT test tokens) get a useful vector.

use crate::data::conllu::Sentence;
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
    form.chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
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
}

impl TaggerVocab {
    /// Builds vocabularies from training sentences: every normalised word,
    /// every character, every UPOS tag.
    pub fn build(train: &[Sentence]) -> Self {
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
        TaggerVocab { words: Vocab::new(word_items), word_counts, chars: Vocab::new(char_items), tags: Vocab::new(tags) }
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
    }
}
