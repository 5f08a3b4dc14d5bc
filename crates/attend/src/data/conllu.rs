//! CoNLL-U reader and writer (Universal Dependencies v2 format).
//!
//! A sentence is a block of comment lines (`# ...`) and token lines, ended by
//! a blank line. A token line has 10 tab-separated fields:
//! `ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC`. IDs are
//! - `1`, `2`, ...: syntactic words, numbered from 1 without gaps;
//! - `3-4`: a multiword token spanning words 3..=4 (surface form only);
//! - `8.1`: an empty node (enhanced dependencies) after word 8.
//!
//! Tagging uses the syntactic words (gold tokenization); multiword tokens and
//! empty nodes are kept so a file written back is the file read, with only
//! the fields we predict changed.

use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The ID column of a token line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenId {
    /// A syntactic word: `n`.
    Word(usize),
    /// A multiword token: `start-end`.
    Range(usize, usize),
    /// An empty node: `word.index`.
    Empty(usize, usize),
}

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenId::Word(n) => write!(f, "{n}"),
            TokenId::Range(a, b) => write!(f, "{a}-{b}"),
            TokenId::Empty(a, b) => write!(f, "{a}.{b}"),
        }
    }
}

/// One token line; the nine columns after ID kept as written (`_` = empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub form: String,
    pub lemma: String,
    pub upos: String,
    pub xpos: String,
    pub feats: String,
    pub head: String,
    pub deprel: String,
    pub deps: String,
    pub misc: String,
}

impl Token {
    /// A syntactic word with only ID and FORM set.
    pub fn word(n: usize, form: &str) -> Self {
        let u = || "_".to_string();
        Token {
            id: TokenId::Word(n),
            form: form.to_string(),
            lemma: u(),
            upos: u(),
            xpos: u(),
            feats: u(),
            head: u(),
            deprel: u(),
            deps: u(),
            misc: u(),
        }
    }
}

/// A sentence: its comments and all its token lines, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sentence {
    pub comments: Vec<String>,
    pub tokens: Vec<Token>,
    /// 1-based line of the sentence's first line in its file (0 if built in memory).
    pub line: usize,
}

impl Sentence {
    /// A sentence from whitespace-separated words.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Self {
        let tokens = words.iter().enumerate().map(|(i, w)| Token::word(i + 1, w.as_ref())).collect();
        Sentence { comments: Vec::new(), tokens, line: 0 }
    }

    /// The syntactic words (gold tokenization), skipping multiword tokens and empty nodes.
    pub fn words(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| matches!(t.id, TokenId::Word(_)))
    }

    pub fn words_mut(&mut self) -> impl Iterator<Item = &mut Token> {
        self.tokens.iter_mut().filter(|t| matches!(t.id, TokenId::Word(_)))
    }

    pub fn word_count(&self) -> usize {
        self.words().count()
    }
}

pub(crate) fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { path: path.to_path_buf(), line, message: message.into() }
}

fn parse_id(s: &str) -> Option<TokenId> {
    let num = |x: &str| -> Option<usize> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    if let Some((a, b)) = s.split_once('-') {
        return Some(TokenId::Range(num(a)?, num(b)?));
    }
    if let Some((a, b)) = s.split_once('.') {
        return Some(TokenId::Empty(num(a)?, num(b)?));
    }
    num(s).map(TokenId::Word)
}

/// Reads a CoNLL-U file. Errors name the file, the line and what is wrong.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<Sentence>> {
    let path = path.as_ref();
    check_fits_in_memory(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_bytes(&bytes, path)
}

/// Refuses, before reading it, a file that (with the structures built from
/// it, about 8x its size) would not fit in available memory.
pub fn check_fits_in_memory(path: &Path) -> Result<()> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let available = crate::memory::available_bytes();
    if size.saturating_mul(8) > available {
        return Err(Error::Input(format!(
            "{}: {} is too large to process in the {} of memory available (about 8x the file size is needed); split it into smaller files",
            path.display(),
            crate::memory::human_bytes(size),
            crate::memory::human_bytes(available)
        )));
    }
    Ok(())
}

