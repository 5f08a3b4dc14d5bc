//! The raw-text segmenter: gradients reach every parameter, long
//! paragraphs labelled in slices match the whole, checkpoints round-trip,
//! and a small one learns tokens and sentences of a synthetic treebank.

use attend::checkpoint;
use attend::config::TrainConfig;
use attend::data::conllu::{Sentence, TokenId};
use attend::data::raw_text::{self, Paragraph};
use attend::data::synthetic::toy_raw_treebank;
use attend::models::segmenter::task::{self, train_segmenter};
use attend::models::segmenter::{CharBatch, SegmenterConfig};
use attend::nn::Ctx;
use attend::train::{RunOptions, Silent};
use rand::SeedableRng;
use std::path::Path;

fn treebank(count: usize, seed: u64) -> Vec<Sentence> {
    toy_raw_treebank(count, seed)
}

fn small() -> SegmenterConfig {
    SegmenterConfig { char_dim: 8, d_model: 16, heads: 2, layers: 2, ff_dim: 32, window: 4, ..SegmenterConfig::default() }
}

fn setup(seed: u64) -> (task::Prepared, attend::models::segmenter::Segmenter) {
    let (train, dev) = (treebank(120, seed), treebank(30, seed + 1));
    let p = task::prepare(&train, Path::new("train"), &dev, Path::new("dev")).unwrap();
    let model = task::new_model(&small(), &p.data, 3).unwrap();
    (p, model)
}

/// The first `n` training paragraphs encoded, as [`CharBatch::new`] takes them (owned ids and kinds).
fn encoded(p: &task::Prepared, n: usize) -> Vec<(Vec<u32>, Vec<u32>, &[u32])> {
    p.train
        .iter()
        .take(n)
        .map(|par| {
            let (ids, kinds) = p.data.encode(&par.chars);
            (ids, kinds, &par.labels[..])
        })
        .collect()
}

#[test]
fn every_parameter_gets_a_gradient() {
    let (p, model) = setup(1);
    let items = encoded(&p, 4);
    let refs: Vec<(&[u32], &[u32], &[u32])> = items.iter().map(|(a, b, c)| (&a[..], &b[..], *c)).collect();
    let batch = CharBatch::new(&refs).unwrap();
    let mut ctx = Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(1), rows: None };
    let grads = model.loss(&batch, &mut ctx).unwrap().backward().unwrap();
    for (name, var) in model.params.vars() {
        let g = grads.get(var).unwrap_or_else(|| panic!("{name} got no gradient"));
        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().any(|x| *x != 0.0), "{name} has an all-zero gradient");
    }
}

/// A data-parallel step's pieces add up to the whole batch's loss and
/// gradients (dropout off), whatever the cut.
#[test]
fn split_batch_losses_and_gradients_add_up_to_the_whole_batch() {
    let (p, _) = setup(1);
    let model = task::new_model(&SegmenterConfig { dropout: 0.0, ..small() }, &p.data, 3).unwrap();
    let items = encoded(&p, 9);
    let refs: Vec<(&[u32], &[u32], &[u32])> = items.iter().map(|(a, b, c)| (&a[..], &b[..], *c)).collect();
    let batch = CharBatch::new(&refs).unwrap();
    let ctx = || Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(1), rows: None };
    for parts in [2, 3, 9] {
        let split = model.split(&refs, parts).unwrap();
        assert_eq!(split.units, batch.lengths.iter().sum::<usize>());
        assert_eq!(split.pieces.len(), parts);
        let whole = model.loss(&batch, &mut ctx()).unwrap();
        let (loss_off, grad_off, name) = attend::train::split_discrepancy(&model.params, &whole, split, ctx).unwrap();
        assert!(loss_off <= 1e-5, "{parts} pieces: loss off by {loss_off}");
        assert!(grad_off <= 1e-4, "{parts} pieces: the gradient of {name} off by {grad_off} of its largest");
    }
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig { epochs, lr: 5e-3, warmup_steps: 10, batch_tokens: 1024, crop: 128, word_dropout: 0.0, ..TrainConfig::default() }
}

#[test]
fn learns_tokens_and_sentences_and_round_trips() {
    let (p, model) = setup(2);
    let summary = train_segmenter(&model, &p.data, &p.train, &p.dev, &cfg(30), RunOptions::default(), &mut Silent).unwrap();
    let r = &summary.best_dev;
    assert!(r.tokens.f1() > 0.97, "tokens F1 {}", r.tokens.f1());
    assert!(r.sentences.f1() > 0.9, "sentences F1 {}", r.sentences.f1());

    // Saved and loaded: the same labels.
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save_model(dir.path(), &model, &p.data, &cfg(30)).unwrap();
    let loaded = checkpoint::load::<attend::models::segmenter::Segmenter>(dir.path()).unwrap();
    let texts: Vec<&[char]> = p.dev.iter().map(|x| &x.chars[..]).collect();
    assert_eq!(loaded.model.label(&loaded.data, &texts).unwrap(), model.label(&p.data, &texts).unwrap());
    // Batches shared out among threads (attend::shard): the labels of one thread.
    let on = |threads: usize| {
        let pool = attend::rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| model.label(&p.data, &texts)).unwrap()
    };
    assert!(on(3) == on(1), "3 threads label otherwise than 1");
    assert_eq!(loaded.data.lexicon, p.data.lexicon);

    // A paragraph longer than one slice: labelled in slices with the
    // receptive field as context, it gets the labels of the whole pass.
    let long: Vec<char> = p.dev.iter().flat_map(|x| x.chars.iter().copied().chain([' '])).cycle().take(9000).collect();
    assert!(long.len() > attend::models::LONG_SLICE_WORDS + 2 * model.receptive_field());
    let sliced = model.label(&p.data, &[&long]).unwrap().remove(0);
    let best = model.label_whole(&p.data, &long).unwrap();
    let differ = sliced.iter().zip(&best).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} of {} labels differ between sliced and whole", long.len());
}

#[test]
fn decoded_output_scores_perfectly_against_its_source() {
    // Gold labels decoded and written back give the gold tokens, words and sentences.
    let mut gold = treebank(9, 7);
    // A multiword token, as UD writes "don't".
    let s = &mut gold[0];
    let mut range = s.tokens[0].clone();
    range.id = TokenId::Range(1, 2);
    let first = s.tokens[0].form.clone();
    let second = s.tokens[1].form.clone();
    range.form = format!("{first}{second}");
    s.tokens[0].misc = "_".into();
    s.tokens.insert(0, range);
    s.comments.retain(|c| !c.starts_with(" text"));
    let text = raw_text::sentence_text(s);
    s.comments.push(format!(" text = {text}"));
    let pars: Vec<Paragraph> = raw_text::paragraphs(&gold, Path::new("g")).unwrap();
    let lexicon = raw_text::MultiwordLexicon::build(&gold);
    let mut system = Vec::new();
    for (k, p) in pars.iter().enumerate() {
        let found = raw_text::decode(&p.chars, &p.labels);
        system.extend(raw_text::to_sentences(&p.chars, &found, &lexicon, system.len() + 1, (k + 1, k == 0)));
    }
    let g = attend::data::ud_eval::UdDocument::new(&gold, Path::new("g")).unwrap();
    let sy = attend::data::ud_eval::UdDocument::new(&system, Path::new("s")).unwrap();
    let e = attend::data::ud_eval::evaluate(&g, &sy, Path::new("g"), Path::new("s")).unwrap();
    for m in ["Tokens", "Sentences", "Words"] {
        assert_eq!(e.get(m).unwrap().f1(), 1.0, "{m}");
    }
}
