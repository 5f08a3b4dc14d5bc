//! Raw text: `attend raw-text` (the shared task's text of a CoNLL-U file)
//! and `attend eval --system --gold` (the CoNLL 2018 metrics).

use crate::tagger_cmd::OutputFormat;
use anyhow::{Context, Result};
use attend::data::conllu::{Sentence, Token, TokenId};
use attend::data::{conllu, raw_text, ud_eval};
use attend::data::vocab::TaggerVocab;
use attend::models::segmenter::task::LoadedSegmenter;
use attend::models::Tagger;
use clap::Args;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Scores `system` against `gold` and prints the official script's table (or JSON).
pub fn score(system: &Path, gold: &Path, json: bool) -> Result<()> {
    let e = ud_eval::evaluate_files(gold, system)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e.to_json())?);
    } else {
        print!("{}", e.table());
    }
    Ok(())
}

#[derive(Args)]
pub struct RawTextArgs {
    /// A CoNLL-U file with `# text` comments (else the tokens and their
    /// SpaceAfter=No are used).
    input: PathBuf,
    /// Output file; stdout when absent.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn raw_text(args: RawTextArgs) -> Result<()> {
    let sentences = conllu::read_file(&args.input)?;
    let text = raw_text::shared_task_text(&sentences, &args.input)?;
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Paragraphs at most this long go to the segmenter whole; longer ones are cut.
const MAX_PARAGRAPH_CHARS: usize = 1 << 20;
/// Characters segmented and tagged together (then written, then dropped).
const CHUNK_CHARS: usize = 1 << 16;

/// Raw text to tagged sentences, a chunk of paragraphs at a time.
pub struct RawTagger<'a> {
    segmenter: &'a LoadedSegmenter,
    max_words: usize,
    next_sentence: usize,
    next_paragraph: usize,
}

impl<'a> RawTagger<'a> {
    pub fn new(segmenter: &'a LoadedSegmenter, max_words: usize) -> Self {
        RawTagger { segmenter, max_words: max_words.max(1), next_sentence: 1, next_paragraph: 1 }
    }

    /// Reads `input` to its end, handing each chunk's sentences (segmented,
    /// not yet tagged) to `sink`. `seconds` gains the segmenter's time.
    pub fn run(
        &mut self,
        input: impl BufRead,
        label: &Path,
        mut sink: impl FnMut(&mut Vec<Sentence>) -> Result<()>,
        seconds: &mut f64,
    ) -> Result<()> {
        let mut chunk: Vec<raw_text::RawParagraph> = Vec::new();
        let mut chars = 0;
        for p in raw_text::ParagraphReader::new(input, label, MAX_PARAGRAPH_CHARS) {
            let p = p?;
            chars += p.chars.len();
            chunk.push(p);
            if chars >= CHUNK_CHARS {
                let mut sentences = self.segment(&std::mem::take(&mut chunk), seconds)?;
                sink(&mut sentences)?;
                chars = 0;
            }
        }
        if !chunk.is_empty() {
            let mut sentences = self.segment(&chunk, seconds)?;
            sink(&mut sentences)?;
        }
        Ok(())
    }

    /// Sentences of `paragraphs`, numbered on from the previous chunk.
    pub fn segment(&mut self, paragraphs: &[raw_text::RawParagraph], seconds: &mut f64) -> Result<Vec<Sentence>> {
        let t = Instant::now();
        let texts: Vec<&[char]> = paragraphs.iter().map(|p| &p.chars[..]).collect();
        let labels = self.segmenter.model.label(&self.segmenter.data, &texts)?;
        let mut out = Vec::new();
        for (p, l) in paragraphs.iter().zip(&labels) {
            let found: Vec<Vec<raw_text::FoundToken>> = raw_text::decode(&p.chars, l)
                .into_iter()
                .flat_map(|s| s.chunks(self.max_words).map(<[_]>::to_vec).collect::<Vec<_>>())
                .collect();
            if found.is_empty() {
                continue;
            }
            let first = self.next_paragraph == 1;
            out.extend(raw_text::to_sentences(&p.chars, &found, &self.segmenter.data.lexicon, self.next_sentence, (self.next_paragraph, first)));
            self.next_sentence += found.len();
            self.next_paragraph += 1;
        }
        *seconds += t.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// Writes tagged sentences in `format`. A sentence nothing parsed gets
/// the flat tree of [`raw_text::fill_flat_tree`] in CoNLL-U.
pub fn write_sentences(out: &mut dyn Write, sentences: &mut [Sentence], format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Conllu => {
            for s in sentences.iter_mut() {
                raw_text::fill_flat_tree(s);
            }
            out.write_all(conllu::to_string(sentences).as_bytes())?;
        }
        OutputFormat::Horizontal => {
            for s in sentences.iter() {
                let words: Vec<&str> = s.words().map(|w| w.form.as_str()).collect();
                writeln!(out, "{}", words.join(" "))?;
            }
        }
        OutputFormat::Json => {
            for (k, s) in sentences.iter().enumerate() {
                let mut tokens = Vec::new();
                let words: Vec<&Token> = s.words().collect();
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
                let text = raw_text::sentence_text(s);
                let id = raw_text::comment_value(s, "sent_id").map_or_else(|| (k + 1).to_string(), str::to_string);
                writeln!(out, "{}", serde_json::json!({ "id": id, "text": text, "tokens": tokens }))?;
            }
        }
    }
    Ok(())
}

/// Tags the raw text of `gold_path` (built as the shared task built it)
/// with the segmenter in `segmenter_dir` and `model`, and scores the result
/// against the file with the CoNLL 2018 metrics.
pub fn score_raw_text(model: &Tagger, vocab: &TaggerVocab, segmenter_dir: &Path, gold_path: &Path) -> Result<ud_eval::Evaluation> {
    let gold = conllu::read_file(gold_path)?;
    let text = raw_text::shared_task_text(&gold, gold_path)?;
    let segmenter = attend::models::segmenter::task::load(segmenter_dir)?;
    let mut raw = RawTagger::new(&segmenter, attend::models::MAX_DENSE_WORDS);
    let mut system = Vec::new();
    let mut secs = 0.0;
    raw.run(text.as_bytes(), gold_path, |s| {
        system.append(s);
        Ok(())
    }, &mut secs)?;
    model.tag(&mut system, vocab, attend::models::TAG_BATCH_TOKENS)?;
    system.iter_mut().for_each(raw_text::fill_flat_tree);
    let label = Path::new("<tagged raw text>");
    Ok(ud_eval::evaluate(&ud_eval::UdDocument::new(&gold, gold_path)?, &ud_eval::UdDocument::new(&system, label)?, gold_path, label)?)
}