/// The lines of `bytes` as (1-based number, text), each checked to be UTF-8.
pub(crate) fn utf8_lines<'a>(bytes: &'a [u8], path: &'a Path) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    bytes.split(|&b| b == b'\n').enumerate().map(move |(idx, raw)| {
        // CRLF (or stray CRs) before the line end are not part of the line.
        let mut raw = raw;
        while let Some(r) = raw.strip_suffix(b"\r") {
            raw = r;
        }
        std::str::from_utf8(raw)
            .map(|line| (idx + 1, line))
            .map_err(|e| parse_err(path, idx + 1, format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1)))
    })
}

/// Parses CoNLL-U from bytes; `path` only labels errors.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Vec<Sentence>> {
    let mut sentences = Vec::new();
    let mut current = Sentence::default();
    let mut text_lines = 0usize;
    for item in utf8_lines(bytes, path) {
        let (lineno, line) = item?;
        text_lines += 1;
        if line.trim().is_empty() {
            if !current.tokens.is_empty() || !current.comments.is_empty() {
                finish_sentence(&mut current, path, lineno)?;
                sentences.push(std::mem::take(&mut current));
            }
            continue;
        }
        if current.tokens.is_empty() && current.comments.is_empty() {
            current.line = lineno;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if !current.tokens.is_empty() {
                return Err(parse_err(path, lineno, "comment line inside a sentence (comments must come before its first token)"));
            }
            current.comments.push(comment.to_string());
            continue;
        }
        current.tokens.push(parse_token(line, path, lineno, &current)?);
    }
    if !current.tokens.is_empty() || !current.comments.is_empty() {
        finish_sentence(&mut current, path, text_lines)?;
        sentences.push(current);
    }
    if sentences.is_empty() {
        return Err(parse_err(path, text_lines.max(1), "no sentences in file (empty or only blank lines)"));
    }
    Ok(sentences)
}

fn parse_token(line: &str, path: &Path, lineno: usize, sent: &Sentence) -> Result<Token> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != 10 {
        return Err(parse_err(
            path,
            lineno,
            format!(
                "expected 10 tab-separated columns, found {}{}",
                cols.len(),
                if cols.len() == 1 && line.contains(' ') { " (is the file space-separated?)" } else { "" }
            ),
        ));
    }
    let id = parse_id(cols[0]).ok_or_else(|| parse_err(path, lineno, format!("invalid ID {:?} (expected N, N-M or N.M)", cols[0])))?;
    let last_word = sent.words().count();
    match id {
        TokenId::Word(n) if n != last_word + 1 => {
            return Err(parse_err(path, lineno, format!("word ID {n} out of sequence (expected {})", last_word + 1)));
        }
        TokenId::Range(a, b) if a != last_word + 1 || b <= a => {
            return Err(parse_err(
                path,
                lineno,
                format!("multiword token {a}-{b} must start at the next word ({}) and span at least two", last_word + 1),
            ));
        }
        TokenId::Empty(a, b) if a != last_word || b == 0 => {
            return Err(parse_err(path, lineno, format!("empty node {a}.{b} must follow word {last_word} and have index >= 1")));
        }
        _ => {}
    }
    for (i, c) in cols.iter().enumerate() {
        if c.is_empty() {
            return Err(parse_err(path, lineno, format!("column {} is empty (use _ for no value)", i + 1)));
        }
    }
    let s = |i: usize| cols[i].to_string();
    Ok(Token { id, form: s(1), lemma: s(2), upos: s(3), xpos: s(4), feats: s(5), head: s(6), deprel: s(7), deps: s(8), misc: s(9) })
}

fn finish_sentence(sent: &mut Sentence, path: &Path, lineno: usize) -> Result<()> {
    if sent.word_count() == 0 {
        return Err(parse_err(path, sent.line.max(1), "sentence has no words (only comments or multiword/empty lines)"));
    }
    let words = sent.word_count();
    for t in &sent.tokens {
        if let TokenId::Range(_, b) = t.id {
            if b > words {
                return Err(parse_err(path, lineno, format!("multiword token {} reaches past the last word {words}", t.id)));
            }
        }
    }
    Ok(())
}

