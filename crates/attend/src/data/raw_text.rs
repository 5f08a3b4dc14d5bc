//! Raw text and its segmentation: what a treebank says about the
//! characters of its text, and the way back from labelled characters to
//! tokens, words and sentences.
//!
//! Raw text is built as the CoNLL 2018 shared task built it: the `# text`
//! of each sentence; the sentences of a paragraph joined by a space;
//! paragraphs (`# newpar`) and documents (`# newdoc`) separated by a blank
//! line. Every character of a paragraph gets one of [`LABELS`]: inside a
//! token, the last character of a token (of a multiword token; of the last
//! token of a sentence), or space between tokens.

use crate::data::conllu::{parse_err, Sentence, Token, TokenId};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// A character inside a token, with more of the token after it.
pub const INSIDE: u32 = 0;
/// The last character of a token.
pub const TOKEN_END: u32 = 1;
/// The last character of a multiword token (split into words afterwards).
pub const MULTIWORD_END: u32 = 2;
/// The last character of a sentence's last token.
pub const SENTENCE_END: u32 = 3;
/// The last character of a sentence whose last token is a multiword token.
pub const MULTIWORD_SENTENCE_END: u32 = 4;
/// White space between tokens.
pub const SPACE: u32 = 5;
/// The labels, by id.
pub const LABELS: [&str; 6] = ["inside", "token-end", "multiword-end", "sentence-end", "multiword-sentence-end", "space"];

/// One paragraph of raw text with a label per character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    pub chars: Vec<char>,
    pub labels: Vec<u32>,
    /// Starts a new document (`# newdoc`).
    pub new_document: bool,
}

impl Paragraph {
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }
}

/// The value of a `# key = value` comment of `s` (`None` if absent).
pub fn comment_value<'a>(s: &'a Sentence, key: &str) -> Option<&'a str> {
    s.comments.iter().find_map(|c| {
        let c = c.trim_start();
        let rest = c.strip_prefix(key)?;
        let rest = rest.trim_start();
        Some(rest.strip_prefix('=').map_or(rest, |v| v.strip_prefix(' ').unwrap_or(v)))
    })
}

fn has_comment(s: &Sentence, key: &str) -> bool {
    s.comments.iter().any(|c| {
        let c = c.trim_start();
        c.strip_prefix(key).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '=']))
    })
}

/// The surface tokens of a sentence: multiword tokens, and words outside them.
pub fn surface_tokens(s: &Sentence) -> impl Iterator<Item = &Token> {
    let mut inside_until = 0;
    s.tokens.iter().filter(move |t| match t.id {
        TokenId::Range(_, b) => {
            inside_until = b;
            true
        }
        TokenId::Word(n) => n > inside_until,
        TokenId::Empty(..) => false,
    })
}

fn space_after(t: &Token) -> bool {
    !t.misc.split('|').any(|m| m == "SpaceAfter=No")
}

/// A sentence's text: its `# text` comment, else its tokens with the
/// spaces `SpaceAfter` gives.
pub fn sentence_text(s: &Sentence) -> String {
    if let Some(t) = comment_value(s, "text") {
        return t.to_string();
    }
    let mut out = String::new();
    let tokens: Vec<&Token> = surface_tokens(s).collect();
    for (i, t) in tokens.iter().enumerate() {
        out.push_str(&t.form);
        if i + 1 < tokens.len() && space_after(t) {
            out.push(' ');
        }
    }
    out
}

/// Labels the characters of one sentence's text from its tokens.
fn label_sentence(s: &Sentence, text: &[char], path: &Path) -> Result<Vec<u32>> {
    let mut labels = vec![SPACE; text.len()];
    let mut p = 0;
    let tokens: Vec<&Token> = surface_tokens(s).collect();
    for (k, t) in tokens.iter().enumerate() {
        while p < text.len() && text[p].is_whitespace() {
            p += 1;
        }
        let form: Vec<char> = t.form.chars().filter(|c| !c.is_whitespace()).collect();
        // Match the form, skipping any spaces the text has inside it.
        let start = p;
        let mut matched = 0;
        while matched < form.len() && p < text.len() {
            if text[p] == form[matched] {
                matched += 1;
                labels[p] = INSIDE;
            } else if !(text[p].is_whitespace() && matched > 0) {
                break;
            }
            p += 1;
        }
        if matched < form.len() {
            let line = s.line + s.comments.len() + s.tokens.iter().position(|x| std::ptr::eq(x, *t)).unwrap_or(0);
            let near: String = text[start.min(text.len())..].iter().take(20).collect();
            return Err(parse_err(path, line, format!("token {:?} does not match the sentence's # text at {near:?}", t.form)));
        }
        let mwt = matches!(t.id, TokenId::Range(..));
        labels[p - 1] = match (k + 1 == tokens.len(), mwt) {
            (false, false) => TOKEN_END,
            (false, true) => MULTIWORD_END,
            (true, false) => SENTENCE_END,
            (true, true) => MULTIWORD_SENTENCE_END,
        };
    }
    if let Some(extra) = text[p..].iter().position(|c| !c.is_whitespace()) {
        let tail: String = text[p + extra..].iter().take(20).collect();
        return Err(parse_err(path, s.line, format!("the sentence's # text goes on after its last token: {tail:?}")));
    }
    Ok(labels)
}

