//! A short, deterministic version of the fuzz targets (`fuzz/`): every
//! reader gets valid inputs and thousands of mutations of them (byte flips,
//! insertions of structural bytes, deletions, duplications, truncations)
//! and must return, not panic. Every input in `fuzz/regressions/TARGET/`
//! (crashes found by cargo-fuzz, once fixed) runs here too.

use attend::checkpoint;
use attend::config::{Settings, TrainConfig};
use attend::data::{conllu, planetoid, synthetic};
use attend::fuzzing;
use attend::models::{Tagger, TaggerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

const INTERESTING: &[u8] = b"\t\n\0:-._9#\"{}[]=,_ \xff\xc3";

fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut x = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = x.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                x[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                x.insert(i, INTERESTING[rng.random_range(0..INTERESTING.len())]);
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=16)).min(len);
                x.drain(i..j);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..=64)).min(len);
                let chunk = x[i..j].to_vec();
                let at = rng.random_range(0..=x.len());
                x.splice(at..at, chunk);
            }
            4 => x.truncate(rng.random_range(0..=len)),
            _ if len > 0 => {
                // a digit run: large numbers, overflowing ids and sizes
                let i = rng.random_range(0..len);
                x.splice(i..i, b"99999999999".iter().copied().take(rng.random_range(1..=11)));
            }
            _ => {}
        }
    }
    x
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
}

fn run(target: &str, f: fn(&[u8]), seeds: &[Vec<u8>], mutations: usize) {
    for s in seeds.iter().chain(&regressions(target)) {
        f(s);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ target.len() as u64);
    for _ in 0..mutations {
        let seed = &seeds[rng.random_range(0..seeds.len())];
        f(&mutate(seed, &mut rng));
    }
}

fn conllu_seeds() -> Vec<Vec<u8>> {
    let toy = conllu::to_string(&synthetic::toy_treebank(12, 1)).into_bytes();
    let rich = b"# sent_id = 1\n# text = Don't go.\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_\n2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_\n3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n3.1\tgone\t_\t_\t_\t_\t_\t_\t3:x\t_\n4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_\n\n".to_vec();
    vec![toy, rich, b"the old man the boat .\n".to_vec()]
}

#[test]
fn conllu_reader_survives_mutations() {
    run("conllu", fuzzing::conllu, &conllu_seeds(), 20_000);
}

fn raw_text_seeds() -> Vec<Vec<u8>> {
    let mut seeds = conllu_seeds();
    seeds.push("Hello there. I'm caf\u{e9}!\n\nNext paragraph\twith a tab.\r\n".as_bytes().to_vec());
    seeds
}

#[test]
fn raw_text_survives_mutations() {
    run("raw_text", fuzzing::raw_text, &raw_text_seeds(), 20_000);
}

fn graph_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    planetoid::write_dir(&planetoid::random_graph(30, 60, 12, 3, 3, 1), dir.path()).unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let joined = [read("nodes.tsv"), read("edges.tsv"), read("train.txt")].join(&0u8);
    vec![joined, b"0\t1:1\n?\t\n\x000\t1\n\x000\n".to_vec()]
}

#[test]
fn graph_reader_survives_mutations() {
    run("graph", fuzzing::graph, &graph_seeds(), 20_000);
}

fn series_seeds() -> Vec<Vec<u8>> {
    let ts = attend::data::series::to_ts_string(&synthetic::series_majority(4, 7, true, 1)).unwrap().into_bytes();
    let text = attend::data::series::to_text_string(&synthetic::series_far_context(3, 4, 2)).into_bytes();
    let regression =
        b"# c\n@problemName r\n@univariate true\n@equalLength true\n@seriesLength 3\n@targetLabel true\n@data\n1,2,3:0.5\n4,?,6:-1\n"
            .to_vec();
    let mut npz = std::io::Cursor::new(Vec::new());
    {
        use npyz::WriterBuilder;
        let mut w = npyz::npz::NpzWriter::new(&mut npz);
        let mut x = w.array("x", Default::default()).unwrap().default_dtype().shape(&[2, 3, 2]).begin_nd().unwrap();
        x.extend((0..12).map(|v| v as f32)).unwrap();
        x.finish().unwrap();
        let mut y = w.array("y", Default::default()).unwrap().default_dtype().shape(&[2]).begin_nd().unwrap();
        y.extend([0i64, 1]).unwrap();
        y.finish().unwrap();
    }
    vec![ts, text, regression, npz.into_inner()]
}