/// Writes sentences as CoNLL-U text.
pub fn to_string(sentences: &[Sentence]) -> String {
    let mut out = String::new();
    for s in sentences {
        for c in &s.comments {
            let _ = writeln!(out, "#{c}");
        }
        for t in &s.tokens {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                t.id, t.form, t.lemma, t.upos, t.xpos, t.feats, t.head, t.deprel, t.deps, t.misc
            );
        }
        out.push('\n');
    }
    out
}

/// Reads whitespace-tokenized text: one sentence per non-blank line.
/// `path` only labels errors (invalid UTF-8, with its line).
pub fn parse_plain_text(bytes: &[u8], path: &Path) -> Result<Vec<Sentence>> {
    let mut sentences = Vec::new();
    for item in utf8_lines(bytes, path) {
        let (lineno, line) = item?;
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            sentences.push(Sentence { line: lineno, ..Sentence::from_words(&words) });
        }
    }
    Ok(sentences)
}

/// True when the text looks like CoNLL-U (a comment or a 10-column token line
/// comes first), false for plain whitespace-tokenized text.
pub fn looks_like_conllu(text: &str) -> bool {
    text.lines().find(|l| !l.trim().is_empty()).map(|l| l.starts_with('#') || l.split('\t').count() == 10).unwrap_or(false)
}

/// The standard UD file names inside a treebank directory.
#[derive(Debug, Clone)]
pub struct TreebankFiles {
    pub train: PathBuf,
    pub dev: PathBuf,
    pub test: Option<PathBuf>,
}

/// Finds `*-ud-train.conllu`, `*-ud-dev.conllu` and (optionally) `*-ud-test.conllu` in `dir`.
pub fn find_treebank(dir: impl AsRef<Path>) -> Result<TreebankFiles> {
    let dir = dir.as_ref();
    let [train, dev, test] = find_splits(dir)?;
    let missing = |split: &str| {
        Error::Input(format!(
            "{}: no *-ud-{split}.conllu file in this directory (a UD treebank directory holds *-ud-train.conllu and *-ud-dev.conllu)",
            dir.display()
        ))
    };
    Ok(TreebankFiles { train: train.ok_or_else(|| missing("train"))?, dev: dev.ok_or_else(|| missing("dev"))?, test })
}

/// The `*-ud-train.conllu`, `*-ud-dev.conllu` and `*-ud-test.conllu` files
/// of `dir`, each if present.
pub fn find_splits(dir: &Path) -> Result<[Option<PathBuf>; 3]> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let find = |split: &str| {
        names.iter().find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&format!("-ud-{split}.conllu")))).cloned()
    };
    Ok(["train", "dev", "test"].map(find))
}

