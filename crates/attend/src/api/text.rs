//! Raw text in, tagged sentences out: a tagger directory (with the
//! segmenter `attend train tagger` keeps in its `segmenter/`) as one
//! [`TextTagger`]. Text is segmented into sentences, tokens and multiword
//! tokens, then tagged with UPOS, XPOS and FEATS; a stream is read and
//! handed back a chunk of paragraphs at a time, in bounded memory.
//!
//! ```
//! use attend::api::text::TextTagger;
//! # use attend::data::{synthetic::toy_raw_treebank, vocab::Column};
//! # use attend::models::segmenter::{task as seg, SegmenterConfig};
//! # use attend::models::tagger::config::TaggerSettings;
//! # use std::path::Path;
//! # // A tiny tagger and its segmenter in `dir`, as `attend train tagger` writes them.
//! # let dir = tempfile::tempdir().unwrap();
//! # let (train, dev) = (toy_raw_treebank(300, 1), toy_raw_treebank(60, 2));
//! # let mut s = TaggerSettings::default();
//! # (s.model.encoder.d_model, s.model.encoder.heads, s.model.encoder.ff_dim) = (32, 4, 64);
//! # (s.model.word_dim, s.model.char_dim, s.model.char_filters) = (16, 8, 24);
//! # (s.train.epochs, s.train.lr, s.train.warmup_steps, s.train.batch_tokens, s.train.seed) = (30, 3e-3, 20, 256, 5);
//! # let job = attend::api::tagger::TaggerJob::new(&train, &Column::ALL, &s)?;
//! # job.run(&train, &dev, Some(dir.path()), None, &mut attend::train::Silent)?;
//! # let p = seg::prepare(&train, Path::new("train"), &dev, Path::new("dev"))?;
//! # let model = seg::new_model(&SegmenterConfig { d_model: 32, layers: 2, window: 8, ..Default::default() }, &p.data, 5)?;
//! # let seg_dir = attend::api::text::segmenter_dir(dir.path());
//! # let options = attend::train::RunOptions { checkpoint_dir: Some(&seg_dir), ..Default::default() };
//! # let cfg = attend::config::TrainConfig { epochs: 30, seed: 5, ..seg::train_defaults() };
//! # seg::train_segmenter(&model, &p.data, &p.train, &p.dev, &cfg, options, &mut attend::train::Silent)?;
//! let tagger = TextTagger::load(dir.path())?;
//! let sentences = tagger.tag_text("the run watch it. a light cooked her.\n\nthe plant ran.\n")?;
//! assert_eq!(sentences.len(), 3);
//! for s in &sentences {
//!     for w in s.words() {
//!         println!("{}\t{}\t{}\t{}", w.form, w.upos, w.xpos, w.feats);
//!     }
//! }
//! let first: Vec<(&str, &str)> = sentences[0].words().map(|w| (w.form.as_str(), w.upos.as_str())).collect();
//! assert_eq!(first, [("the", "DET"), ("run", "NOUN"), ("watch", "VERB"), ("it", "PRON"), (".", "PUNCT")]);
//! // The same as records (what `attend tag --output-format json` writes).
//! let record = attend::api::text::sentence_record(&sentences[0], 1);
//! assert_eq!(record["tokens"][1]["words"][0]["upos"], sentences[0].tokens[1].upos.as_str());
//! # Ok::<(), attend::Error>(())
//! ```

use crate::checkpoint::{self, Loaded};
use crate::data::conllu::{self, Sentence, TokenId};
use crate::data::{raw_text, ud_eval};
use crate::error::{Error, Result};
use crate::models::segmenter::Segmenter;
use crate::models::tagger::{Tagger, TAG_BATCH_TOKENS};
use crate::nn::sequence::MAX_DENSE;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Paragraphs at most this long go to the segmenter whole; longer ones are cut.
pub const MAX_PARAGRAPH_CHARS: usize = 1 << 20;
/// Characters segmented and tagged together (then handed on, then dropped).
pub const CHUNK_CHARS: usize = 1 << 16;

/// Where a tagger directory keeps its segmenter.
pub fn segmenter_dir(tagger_dir: &Path) -> PathBuf {
    tagger_dir.join("segmenter")
}

/// Whether the tagger in `tagger_dir` has a segmenter (to read raw text).
pub fn has_segmenter(tagger_dir: &Path) -> bool {
    segmenter_dir(tagger_dir).join("config.json").is_file()
}