/// The paragraphs of a treebank, with a label per character.
pub fn paragraphs(sentences: &[Sentence], path: &Path) -> Result<Vec<Paragraph>> {
    let mut out: Vec<Paragraph> = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let new_document = i == 0 || has_comment(s, "newdoc");
        if new_document || has_comment(s, "newpar") || out.is_empty() {
            out.push(Paragraph { chars: Vec::new(), labels: Vec::new(), new_document });
        }
        let text: Vec<char> = sentence_text(s).chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
        let labels = label_sentence(s, &text, path)?;
        let par = out.last_mut().expect("pushed above");
        if !par.chars.is_empty() {
            par.chars.push(' ');
            par.labels.push(SPACE);
        }
        par.chars.extend(text);
        par.labels.extend(labels);
    }
    Ok(out)
}

/// The raw text of a treebank as the CoNLL 2018 shared task built it.
pub fn shared_task_text(sentences: &[Sentence], path: &Path) -> Result<String> {
    let pars = paragraphs(sentences, path)?;
    let mut out = String::new();
    for (i, p) in pars.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.extend(p.chars.iter());
    }
    out.push('\n');
    Ok(out)
}

/// How multiword tokens split into words: the splits seen in training, by
/// lowercased form, and the word-final pieces they end in (`n't`, `'s`),
/// for forms never seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiwordLexicon {
    /// Lowercased form -> its words, lowercased (the most frequent split).
    pub forms: HashMap<String, Vec<String>>,
    /// Lowercased final words that end two or more split forms, longest first.
    pub suffixes: Vec<String>,
    /// For each form in `forms`: (times it was a multiword token, times it
    /// was a token at all) in training.
    #[serde(default)]
    pub counts: HashMap<String, (u32, u32)>,
}

impl MultiwordLexicon {
    pub fn build(sentences: &[Sentence]) -> Self {
        let mut tokens: HashMap<String, u32> = HashMap::new();
        for s in sentences {
            for t in surface_tokens(s) {
                *tokens.entry(t.form.to_lowercase()).or_default() += 1;
            }
        }
        let mut counts: HashMap<String, HashMap<Vec<String>, usize>> = HashMap::new();
        for s in sentences {
            for (k, t) in s.tokens.iter().enumerate() {
                let TokenId::Range(a, b) = t.id else { continue };
                let words: Vec<String> = s.tokens[k + 1..]
                    .iter()
                    .filter(|w| matches!(w.id, TokenId::Word(n) if (a..=b).contains(&n)))
                    .map(|w| w.form.to_lowercase())
                    .collect();
                *counts.entry(t.form.to_lowercase()).or_default().entry(words).or_default() += 1;
            }
        }
        let mut forms = HashMap::new();
        let mut suffix_count: HashMap<String, usize> = HashMap::new();
        let mut shares = HashMap::new();
        for (form, splits) in counts {
            let mwt: usize = splits.values().sum();
            shares.insert(form.clone(), (mwt as u32, tokens.get(&form).copied().unwrap_or(0)));
            let (words, _) = splits.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).expect("one split at least");
            if words.len() == 2 && words.concat() == form && !words[0].is_empty() {
                *suffix_count.entry(words[1].clone()).or_default() += 1;
            }
            forms.insert(form, words);
        }
        let mut suffixes: Vec<String> = suffix_count.into_iter().filter(|(_, n)| *n >= 2).map(|(s, _)| s).collect();
        suffixes.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then_with(|| a.cmp(b)));
        MultiwordLexicon { forms, suffixes, counts: shares }
    }

    /// Whether a token is a multiword token: the training data decides for
    /// a form seen at least 3 times and split 4 times in 5 or more, or
    /// seen at least 5 times and split at most 1 time in 10; the model's
    /// `guess` decides otherwise.
    pub fn is_multiword(&self, form: &str, guess: bool) -> bool {
        match self.counts.get(&form.to_lowercase()) {
            Some(&(mwt, total)) if total >= 3 && mwt * 5 >= total * 4 => true,
            Some(&(mwt, total)) if total >= 5 && mwt * 10 <= total => false,
            _ => guess,
        }
    }

    /// The words of a token marked multiword: its split from training (cut
    /// from the token itself when the words spell it, keeping its case),
    /// else split before the longest known final piece, else the token
    /// alone.
    pub fn split(&self, form: &str) -> Vec<String> {
        let lower = form.to_lowercase();
        let cut = |lens: &[usize]| -> Option<Vec<String>> {
            // Only when lowercasing kept every character's count.
            let chars: Vec<char> = form.chars().collect();
            if chars.len() != lower.chars().count() || lens.iter().sum::<usize>() != chars.len() || lens.contains(&0) {
                return None;
            }
            let mut at = 0;
            Some(
                lens.iter()
                    .map(|&n| {
                        let w: String = chars[at..at + n].iter().collect();
                        at += n;
                        w
                    })
                    .collect(),
            )
        };
        if let Some(words) = self.forms.get(&lower) {
            if words.concat() == lower {
                let lens: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
                if let Some(w) = cut(&lens) {
                    return w;
                }
            }
            return words.clone();
        }
        let n = lower.chars().count();
        for suffix in &self.suffixes {
            let m = suffix.chars().count();
            if m < n && lower.ends_with(suffix.as_str()) {
                if let Some(w) = cut(&[n - m, m]) {
                    return w;
                }
            }
        }
        vec![form.to_string()]
    }
}

