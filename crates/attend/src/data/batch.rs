//! Turning sentences into padded, length-bucketed batches.

use crate::data::conllu::Sentence;
use crate::data::vocab::{TaggerVocab, PAD, UNK};
use attend_kernels::loss::IGNORE;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;

/// One sentence as indices, computed once before training.
#[derive(Debug, Clone)]
pub struct EncodedSentence {
    pub words: Vec<u32>,
    pub chars: Vec<Vec<u32>>,
    /// Gold UPOS per word; [`IGNORE`] where the tag is missing or unseen in training.
    pub tags: Vec<u32>,
    /// Gold labels of the vocabulary's other columns (XPOS, FEATS: those of
    /// `vocab.columns()[1..]`, in that order), [`IGNORE`] likewise.
    pub other_tags: Vec<Vec<u32>>,
}

impl EncodedSentence {
    pub fn len(&self) -> usize {
        self.words.len()
    }
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
    /// Words `range` of the sentence.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        EncodedSentence {
            words: self.words[range.clone()].to_vec(),
            chars: self.chars[range.clone()].to_vec(),
            tags: self.tags[range.clone()].to_vec(),
            other_tags: self.other_tags.iter().map(|t| t[range.clone()].to_vec()).collect(),
        }
    }
}

/// Encodes the words of each sentence.
pub fn encode(sentences: &[Sentence], vocab: &TaggerVocab, max_word_chars: usize) -> Vec<EncodedSentence> {
    sentences
        .iter()
        .map(|s| {
            let others = &vocab.columns()[1..];
            let mut e = EncodedSentence { words: vec![], chars: vec![], tags: vec![], other_tags: vec![Vec::new(); others.len()] };
            for t in s.words() {
                e.words.push(vocab.word_id(&t.form));
                e.chars.push(vocab.char_ids(&t.form, max_word_chars));
                e.tags.push(vocab.tags.get(&t.upos).unwrap_or(IGNORE));
                for (labels, &c) in e.other_tags.iter_mut().zip(others) {
                    labels.push(vocab.label_id(c, t).unwrap_or(IGNORE));
                }
            }
            e
        })
        .collect()
}

/// A padded batch, row-major `[batch, seq]`. Characters are stored once per
/// distinct spelling in the batch (a batch of 2,000 words has about half as
/// many distinct ones), and each word position points at its spelling.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch: usize,
    pub seq: usize,
    pub word_ids: Vec<u32>,
    pub tags: Vec<u32>,
    /// `[batch, seq]` per other column, as [`EncodedSentence::other_tags`].
    pub other_tags: Vec<Vec<u32>>,
    /// Words in each sequence; positions past it are padding.
    pub lengths: Vec<usize>,
    /// Longest spelling (in characters, with markers).
    pub max_chars: usize,
    /// `[spellings, max_chars]` character indices, [`PAD`] after each end.
    /// Spelling 0 is empty: padding positions point at it.
    pub spellings: Vec<u32>,
    /// Characters in each spelling.
    pub spelling_lengths: Vec<usize>,
    /// `[batch, seq]`: the spelling of each position.
    pub spelling_of: Vec<u32>,
}