/// A tagger with its segmenter, if it has one: raw text or sentences in,
/// tagged sentences out.
pub struct TextTagger {
    pub tagger: Loaded<Tagger>,
    pub segmenter: Option<Loaded<Segmenter>>,
    /// Longest sentence tagged with dense attention (longer ones are refused:
    /// [`Error::DenseTooLong`]); a sentence the segmenter finds longer is
    /// cut into pieces of this many tokens.
    pub max_dense: usize,
}

/// How long the steps of a run took, and what they did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TagStats {
    pub sentences: usize,
    pub words: usize,
    pub longest: usize,
    pub segment_seconds: f64,
    pub tag_seconds: f64,
}

impl TextTagger {
    /// Loads the tagger in `dir` and, if `dir/segmenter` holds one, its segmenter.
    pub fn load(dir: &Path) -> Result<Self> {
        let tagger = checkpoint::load::<Tagger>(dir)?;
        let segmenter = if has_segmenter(dir) { Some(checkpoint::load::<Segmenter>(&segmenter_dir(dir))?) } else { None };
        Ok(TextTagger { tagger, segmenter, max_dense: MAX_DENSE })
    }

    /// Truncated attention from now on: each word sees `window` words on
    /// each side (`None`: whole sentences).
    pub fn set_window(&mut self, window: Option<usize>) -> Result<()> {
        self.tagger.model.set_window(window)
    }

    /// Tags sentences whose words are given (UPOS, XPOS, FEATS as the model predicts).
    pub fn tag(&self, sentences: &mut [Sentence]) -> Result<()> {
        let longest = sentences.iter().map(Sentence::word_count).max().unwrap_or(0);
        self.tagger.model.check_dense_length(longest, self.max_dense)?;
        Ok(self.tagger.model.tag(sentences, &self.tagger.data, TAG_BATCH_TOKENS)?)
    }