/// One token found in raw text: characters `start..end` of its paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken {
    pub start: usize,
    pub end: usize,
    pub multiword: bool,
}

/// Sentences (lists of tokens) from per-character labels. White space
/// always separates tokens; the paragraph's end always ends a sentence.
pub fn decode(chars: &[char], labels: &[u32]) -> Vec<Vec<FoundToken>> {
    let mut sentences = Vec::new();
    let mut current: Vec<FoundToken> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, (&c, &l)) in chars.iter().zip(labels).enumerate() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                current.push(FoundToken { start: s, end: i, multiword: false });
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        if matches!(l, TOKEN_END | MULTIWORD_END | SENTENCE_END | MULTIWORD_SENTENCE_END | SPACE) {
            let s = start.take().expect("set above");
            current.push(FoundToken { start: s, end: i + 1, multiword: matches!(l, MULTIWORD_END | MULTIWORD_SENTENCE_END) });
            if matches!(l, SENTENCE_END | MULTIWORD_SENTENCE_END) {
                sentences.push(std::mem::take(&mut current));
            }
        }
    }
    if let Some(s) = start {
        current.push(FoundToken { start: s, end: chars.len(), multiword: false });
    }
    if !current.is_empty() {
        sentences.push(current);
    }
    sentences
}

/// CoNLL-U sentences from decoded tokens: `# text`, `SpaceAfter=No`,
/// multiword tokens split by `lexicon`, and a flat tree (see
/// `docs/raw-text.md`): the first word is the root, every other word
/// depends on it with `dep`, so standard tools read the file.
pub fn to_sentences(
    chars: &[char],
    found: &[Vec<FoundToken>],
    lexicon: &MultiwordLexicon,
    first_id: usize,
    par: (usize, bool),
) -> Vec<Sentence> {
    let mut out = Vec::with_capacity(found.len());
    for (k, tokens) in found.iter().enumerate() {
        let mut s = Sentence::default();
        if k == 0 && par.1 {
            s.comments.push(" newdoc".into());
        }
        if k == 0 {
            s.comments.push(format!(" newpar id = p{}", par.0));
        }
        s.comments.push(format!(" sent_id = {}", first_id + k));
        let (a, b) = (tokens[0].start, tokens.last().expect("a sentence has a token").end);
        let text: String = chars[a..b].iter().map(|&c| if c.is_whitespace() { ' ' } else { c }).collect();
        s.comments.push(format!(" text = {text}"));
        let mut n = 0;
        for (j, t) in tokens.iter().enumerate() {
            let form: String = chars[t.start..t.end].iter().collect();
            let next = tokens.get(j + 1).map(|x| x.start).unwrap_or(b);
            let glued = j + 1 < tokens.len() && next == t.end;
            let misc = if glued { "SpaceAfter=No".to_string() } else { "_".to_string() };
            let words = if lexicon.is_multiword(&form, t.multiword) { lexicon.split(&form) } else { vec![form.clone()] };
            if words.len() > 1 {
                let mut range = Token::word(0, &form);
                range.id = TokenId::Range(n + 1, n + words.len());
                range.misc = misc.clone();
                s.tokens.push(range);
                for w in &words {
                    n += 1;
                    s.tokens.push(Token::word(n, w));
                }
            } else {
                n += 1;
                let mut w = Token::word(n, &form);
                w.misc = misc;
                s.tokens.push(w);
            }
        }
        fill_flat_tree(&mut s);
        out.push(s);
    }
    out
}