impl Batch {
    /// Pads the given sentences into one batch.
    pub fn new(data: &[EncodedSentence], indices: &[usize]) -> Self {
        let seq = indices.iter().map(|&i| data[i].len()).max().unwrap_or(0);
        let max_chars = indices.iter().flat_map(|&i| data[i].chars.iter().map(Vec::len)).max().unwrap_or(0).max(1);
        let b = indices.len();
        let mut word_ids = vec![PAD; b * seq];
        let mut tags = vec![IGNORE; b * seq];
        let others = indices.first().map_or(0, |&i| data[i].other_tags.len());
        let mut other_tags = vec![vec![IGNORE; b * seq]; others];
        let mut spelling_of = vec![0u32; b * seq];
        let mut lengths = Vec::with_capacity(b);
        let mut distinct: HashMap<&[u32], u32> = HashMap::new();
        let mut spellings = vec![PAD; max_chars];
        let mut spelling_lengths = vec![0usize];
        for (r, &i) in indices.iter().enumerate() {
            let s = &data[i];
            lengths.push(s.len());
            word_ids[r * seq..r * seq + s.len()].copy_from_slice(&s.words);
            tags[r * seq..r * seq + s.len()].copy_from_slice(&s.tags);
            for (all, mine) in other_tags.iter_mut().zip(&s.other_tags) {
                all[r * seq..r * seq + s.len()].copy_from_slice(mine);
            }
            for (t, chars) in s.chars.iter().enumerate() {
                let next = spelling_lengths.len() as u32;
                let id = *distinct.entry(chars.as_slice()).or_insert_with(|| {
                    spellings.extend(chars.iter().copied().chain(std::iter::repeat(PAD)).take(max_chars));
                    spelling_lengths.push(chars.len());
                    next
                });
                spelling_of[r * seq + t] = id;
            }
        }
        Batch { batch: b, seq, word_ids, tags, other_tags, lengths, max_chars, spellings, spelling_lengths, spelling_of }
    }

    /// Number of real (unpadded) words.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// The batch of some of these rows alone: what [`Batch::new`] gives for
    /// their sentences (padded to their own longest, their own spellings),
    /// with whatever word dropout this batch has.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Batch {
        let lengths = self.lengths[rows.clone()].to_vec();
        let seq = lengths.iter().copied().max().unwrap_or(0);
        let b = lengths.len();
        let mut word_ids = vec![PAD; b * seq];
        let mut tags = vec![IGNORE; b * seq];
        let mut other_tags = vec![vec![IGNORE; b * seq]; self.other_tags.len()];
        let mut spelling_of = vec![0u32; b * seq];
        // Old spelling id -> new, in order of first use (as `new` numbers them).
        let mut renamed = vec![u32::MAX; self.spelling_lengths.len()];
        let mut used = vec![0u32];
        renamed[0] = 0;
        for (r, (old_r, &len)) in rows.clone().zip(&lengths).enumerate() {
            let (from, to) = (old_r * self.seq..old_r * self.seq + len, r * seq..r * seq + len);
            word_ids[to.clone()].copy_from_slice(&self.word_ids[from.clone()]);
            tags[to.clone()].copy_from_slice(&self.tags[from.clone()]);
            for (mine, all) in other_tags.iter_mut().zip(&self.other_tags) {
                mine[to.clone()].copy_from_slice(&all[from.clone()]);
            }
            for (slot, &old) in spelling_of[to].iter_mut().zip(&self.spelling_of[from]) {
                if renamed[old as usize] == u32::MAX {
                    renamed[old as usize] = used.len() as u32;
                    used.push(old);
                }
                *slot = renamed[old as usize];
            }
        }
        let spelling_lengths: Vec<usize> = used.iter().map(|&old| self.spelling_lengths[old as usize]).collect();
        let max_chars = spelling_lengths.iter().copied().max().unwrap_or(0).max(1);
        let mut spellings = Vec::with_capacity(used.len() * max_chars);
        for &old in &used {
            let o = old as usize * self.max_chars;
            spellings.extend_from_slice(&self.spellings[o..o + max_chars]);
        }
        Batch { batch: b, seq, word_ids, tags, other_tags, lengths, max_chars, spellings, spelling_lengths, spelling_of }
    }

    /// Words with a gold label, per column: UPOS first, then the others in
    /// the order of [`Batch::other_tags`].
    pub fn labelled(&self) -> Vec<usize> {
        let count = |tags: &[u32]| tags.iter().filter(|&&t| t != IGNORE).count();
        std::iter::once(count(&self.tags)).chain(self.other_tags.iter().map(|t| count(t))).collect()
    }

    /// Word dropout: replaces word `w` by `<unk>` with probability
    /// `alpha / (alpha + count(w))`, so rare words teach the unknown-word
    /// embedding what unseen words look like.
    pub fn drop_words<R: Rng>(&mut self, vocab: &TaggerVocab, alpha: f32, rng: &mut R) {
        if alpha <= 0.0 {
            return;
        }
        for w in self.word_ids.iter_mut().filter(|w| **w > UNK) {
            let count = vocab.word_counts[*w as usize] as f32;
            if rng.random::<f32>() < alpha / (alpha + count) {
                *w = UNK;
            }
        }
    }
}