#[test]
fn series_readers_survive_mutations() {
    run("series", fuzzing::series, &series_seeds(), 20_000);
}

/// A tiny tagger checkpoint's three files.
fn checkpoint_parts() -> (std::path::PathBuf, Vec<u8>, Vec<u8>, Vec<u8>) {
    let train = synthetic::toy_treebank(20, 1);
    let vocab = attend::data::vocab::TaggerVocab::build(&train);
    let encoder = attend::nn::sequence::EncoderConfig { d_model: 8, heads: 2, layers: 1, ff_dim: 8, ..Default::default() };
    let config = TaggerConfig { encoder, word_dim: 4, char_dim: 4, char_filters: 4, ..TaggerConfig::default() }.sized_for(&vocab);
    let model = Tagger::new(config, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("m");
    checkpoint::save_model(&ck, &model, &vocab, &TrainConfig::default()).unwrap();
    let read = |name: &str| std::fs::read(ck.join(name)).unwrap();
    (ck.clone(), read("config.json"), read("vocab.json"), read("model.safetensors"))
}

#[test]
fn checkpoint_loader_survives_mutations() {
    let (ck, config, vocab, weights) = checkpoint_parts();
    let joined = [config.clone(), vocab.clone(), weights.clone()].join(&0u8);
    // the valid checkpoint loads; mutations of each part in turn must not panic
    let files = [("config.json", &config), ("vocab.json", &vocab), ("model.safetensors", &weights)];
    assert!(checkpoint::load_from_bytes::<Tagger>(&ck, files.into_iter().map(|(n, b)| (n.to_string(), b.clone())).collect()).is_ok());
    run("checkpoint", fuzzing::checkpoint, &[joined], 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..2000 {
        let (c, v, w) = match rng.random_range(0..3) {
            0 => (mutate(&config, &mut rng), vocab.clone(), weights.clone()),
            1 => (config.clone(), mutate(&vocab, &mut rng), weights.clone()),
            _ => (config.clone(), vocab.clone(), mutate(&weights, &mut rng)),
        };
        fuzzing::checkpoint(&[c, v, w].join(&0u8));
    }
}

#[test]
fn pickle_reader_survives_mutations() {
    run("pickle", fuzzing::pickle, &fuzzing::sample_pickles(), 20_000);
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![
        b"[model]\nheads = 4\nlayers = 2\nposition = \"rope\"\nwindow = 8\n[train]\nlr = 0.003\nepochs = 3\n".to_vec(),
        b"[model]\nd_model = 4096\nff_dim = 65536\nlayers = 96\n".to_vec(),
    ]
}

#[test]
fn config_reader_survives_mutations() {
    run("config", fuzzing::config, &config_seeds(), 20_000);
    // sizes beyond memory are refused up front
    let err =
        attend::models::tagger::config::TaggerSettings::from_toml("[model]\nd_model = 65536\nheads = 8\nff_dim = 1048576\nlayers = 64\n")
            .err()
            .unwrap();
    assert!(err.starts_with("this model would have ") && err.ends_with("attend refuses more than 1073741824 (4 GiB) up front"), "{err}");
}

/// Writes the seed inputs as starting corpora for cargo-fuzz:
/// `cargo test -p attend --test fuzz_smoke -- --ignored write_fuzz_corpora`.
#[test]
#[ignore]
fn write_fuzz_corpora() {
    let (_dir, config, vocab, weights) = checkpoint_parts();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let sets = [
        ("conllu", conllu_seeds()),
        ("graph", graph_seeds()),
        ("checkpoint", vec![[config, vocab, weights].join(&0u8)]),
        ("config", config_seeds()),
        ("series", series_seeds()),
        ("raw_text", raw_text_seeds()),
        ("pickle", fuzzing::sample_pickles().to_vec()),
    ];
    for (target, seeds) in sets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