/// Gives a sentence whose words all have HEAD `_` (nothing parsed it) a
/// flat tree: word 1 is the root, every other word depends on it as
/// `dep`. Standard tools need a tree in HEAD; this one says nothing.
pub fn fill_flat_tree(s: &mut Sentence) {
    if s.words().all(|w| w.head == "_") {
        for t in s.words_mut() {
            let TokenId::Word(i) = t.id else { continue };
            (t.head, t.deprel) = if i == 1 { ("0".into(), "root".into()) } else { ("1".into(), "dep".into()) };
        }
    }
}

/// A paragraph of raw input: its characters (lines joined by a space) and
/// the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawParagraph {
    pub chars: Vec<char>,
    pub first_line: usize,
}

/// Reads raw text a paragraph at a time (blank lines end paragraphs) in
/// memory bounded by `max_chars` per paragraph: a longer one (a 10 MB line
/// without a break) is cut at its last white space, or at the limit.
/// Invalid UTF-8 and control characters are errors naming the line and
/// byte; tabs, vertical tabs and form feeds count as spaces.
pub struct ParagraphReader<R> {
    reader: R,
    path: std::path::PathBuf,
    max_chars: usize,
    /// Lines read so far; the line being read is `line + 1`.
    line: usize,
    /// Bytes of the current line already decoded (a line read in pieces).
    line_bytes: usize,
    /// The end of a character cut by a piece boundary.
    carry: Vec<u8>,
    current: Vec<char>,
    first_line: usize,
    done: bool,
}

/// Longest piece of a line read at once.
const PIECE_BYTES: u64 = 1 << 20;

impl<R: std::io::BufRead> ParagraphReader<R> {
    pub fn new(reader: R, path: &Path, max_chars: usize) -> Self {
        ParagraphReader {
            reader,
            path: path.to_path_buf(),
            max_chars: max_chars.max(2),
            line: 0,
            line_bytes: 0,
            carry: Vec::new(),
            current: Vec::new(),
            first_line: 1,
            done: false,
        }
    }

    fn err(&self, message: String) -> Error {
        Error::Parse { path: self.path.clone(), line: self.line + 1, message }
    }

    /// Takes the current paragraph, or its first `max_chars` (cut after
    /// its last white space when there is one in the second half).
    fn take(&mut self, all: bool) -> RawParagraph {
        let cut = if all || self.current.len() <= self.max_chars {
            self.current.len()
        } else {
            let limit = self.max_chars;
            self.current[limit / 2..limit].iter().rposition(|c| c.is_whitespace()).map_or(limit, |i| limit / 2 + i + 1)
        };
        let rest = self.current.split_off(cut);
        let chars = std::mem::replace(&mut self.current, rest);
        let p = RawParagraph { chars, first_line: self.first_line };
        self.first_line = self.line + 1;
        p
    }

