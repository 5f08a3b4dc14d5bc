//! Entry points for fuzzing the readers: CoNLL-U, graph directories, tagger
//! checkpoints, TOML configs, vector sequences (`.ts`, vector text, `.npz`)
//! raw text (the paragraph reader, per-character labels, the CoNLL 2018 metrics)
//! and Python pickles (the Planetoid release's NumPy and SciPy objects). Each takes arbitrary bytes and must return
//! (an error is fine) without panicking, hanging or exhausting memory.
//!
//! `fuzz/` runs them under cargo-fuzz (libFuzzer); `tests/fuzz_smoke.rs`
//! runs them on a fixed set of mutated inputs in every `cargo test`, plus
//! every input in `fuzz/regressions/`. See docs/robustness.md.

use crate::checkpoint;
use crate::config::Settings;
use crate::data::{conllu, planetoid, series};
use crate::models::tagger::config::TaggerSettings;
use crate::models::Tagger;
use attend_kernels::graph::{EdgeOptions, Graph};
use std::path::Path;

/// Largest model a fuzzed checkpoint may build (the library allows 2^30
/// parameters; fuzzing keeps each run small).
const FUZZ_MAX_PARAMETERS: u128 = 1 << 20;
/// Largest dense feature matrix a fuzzed graph may allocate.
const FUZZ_MAX_FLOATS: u64 = 1 << 22;

/// Splits `data` at the first `n - 1` zero bytes (missing parts are empty).
fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|&b| b == 0) {
            Some(p) => {
                *slot = &rest[..p];
                rest = &rest[p + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[..0];
            }
        }
    }
    out
}

/// CoNLL-U and plain text. A file that reads is written back and must read
/// back to the same sentences.
pub fn conllu(data: &[u8]) {
    let path = Path::new("fuzz.conllu");
    if let Ok(sentences) = conllu::parse_bytes(data, path) {
        let text = conllu::to_string(&sentences);
        let again = conllu::parse_bytes(text.as_bytes(), path).expect("CoNLL-U that attend wrote reads back");
        assert_eq!(again.len(), sentences.len(), "round trip changed the sentence count");
        for (a, b) in again.iter().zip(&sentences) {
            assert_eq!((&a.comments, &a.tokens), (&b.comments, &b.tokens), "round trip changed a sentence");
        }
    }
    let _ = conllu::parse_plain_text(data, path);
}

