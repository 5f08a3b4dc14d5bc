//! Raw text through a tagger and its segmenter: many documents tagged
//! together give what each gives alone, and a document that cannot be
//! read fails alone.

use attend::api::text::{segmenter_dir, TextTagger};
use attend::data::conllu;
use attend::data::synthetic::toy_raw_treebank;
use attend::data::vocab::Column;
use attend::models::segmenter::{task as seg, SegmenterConfig};
use attend::models::tagger::config::TaggerSettings;
use std::path::Path;
use std::sync::OnceLock;

/// A tiny tagger with its segmenter, trained once for every test here.
fn trained() -> &'static (tempfile::TempDir, TextTagger) {
    static TAGGER: OnceLock<(tempfile::TempDir, TextTagger)> = OnceLock::new();
    TAGGER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (train, dev) = (toy_raw_treebank(300, 1), toy_raw_treebank(60, 2));
        let mut s = TaggerSettings::default();
        (s.model.encoder.d_model, s.model.encoder.heads, s.model.encoder.ff_dim) = (32, 4, 64);
        (s.model.word_dim, s.model.char_dim, s.model.char_filters) = (16, 8, 24);
        (s.train.epochs, s.train.lr, s.train.warmup_steps, s.train.batch_tokens, s.train.seed) = (10, 3e-3, 20, 256, 5);
        let job = attend::api::tagger::TaggerJob::new(&train, &Column::ALL, &s).unwrap();
        job.run(&train, &dev, Some(dir.path()), None, &mut attend::train::Silent).unwrap();
        let p = seg::prepare(&train, Path::new("train"), &dev, Path::new("dev")).unwrap();
        let model = seg::new_model(&SegmenterConfig { d_model: 32, layers: 2, window: 8, ..Default::default() }, &p.data, 5).unwrap();
        let seg_dir = segmenter_dir(dir.path());
        let options = attend::train::RunOptions { checkpoint_dir: Some(&seg_dir), ..Default::default() };
        let cfg = attend::config::TrainConfig { epochs: 10, seed: 5, ..seg::train_defaults() };
        seg::train_segmenter(&model, &p.data, &p.train, &p.dev, &cfg, options, &mut attend::train::Silent).unwrap();
        let t = TextTagger::load(dir.path()).unwrap();
        (dir, t)
    })
}

fn tagger() -> &'static TextTagger {
    &trained().1
}

const DOCS: [&str; 4] = [
    "the run watch it. a light cooked her.\n\nthe plant ran.\n",
    "",
    "a light cooked her.\n\n\n\nthe run watch it.\nthe plant ran.",
    "the plant ran. the run watch it. a light cooked her. the plant ran.\n\nthe run watch it.\n\na light cooked her.\n",
];

#[test]
fn documents_tagged_together_equal_each_tagged_alone() {
    let t = tagger();
    let labels: Vec<String> = (1..=DOCS.len()).map(|i| format!("doc{i}")).collect();
    let docs: Vec<(&Path, &[u8])> = labels.iter().zip(DOCS).map(|(l, d)| (Path::new(l.as_str()), d.as_bytes())).collect();
    let tagged = t.tag_documents(&docs, None).unwrap();
    assert_eq!(tagged.len(), DOCS.len());
    for (doc, text) in tagged.iter().zip(DOCS) {
        let doc = doc.as_ref().unwrap();
        let alone = t.tag_text(text).unwrap();
        assert_eq!(conllu::to_string(&doc.sentences), conllu::to_string(&alone));
        let newpar = alone.iter().filter(|s| s.comments.iter().any(|c| c.starts_with(" newpar"))).count();
        assert_eq!(doc.paragraphs, newpar, "{text:?}");
    }
    assert!(tagged[1].as_ref().unwrap().sentences.is_empty());
    assert_eq!(tagged[3].as_ref().unwrap().paragraphs, 3);
}

#[test]
fn a_document_that_cannot_be_read_fails_alone() {
    let t = tagger();
    let long = format!("the run watch it.\n\n{} ran.\n", "x".repeat(5000));
    let bad_utf8: &[u8] = b"the plant ran.\n\nthe \xff\xfe run.\n";
    let docs: Vec<(&Path, &[u8])> =
        vec![(Path::new("ok"), DOCS[0].as_bytes()), (Path::new("bin"), bad_utf8), (Path::new("long"), long.as_bytes())];
    let tagged = t.tag_documents(&docs, Some(4096)).unwrap();
    let ok = tagged[0].as_ref().unwrap();
    assert_eq!(conllu::to_string(&ok.sentences), conllu::to_string(&t.tag_text(DOCS[0]).unwrap()));
    let e = tagged[1].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("bin:3:") && e.contains("UTF-8"), "{e}");
    let e = tagged[2].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("long:3:") && e.contains("more than 4096 characters without white space"), "{e}");
    // Without the limit the long run is tagged (one long token), as `attend tag` does.
    let tagged = t.tag_documents(&docs[2..], None).unwrap();
    let words: Vec<usize> = tagged[0].as_ref().unwrap().sentences.iter().map(|s| s.word_count()).collect();
    assert!(words.iter().sum::<usize>() >= 6, "{words:?}");
    // A tagger without a segmenter cannot read raw text at all.
    let bare = TextTagger { tagger: attend::checkpoint::load(trained().0.path()).unwrap(), segmenter: None, max_dense: t.max_dense };
    assert!(bare.tag_documents(&docs, None).unwrap_err().to_string().contains("no segmenter"));
}