    fn next_paragraph(&mut self) -> Result<Option<RawParagraph>> {
        use std::io::{BufRead, Read};
        loop {
            if self.current.len() > self.max_chars {
                return Ok(Some(self.take(false)));
            }
            if self.done {
                let has_text = self.current.iter().any(|c| !c.is_whitespace());
                return Ok(if has_text { Some(self.take(true)) } else { None });
            }
            let mut piece = std::mem::take(&mut self.carry);
            let carried = piece.len();
            (&mut self.reader).take(PIECE_BYTES).read_until(b'\n', &mut piece).map_err(|e| Error::io(&self.path, e))?;
            if piece.len() == carried {
                self.done = true;
                if !piece.is_empty() {
                    return Err(
                        self.err(format!("not valid UTF-8 (the file ends inside a character, byte {} of the line)", self.line_bytes + 1))
                    );
                }
                if self.line_bytes > 0 {
                    // A last line without its newline reads as one with it:
                    // "text" and "text\n" give the same paragraph.
                    self.current.push(' ');
                    self.line += 1;
                }
                continue;
            }
            let complete = piece.last() == Some(&b'\n');
            let body = if complete { &piece[..piece.len() - 1] } else { &piece[..] };
            let text = match std::str::from_utf8(body) {
                Ok(t) => t,
                Err(e) if e.error_len().is_none() && !complete => {
                    // A character cut by the piece boundary: finish it next time.
                    self.carry = body[e.valid_up_to()..].to_vec();
                    std::str::from_utf8(&body[..e.valid_up_to()]).expect("valid prefix")
                }
                Err(e) => return Err(self.err(format!("not valid UTF-8 (byte {} of the line)", self.line_bytes + e.valid_up_to() + 1))),
            };
            if let Some((i, c)) = text.char_indices().find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\r' | '\u{b}' | '\u{c}')) {
                return Err(self.err(format!(
                    "control character U+{:04X} at byte {} of the line (raw text cannot hold it)",
                    c as u32,
                    self.line_bytes + i + 1
                )));
            }
            let blank = complete && self.line_bytes == 0 && text.trim().is_empty();
            if blank {
                self.line += 1;
                if self.current.iter().any(|c| !c.is_whitespace()) {
                    return Ok(Some(self.take(true)));
                }
                self.current.clear();
                self.first_line = self.line + 1;
                continue;
            }
            if self.current.is_empty() {
                self.first_line = self.line + 1;
            }
            self.current.extend(text.chars().map(|c| if c.is_whitespace() { ' ' } else { c }));
            if complete {
                self.current.push(' ');
                self.line += 1;
                self.line_bytes = 0;
            } else {
                self.line_bytes += body.len() - self.carry.len();
            }
        }
    }
}

impl<R: std::io::BufRead> Iterator for ParagraphReader<R> {
    type Item = Result<RawParagraph>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_paragraph() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                self.current.clear();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::conllu::parse_bytes;

    const DOC: &str = "# newdoc id = d1\n# newpar id = p1\n# sent_id = 1\n# text = Don't go.\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\t_\tAUX\t_\t_\t3\taux\t_\t_\n2\tn't\t_\tPART\t_\t_\t3\tadvmod\t_\t_\n3\tgo\t_\tVERB\t_\t_\t0\troot\t_\tSpaceAfter=No\n4\t.\t_\tPUNCT\t_\t_\t3\tpunct\t_\t_\n\n# sent_id = 2\n# text = Hi there\n1\tHi\t_\tINTJ\t_\t_\t0\troot\t_\t_\n2\tthere\t_\tADV\t_\t_\t1\tadvmod\t_\t_\n\n# newpar id = p2\n# sent_id = 3\n# text = Bob's\n1-2\tBob's\t_\t_\t_\t_\t_\t_\t_\t_\n1\tBob\t_\tPROPN\t_\t_\t0\troot\t_\t_\n2\t's\t_\tPART\t_\t_\t1\tcase\t_\t_\n\n";

    fn doc() -> Vec<Sentence> {
        parse_bytes(DOC.as_bytes(), Path::new("t")).unwrap()
    }