    /// Segments and tags raw text (paragraphs end at blank lines).
    pub fn tag_text(&self, text: &str) -> Result<Vec<Sentence>> {
        let mut out = Vec::new();
        self.tag_stream(text.as_bytes(), Path::new("<text>"), |s| {
            out.append(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads raw text from `input` to its end, segmenting and tagging a
    /// chunk of paragraphs at a time and handing each chunk's sentences to
    /// `sink` (numbered on across chunks). `label` names the input in errors.
    pub fn tag_stream(
        &self,
        input: impl BufRead,
        label: &Path,
        mut sink: impl FnMut(&mut Vec<Sentence>) -> Result<()>,
    ) -> Result<TagStats> {
        let segmenter = self.raw_text_segmenter()?;
        let mut stats = TagStats::default();
        RawSegmenter::new(segmenter, self.max_dense).run(input, label, |sentences, segment_seconds| {
            stats.segment_seconds += segment_seconds;
            let t = Instant::now();
            self.tag(sentences)?;
            stats.tag_seconds += t.elapsed().as_secs_f64();
            stats.sentences += sentences.len();
            stats.words += sentences.iter().map(Sentence::word_count).sum::<usize>();
            stats.longest = stats.longest.max(sentences.iter().map(Sentence::word_count).max().unwrap_or(0));
            sink(sentences)
        })?;
        Ok(stats)
    }

    fn raw_text_segmenter(&self) -> Result<&Loaded<Segmenter>> {
        self.segmenter
            .as_ref()
            .ok_or_else(|| Error::Input("this tagger has no segmenter to read raw text (train one into its segmenter/ directory)".into()))
    }

    /// Segments and tags many raw-text documents (each named by its label
    /// in errors), their paragraphs segmented and tagged together in
    /// chunks as [`Self::tag_stream`] does; each document is numbered as if
    /// tagged alone. A document that cannot be read (not UTF-8) or, with
    /// `max_token_chars`, has a run of more characters without white space
    /// (no token is that long: a binary blob, a corrupt line) gets its own
    /// error and the others are tagged; an error of the model fails all.
    pub fn tag_documents(&self, docs: &[(&Path, &[u8])], max_token_chars: Option<usize>) -> Result<Vec<Result<TaggedDocument>>> {
        let raw = RawSegmenter::new(self.raw_text_segmenter()?, self.max_dense);
        let mut out: Vec<Result<TaggedDocument>> = Vec::with_capacity(docs.len());
        let mut paragraphs: Vec<(usize, raw_text::RawParagraph)> = Vec::new();
        for (d, &(label, bytes)) in docs.iter().enumerate() {
            let read = raw_text::ParagraphReader::new(bytes, label, MAX_PARAGRAPH_CHARS).collect::<Result<Vec<_>>>().and_then(|ps| {
                ps.iter().try_for_each(|p| max_token_chars.map_or(Ok(()), |limit| check_runs(p, limit, label)))?;
                Ok(ps)
            });
            match read {
                Ok(ps) => {
                    paragraphs.extend(ps.into_iter().map(|p| (d, p)));
                    out.push(Ok(TaggedDocument::default()));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let mut numbering: Vec<Numbering> = docs.iter().map(|_| Numbering::default()).collect();
        in_chunks(
            paragraphs.into_iter().map(Ok),
            |(_, p)| p.chars.len(),
            |chunk| {
                let found = raw.found(chunk.iter().map(|(_, p)| p))?;
                let (mut sentences, mut owners) = (Vec::new(), Vec::new());
                for ((d, p), f) in chunk.iter().zip(&found) {
                    let s = numbering[*d].sentences(p, f, raw.lexicon());
                    owners.extend(std::iter::repeat_n(*d, s.len()));
                    sentences.extend(s);
                }
                self.tag(&mut sentences)?;
                for (d, s) in owners.into_iter().zip(sentences) {
                    if let Ok(doc) = &mut out[d] {
                        doc.sentences.push(s);
                    }
                }
                Ok(())
            },
        )?;
        for (doc, n) in out.iter_mut().zip(&numbering) {
            if let Ok(doc) = doc {
                doc.paragraphs = n.next_paragraph - 1;
            }
        }
        Ok(out)
    }

    /// Tags the raw text of the gold CoNLL-U file at `gold_path` (built as
    /// the CoNLL 2018 shared task built it) and scores the result against it.
    pub fn score_raw_text(&self, gold_path: &Path) -> Result<ud_eval::Evaluation> {
        let gold = conllu::read_file(gold_path)?;
        let text = raw_text::shared_task_text(&gold, gold_path)?;
        let mut system = Vec::new();
        self.tag_stream(text.as_bytes(), gold_path, |s| {
            system.append(s);
            Ok(())
        })?;
        system.iter_mut().for_each(raw_text::fill_flat_tree);
        let label = Path::new("<tagged raw text>");
        ud_eval::evaluate(&ud_eval::UdDocument::new(&gold, gold_path)?, &ud_eval::UdDocument::new(&system, label)?, gold_path, label)
    }
}

/// One document of [`TextTagger::tag_documents`]: its tagged sentences,
/// numbered from 1 as if it were tagged alone, and the paragraphs they
/// make (`# newpar id = p1` ... in CoNLL-U).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaggedDocument {
    pub sentences: Vec<Sentence>,
    pub paragraphs: usize,
}

/// Refuses a paragraph with a run of more than `limit` characters without white space.
fn check_runs(p: &raw_text::RawParagraph, limit: usize, label: &Path) -> Result<()> {
    let mut run = 0;
    for &c in &p.chars {
        run = if c.is_whitespace() { 0 } else { run + 1 };
        if run > limit {
            let message = format!("more than {limit} characters without white space in the paragraph from this line (no token is that long: corrupt or binary text?)");
            return Err(Error::Parse { path: label.to_path_buf(), line: p.first_line, message });
        }
    }
    Ok(())
}

/// Raw text to sentences (segmented, not yet tagged), a chunk of paragraphs at a time.
struct RawSegmenter<'a> {
    segmenter: &'a Loaded<Segmenter>,
    max_words: usize,
}

/// The numbers the next sentence and paragraph of one output get (a
/// stream numbers on across its chunks; each document starts at 1).
struct Numbering {
    next_sentence: usize,
    next_paragraph: usize,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering { next_sentence: 1, next_paragraph: 1 }
    }
}

impl Numbering {
    /// The sentences `found` in paragraph `p`, numbered on (none, and no
    /// number used, for a paragraph without tokens).
    fn sentences(
        &mut self,
        p: &raw_text::RawParagraph,
        found: &[Vec<raw_text::FoundToken>],
        lexicon: &raw_text::MultiwordLexicon,
    ) -> Vec<Sentence> {
        if found.is_empty() {
            return Vec::new();
        }
        let first = self.next_paragraph == 1;
        let out = raw_text::to_sentences(&p.chars, found, lexicon, self.next_sentence, (self.next_paragraph, first));
        self.next_sentence += found.len();
        self.next_paragraph += 1;
        out
    }
}

/// Hands `items` to `sink` in chunks of about [`CHUNK_CHARS`] characters
/// (`chars` of each), in order; an item's error stops at once.
fn in_chunks<T>(
    items: impl Iterator<Item = Result<T>>,
    chars: impl Fn(&T) -> usize,
    mut sink: impl FnMut(Vec<T>) -> Result<()>,
) -> Result<()> {
    let (mut chunk, mut n) = (Vec::new(), 0);
    for item in items {
        let item = item?;
        n += chars(&item);
        chunk.push(item);
        if n >= CHUNK_CHARS {
            sink(std::mem::take(&mut chunk))?;
            n = 0;
        }
    }
    if chunk.is_empty() {
        return Ok(());
    }
    sink(chunk)
}

impl<'a> RawSegmenter<'a> {
    fn new(segmenter: &'a Loaded<Segmenter>, max_words: usize) -> Self {
        RawSegmenter { segmenter, max_words: max_words.max(1) }
    }

    fn lexicon(&self) -> &raw_text::MultiwordLexicon {
        &self.segmenter.data.lexicon
    }

    /// Reads `input` to its end, handing each chunk's sentences and the
    /// seconds segmenting them took to `sink`.
    fn run(&self, input: impl BufRead, label: &Path, mut sink: impl FnMut(&mut Vec<Sentence>, f64) -> Result<()>) -> Result<()> {
        let mut numbering = Numbering::default();
        let paragraphs = raw_text::ParagraphReader::new(input, label, MAX_PARAGRAPH_CHARS);
        in_chunks(
            paragraphs,
            |p| p.chars.len(),
            |chunk| {
                let t = Instant::now();
                let found = self.found(chunk.iter())?;
                let mut sentences: Vec<Sentence> =
                    chunk.iter().zip(&found).flat_map(|(p, f)| numbering.sentences(p, f, self.lexicon())).collect();
                sink(&mut sentences, t.elapsed().as_secs_f64())
            },
        )
    }

    /// The sentences (as tokens) the segmenter finds in each paragraph, a
    /// sentence longer than `max_words` cut into pieces.
    fn found<'p>(&self, paragraphs: impl Iterator<Item = &'p raw_text::RawParagraph>) -> Result<Vec<Vec<Vec<raw_text::FoundToken>>>> {
        let paragraphs: Vec<&raw_text::RawParagraph> = paragraphs.collect();
        let texts: Vec<&[char]> = paragraphs.iter().map(|p| &p.chars[..]).collect();
        let labels = self.segmenter.model.label(&self.segmenter.data, &texts)?;
        Ok(paragraphs
            .iter()
            .zip(&labels)
            .map(|(p, l)| {
                raw_text::decode(&p.chars, l)
                    .into_iter()
                    .flat_map(|s| s.chunks(self.max_words).map(<[_]>::to_vec).collect::<Vec<_>>())
                    .collect()
            })
            .collect())
    }
}

/// A tagged sentence as a JSON record: `id` (its `sent_id`, else
/// `number`), `text`, and its surface tokens, each with `form`,
/// `space_after` and its words (`form`, `upos`, and `xpos` and `feats`
/// where predicted).
pub fn sentence_record(s: &Sentence, number: usize) -> serde_json::Value {
    let words: Vec<&conllu::Token> = s.words().collect();
    let mut tokens = Vec::new();
    for t in raw_text::surface_tokens(s) {
        let range = match t.id {
            TokenId::Range(a, b) => a..=b,
            TokenId::Word(n) => n..=n,
            TokenId::Empty(..) => continue,
        };
        let ws: Vec<serde_json::Value> = range
            .filter_map(|n| words.get(n - 1))
            .map(|w| {
                let mut word = serde_json::json!({ "form": w.form, "upos": w.upos });
                // XPOS and FEATS when predicted (`_`: none).
                for (key, value) in [("xpos", &w.xpos), ("feats", &w.feats)] {
                    if value != "_" {
                        word[key] = serde_json::json!(value);
                    }
                }
                word
            })
            .collect();
        let space_after = !t.misc.split('|').any(|m| m == "SpaceAfter=No");
        tokens.push(serde_json::json!({ "form": t.form, "space_after": space_after, "words": ws }));
    }
    let id = raw_text::comment_value(s, "sent_id").map_or_else(|| number.to_string(), str::to_string);
    serde_json::json!({ "id": id, "text": raw_text::sentence_text(s), "tokens": tokens })
}