/// Raw text and raw-text CoNLL-U: the paragraph reader (with a tiny
/// paragraph limit, so cutting runs too) keeps every non-space character;
/// a CoNLL-U file that reads is labelled per character (an error is fine),
/// decoded, written back, and scores 100% Tokens and Sentences against
/// itself; the CoNLL 2018 metrics of the file against itself are perfect.
pub fn raw_text(data: &[u8]) {
    use crate::data::{raw_text, ud_eval};
    let path = Path::new("fuzz.txt");
    let mut kept = 0;
    for p in raw_text::ParagraphReader::new(data, path, 7) {
        match p {
            Ok(p) => kept += p.chars.iter().filter(|c| !c.is_whitespace()).count(),
            Err(_) => return,
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let expected = text.chars().filter(|c| !c.is_whitespace()).count();
        assert_eq!(kept, expected, "the paragraph reader lost or added characters");
    }
    let Ok(sentences) = conllu::parse_bytes(data, path) else { return };
    if let Ok(doc) = ud_eval::UdDocument::new(&sentences, path) {
        let e = ud_eval::evaluate(&doc, &doc, path, path).expect("a file matches itself");
        assert_eq!(e.get("Words").map(|s| s.f1()), Some(if doc.word_count() > 0 { 1.0 } else { 0.0 }));
    }
    let Ok(pars) = raw_text::paragraphs(&sentences, path) else { return };
    let lexicon = raw_text::MultiwordLexicon::build(&sentences);
    let mut system = Vec::new();
    for (k, p) in pars.iter().enumerate() {
        assert_eq!(p.chars.len(), p.labels.len());
        let found = raw_text::decode(&p.chars, &p.labels);
        system.extend(raw_text::to_sentences(&p.chars, &found, &lexicon, system.len() + 1, (k + 1, k == 0)));
    }
    let written = conllu::to_string(&system);
    conllu::parse_bytes(written.as_bytes(), path).expect("CoNLL-U that attend wrote reads back");
}

/// A graph directory as `nodes.tsv \0 edges.tsv \0 split`.
pub fn graph(data: &[u8]) {
    let [nodes, edges, split] = parts::<3>(data);
    let Ok((features, dim, labels)) = planetoid::parse_nodes_within(nodes, Path::new("nodes.tsv"), 0, FUZZ_MAX_FLOATS) else {
        return;
    };
    assert_eq!(features.len(), labels.len() * dim);
    if let Ok(edges) = planetoid::parse_edges(edges, Path::new("edges.tsv"), labels.len()) {
        let (g, stats) = Graph::from_edges(labels.len(), &edges, EdgeOptions::default()).expect("parsed edges are in range");
        assert_eq!(g.edges(), stats.edges);
    }
    let _ = planetoid::parse_split(split, Path::new("train.txt"), &labels);
}

/// A tagger checkpoint as `config.json \0 vocab.json \0 model.safetensors`.
pub fn checkpoint(data: &[u8]) {
    let [config, vocab, weights] = parts::<3>(data);
    let dir = Path::new("fuzz");
    if let Ok(c) = checkpoint::parse_config::<Tagger>(&dir.join("config.json"), config) {
        if c.model.parameter_count() > FUZZ_MAX_PARAMETERS {
            return;
        }
    }
    let files = [("config.json", config), ("vocab.json", vocab), ("model.safetensors", weights)];
    let _ = checkpoint::load_from_bytes::<Tagger>(dir, files.into_iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect());
}

/// A TOML tagger config.
pub fn config(data: &[u8]) {
    let _ = TaggerSettings::from_toml(&String::from_utf8_lossy(data));
}

/// Vector sequences: the `.ts`, vector text and `.npz` readers. A `.ts` or
/// vector text file that reads is written back and must read back the same.
pub fn series(data: &[u8]) {
    let same = |a: &series::SeriesSet, b: &series::SeriesSet| {
        assert_eq!((a.dims, a.target, a.series.len()), (b.dims, b.target, b.series.len()), "round trip changed the set");
        for (x, y) in a.series.iter().zip(&b.series) {
            assert_eq!((x.len, &x.label), (y.len, &y.label), "round trip changed a sequence");
            assert!(x.values.iter().zip(&y.values).all(|(p, q)| p == q || (p.is_nan() && q.is_nan())), "round trip changed values");
        }
    };
    if let Ok(set) = series::parse_ts(data, Path::new("fuzz.ts")) {
        if let Ok(text) = series::to_ts_string(&set) {
            let again = series::parse_ts(text.as_bytes(), Path::new("fuzz.ts")).expect(".ts that attend wrote reads back");
            same(&set, &again);
        }
    }
    if let Ok(set) = series::parse_text(data, Path::new("fuzz.txt")) {
        let again = series::parse_text(series::to_text_string(&set).as_bytes(), Path::new("fuzz.txt"))
            .expect("vector text that attend wrote reads back");
        same(&set, &again);
    }
    let _ = series::parse_npz_within(data, Path::new("fuzz.npz"), FUZZ_MAX_FLOATS);
}

/// A Python pickle: read, then decoded as a NumPy array and as a SciPy CSR
/// matrix (each may fail), with a small cap on the dense size.
pub fn pickle(data: &[u8]) {
    use crate::data::pickle;
    let Ok(v) = pickle::load(data, "fuzz.pkl") else { return };
    if let Ok(a) = pickle::ndarray(&v) {
        assert_eq!(a.data.len(), a.shape.iter().product::<usize>());
    }
    if let Ok(m) = pickle::csr_matrix_within(&v, 1 << 20) {
        assert_eq!(m.data.len(), m.shape[0] * m.shape[1]);
    }
    let _ = v.entries();
    let _ = v.class_name();
}

/// Small pickles written the way Python 2 wrote the Planetoid release
/// (protocol 2): a NumPy `f4` array of shape (2, 3) holding 0.5, 1, ..., 3,
/// and a SciPy CSR matrix of shape (2, 3) with 1.5 at (0, 2) and 2 at (1, 0).
pub fn sample_pickles() -> [Vec<u8>; 2] {
    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(b'U');
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    fn array(out: &mut Vec<u8>, code: &str, shape: &[u8], raw: &[u8]) {
        out.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85");
        text(out, "b");
        out.extend_from_slice(b"\x87R(K\x01");
        for &d in shape {
            out.extend_from_slice(&[b'K', d]);
        }
        out.push(0x84 + shape.len() as u8); // TUPLE1 / TUPLE2
        out.extend_from_slice(b"cnumpy\ndtype\n");
        text(out, code);
        out.extend_from_slice(b"K\x00K\x01\x87R(K\x03");
        text(out, "<");
        out.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(raw);
        out.extend_from_slice(b"tb");
    }
    let f4 = |xs: &[f32]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let i4 = |xs: &[i32]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut dense = b"\x80\x02".to_vec();
    array(&mut dense, "f4", &[2, 3], &f4(&[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]));
    dense.push(b'.');
    let mut csr = b"\x80\x02cscipy.sparse.csr\ncsr_matrix\n)\x81}(".to_vec();
    text(&mut csr, "_shape");
    csr.extend_from_slice(b"K\x02K\x03\x86");
    text(&mut csr, "indptr");
    array(&mut csr, "i4", &[3], &i4(&[0, 1, 2]));
    text(&mut csr, "indices");
    array(&mut csr, "i4", &[2], &i4(&[2, 0]));
    text(&mut csr, "data");
    array(&mut csr, "f4", &[2], &f4(&[1.5, 2.0]));
    csr.extend_from_slice(b"ub.");
    [dense, csr]
}