    #[test]
    fn text_and_labels_follow_the_shared_task() {
        let s = doc();
        assert_eq!(shared_task_text(&s, Path::new("t")).unwrap(), "Don't go. Hi there\n\nBob's\n");
        let p = paragraphs(&s, Path::new("t")).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].new_document && !p[1].new_document);
        let l: String = p[0].labels.iter().map(|&l| ['i', 't', 'm', 's', 'M', '_'][l as usize]).collect();
        assert_eq!(p[0].text(), "Don't go. Hi there");
        assert_eq!(l, "iiiim_its_it_iiiis");
        assert_eq!(p[1].labels.last(), Some(&MULTIWORD_SENTENCE_END));
    }

    #[test]
    fn decode_inverts_the_labels() {
        let s = doc();
        let p = paragraphs(&s, Path::new("t")).unwrap();
        let lex = MultiwordLexicon::build(&s);
        let found = decode(&p[0].chars, &p[0].labels);
        assert_eq!(found.len(), 2);
        let out = to_sentences(&p[0].chars, &found, &lex, 1, (1, true));
        let text = crate::data::conllu::to_string(&out);
        assert!(
            text.starts_with("# newdoc\n# newpar id = p1\n# sent_id = 1\n# text = Don't go.\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\t"),
            "{text}"
        );
        assert!(text.contains("3\tgo\t_\t_\t_\t_\t1\tdep\t_\tSpaceAfter=No\n4\t.\t_\t_\t_\t_\t1\tdep\t_\t_\n\n# sent_id = 2\n"), "{text}");
        // The words of the output align with the gold ones.
        let gold = crate::data::ud_eval::UdDocument::new(&s[..2], Path::new("g")).unwrap();
        let sys = crate::data::ud_eval::UdDocument::new(&out, Path::new("s")).unwrap();
        let e = crate::data::ud_eval::evaluate(&gold, &sys, Path::new("g"), Path::new("s")).unwrap();
        for m in ["Tokens", "Sentences", "Words"] {
            assert_eq!(e.get(m).unwrap().f1(), 1.0, "{m}");
        }
    }

    #[test]
    fn multiword_lexicon_splits_seen_and_unseen_forms() {
        let mut s = doc();
        s.extend(
            parse_bytes(
                b"1-2\tAnn's\t_\t_\t_\t_\t_\t_\t_\t_\n1\tAnn\t_\t_\t_\t_\t0\troot\t_\t_\n2\t's\t_\t_\t_\t_\t1\tcase\t_\t_\n\n",
                Path::new("t"),
            )
            .unwrap(),
        );
        let lex = MultiwordLexicon::build(&s);
        assert_eq!(lex.split("DON'T"), ["DO", "N'T"]);
        assert_eq!(lex.split("Kim's"), ["Kim", "'s"]);
        assert_eq!(lex.split("xyz"), ["xyz"]);
        // Seen too rarely to overrule the model.
        assert!(lex.is_multiword("don't", true) && !lex.is_multiword("don't", false));
        let mut many = s.clone();
        for _ in 0..5 {
            many.extend(s.clone());
        }
        let lex = MultiwordLexicon::build(&many);
        assert!(lex.is_multiword("Don't", false), "always split in training");
    }

    fn read_all(bytes: &[u8], max: usize) -> Result<Vec<(String, usize)>> {
        ParagraphReader::new(bytes, Path::new("in.txt"), max)
            .map(|p| p.map(|p| (p.chars.iter().collect::<String>(), p.first_line)))
            .collect()
    }

    #[test]
    fn paragraphs_are_read_in_bounded_pieces_with_clear_errors() {
        let got = read_all(b"Hello\nworld.\n\n\n  \nNext one\tok\r\n", 100).unwrap();
        assert_eq!(got, [("Hello world. ".to_string(), 1), ("Next one ok  ".to_string(), 6)]);
        assert!(read_all(b"", 100).unwrap().is_empty());
        assert!(read_all(b"\n \n\n", 100).unwrap().is_empty());
        // A long line without breaks comes in pieces of at most the limit, cut after spaces when it can.
        let got = read_all(b"aaaa bbbb cccc", 8).unwrap();
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["aaaa ", "bbbb ", "cccc "]);
        let got = read_all(&[b'x'; 20], 8).unwrap();
        assert_eq!(got.iter().map(|g| g.0.len()).collect::<Vec<_>>(), [8, 8, 5]);
        // The last line's newline changes nothing (documents joined by blank lines read as each alone).
        assert_eq!(read_all(b"One.\n\nTwo\nthree.", 100).unwrap(), read_all(b"One.\n\nTwo\nthree.\n", 100).unwrap());
        let e = read_all(b"ok\nbad \xff here\n", 100).unwrap_err().to_string();
        assert_eq!(e, "in.txt:2: not valid UTF-8 (byte 5 of the line)");
        let e = read_all(b"ok\n\nnul \x00\n", 100).unwrap_err().to_string();
        assert_eq!(e, "in.txt:3: control character U+0000 at byte 5 of the line (raw text cannot hold it)");
        let e = read_all("caf\u{e9}".as_bytes().split_last().unwrap().1, 100).unwrap_err().to_string();
        assert!(e.starts_with("in.txt:1: not valid UTF-8 (the file ends inside a character"), "{e}");
    }

    #[test]
    fn decode_handles_no_sentence_end_and_model_spaces() {
        let chars: Vec<char> = "ab cd".chars().collect();
        let found = decode(&chars, &[INSIDE, INSIDE, SPACE, INSIDE, INSIDE]);
        assert_eq!(found, vec![vec![FoundToken { start: 0, end: 2, multiword: false }, FoundToken { start: 3, end: 5, multiword: false }]]);
        assert!(decode(&[], &[]).is_empty());
    }
}