/// Groups sentences into batches of similar length, each holding at most
/// `max_tokens` padded positions (and at least one sentence). With an RNG the
/// order within equal lengths and the batch order are shuffled; without, the
/// batches follow length order (for evaluation).
pub fn bucket<R: Rng>(lengths: &[usize], max_tokens: usize, rng: Option<&mut R>) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    let mut rng = rng;
    if let Some(r) = rng.as_deref_mut() {
        order.shuffle(r);
    }
    // Stable sort keeps the shuffled order among equal lengths.
    order.sort_by_key(|&i| lengths[i]);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        let longest = current.iter().map(|&j| lengths[j]).max().unwrap_or(0).max(lengths[i]);
        if !current.is_empty() && (current.len() + 1) * longest > max_tokens {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    if let Some(r) = rng {
        batches.shuffle(r);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rows_of_a_batch_are_the_batch_of_those_sentences() {
        let train = crate::data::synthetic::toy_treebank(30, 4);
        let vocab = TaggerVocab::build_for(&train, &crate::data::vocab::Column::ALL);
        let data = encode(&train, &vocab, 20);
        let order: Vec<usize> = (0..30).rev().collect();
        let batch = Batch::new(&data, &order);
        for range in [0..30, 0..1, 3..17, 29..30] {
            assert_eq!(batch.rows(range.clone()), Batch::new(&data, &order[range.clone()]), "rows {range:?}");
        }
        // Word dropout is carried over as it is.
        let mut dropped = batch.clone();
        dropped.drop_words(&vocab, 1000.0, &mut ChaCha8Rng::seed_from_u64(3));
        let part = dropped.rows(5..9);
        assert_eq!(
            part.word_ids,
            dropped.word_ids[5 * batch.seq..9 * batch.seq].chunks(batch.seq).flat_map(|r| &r[..part.seq]).copied().collect::<Vec<_>>()
        );
        assert_ne!(part.word_ids, batch.rows(5..9).word_ids);
    }

    #[test]
    fn buckets_respect_token_budget_and_cover_everything() {
        let lengths: Vec<usize> = (0..200).map(|i| 1 + (i * 37) % 50).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batches = bucket(&lengths, 200, Some(&mut rng));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() * longest <= 200 || b.len() == 1);
        }
        let again = bucket(&lengths, 200, Some(&mut ChaCha8Rng::seed_from_u64(1)));
        assert_eq!(batches, again);
    }

    #[test]
    fn batch_pads_words_chars_and_tags() {
        let data = vec![
            EncodedSentence {
                words: vec![5, 6],
                chars: vec![vec![2, 7, 3], vec![2, 8, 9, 3]],
                tags: vec![0, 1],
                other_tags: vec![vec![3, 4]],
            },
            EncodedSentence { words: vec![4], chars: vec![vec![2, 7, 3]], tags: vec![2], other_tags: vec![vec![5]] },
        ];
        let b = Batch::new(&data, &[0, 1]);
        assert_eq!((b.batch, b.seq, b.max_chars), (2, 2, 4));
        assert_eq!(b.word_ids, [5, 6, 4, PAD]);
        assert_eq!(b.tags, [0, 1, 2, IGNORE]);
        assert_eq!(b.other_tags, [vec![3, 4, 5, IGNORE]]);
        // spellings: empty, [2 7 3], [2 8 9 3]; the repeated one is stored once
        assert_eq!(b.spelling_lengths, [0, 3, 4]);
        assert_eq!(b.spelling_of, [1, 2, 1, 0]);
        assert_eq!(&b.spellings[4..8], &[2, 7, 3, 0]);
        assert_eq!(&b.spellings[8..12], &[2, 8, 9, 3]);
        assert_eq!(b.tokens(), 3);
    }
}