/// Splits off the last `fraction` of `sentences` as a development set,
/// for a treebank without a dev file. The cut moves forward to the next
/// sentence that starts a paragraph or document (`# newpar`, `# newdoc`),
/// if there is one before the end, so that no paragraph straddles the two
/// sets. Deterministic: the same file gives the same split.
pub fn split_dev(mut sentences: Vec<Sentence>, fraction: f64) -> (Vec<Sentence>, Vec<Sentence>) {
    let n = sentences.len();
    if n < 2 {
        return (sentences, Vec::new());
    }
    let target = (((n as f64) * (1.0 - fraction)).round() as usize).clamp(1, n - 1);
    let starts_block =
        |s: &Sentence| s.comments.iter().any(|c| c.trim_start().starts_with("newpar") || c.trim_start().starts_with("newdoc"));
    let cut = (target..n).find(|&i| starts_block(&sentences[i])).unwrap_or(target);
    let dev = sentences.split_off(cut);
    (sentences, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# sent_id = 1\n# text = Don't go.\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_\n2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No\n3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t0:root\t_\n4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n\n# sent_id = 2\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n";

    fn parse(s: &str) -> Result<Vec<Sentence>> {
        parse_bytes(s.as_bytes(), Path::new("t.conllu"))
    }

    #[test]
    fn dev_fraction_takes_the_tail_from_a_paragraph_start() {
        let mut sentences: Vec<Sentence> = (0..10).map(|i| Sentence::from_words(&[format!("w{i}")])).collect();
        sentences[8].comments.push(" newpar".into());
        let (train, dev) = split_dev(sentences.clone(), 0.3);
        assert_eq!((train.len(), dev.len()), (8, 2), "the cut moves from 7 to the paragraph at 8");
        for s in sentences.iter_mut() {
            s.comments.clear();
        }
        let (train, dev) = split_dev(sentences.clone(), 0.3);
        assert_eq!((train.len(), dev.len()), (7, 3));
        let (train, dev) = split_dev(sentences, 0.001);
        assert_eq!((train.len(), dev.len()), (9, 1), "never an empty dev set");
    }

    #[test]
    fn reads_words_multiword_tokens_and_empty_nodes() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].comments, vec![" sent_id = 1", " text = Don't go."]);
        let words: Vec<&str> = s[0].words().map(|t| t.form.as_str()).collect();
        assert_eq!(words, ["Do", "n't", "go", "."]);
        assert_eq!(s[0].tokens[0].id, TokenId::Range(1, 2));
        assert_eq!(s[0].tokens[4].id, TokenId::Empty(3, 1));
        assert_eq!(s[1].line, 10);
    }

    #[test]
    fn round_trip_is_identical() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(to_string(&s), SAMPLE);
        assert_eq!(parse(&to_string(&s)).unwrap(), s);
    }

    #[test]
    fn missing_final_blank_line_is_accepted() {
        let s = parse("1\ta\t_\tX\t_\t_\t_\t_\t_\t_").unwrap();
        assert_eq!(s.len(), 1);
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        assert_eq!(err("1\ta\t_\n"), "t.conllu:1: expected 10 tab-separated columns, found 3");
        assert_eq!(
            err("1 a _ NOUN _ _ _ _ _ _\n"),
            "t.conllu:1: expected 10 tab-separated columns, found 1 (is the file space-separated?)"
        );
        assert_eq!(
            err("1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n3\tb\t_\tX\t_\t_\t_\t_\t_\t_\n"),
            "t.conllu:2: word ID 3 out of sequence (expected 2)"
        );
        assert_eq!(err("x\ta\t_\tX\t_\t_\t_\t_\t_\t_\n"), "t.conllu:1: invalid ID \"x\" (expected N, N-M or N.M)");
        assert_eq!(err(""), "t.conllu:1: no sentences in file (empty or only blank lines)");
        assert_eq!(err("\n\n# only a comment\n\n"), "t.conllu:3: sentence has no words (only comments or multiword/empty lines)");
        assert_eq!(
            err("1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n# late\n"),
            "t.conllu:2: comment line inside a sentence (comments must come before its first token)"
        );
        assert_eq!(
            err("1-3\tab\t_\t_\t_\t_\t_\t_\t_\t_\n1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n2\tb\t_\tX\t_\t_\t_\t_\t_\t_\n"),
            "t.conllu:4: multiword token 1-3 reaches past the last word 2"
        );
        assert_eq!(err("1\ta\t\tX\t_\t_\t_\t_\t_\t_\n"), "t.conllu:1: column 3 is empty (use _ for no value)");
        let bad = b"1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n\n1\t\xff\t_\tX\t_\t_\t_\t_\t_\t_\n";
        assert_eq!(parse_bytes(bad, Path::new("t.conllu")).unwrap_err().to_string(), "t.conllu:3: not valid UTF-8 (byte 3 of the line)");
    }

    #[test]
    fn plain_text_and_format_detection() {
        let s = parse_plain_text(b"The cat sat .\n\n  Hello  world \n", Path::new("t.txt")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].words().map(|t| t.form.clone()).collect::<Vec<_>>(), ["Hello", "world"]);
        assert_eq!(s[1].line, 3);
        assert_eq!(
            parse_plain_text(b"ok\nbad \xff\n", Path::new("t.txt")).unwrap_err().to_string(),
            "t.txt:2: not valid UTF-8 (byte 5 of the line)"
        );
        assert!(looks_like_conllu(SAMPLE));
        assert!(!looks_like_conllu("The cat sat ."));
    }
}
