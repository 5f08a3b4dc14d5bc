//! `attend train sequence`, `attend eval`, `attend predict` and `attend
//! attention` on synthetic vector sequences (.ts and vector text files), a
//! time-limited run resumed to the same model, and the messages bad input gets.

use attend::data::series::{to_text_string, to_ts_string};
use attend::data::synthetic::{series_far_context, series_majority};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn attend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attend")).args(args).output().expect("run attend")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SMALL: &[&str] = &[
    "--d-model",
    "32",
    "--heads",
    "4",
    "--ff-dim",
    "64",
    "--lr",
    "0.003",
    "--warmup-steps",
    "20",
    "--batch-vectors",
    "512",
    "--threads",
    "2",
];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Majority sequences (missing values included) as .ts: train, test.
fn majority_files(dir: &Path) -> (PathBuf, PathBuf) {
    let train = write(dir, "maj_TRAIN.ts", &to_ts_string(&series_majority(300, 31, true, 1)).unwrap());
    let test = write(dir, "maj_TEST.ts", &to_ts_string(&series_majority(120, 31, true, 2)).unwrap());
    (train, test)
}

fn run(args: &[&str]) -> Output {
    let o = attend(args);
    assert!(o.status.success(), "attend {args:?} failed: {}", stderr(&o));
    o
}

#[test]
fn train_eval_predict_and_show_a_per_sequence_model() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = majority_files(dir.path());
    let out = dir.path().join("m");
    let mut args = vec![
        "train",
        "sequence",
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "30",
        "--pooling",
        "summary",
        "--members",
        "2",
    ];
    args.extend_from_slice(SMALL);
    let o = run(&args);
    let log = stderr(&o);
    assert!(log.contains("300 sequences (lengths 5-31, 2 values per vector"), "{log}");
    // Settings not given are chosen from the data, each with its reason; given ones are not.
    assert!(log.contains("chosen from the data (300 sequences, lengths 5-31 (median 19), 2 values per vector, 2 classes"), "{log}");
    assert!(log.contains("  patch = 1: median length 19 <= 128") && log.contains("  sequence_norm = false: multivariate"), "{log}");
    assert!(log.contains("  dev_fraction = 0.0: 300 sequences (< 1000): none held out") && log.contains("dev: none"), "{log}");
    assert!(!log.contains("  epochs = ") && !log.contains("  batch_tokens = "), "--epochs and --batch-vectors were given: {log}");
    assert!(log.contains("test ") && log.contains("macro-F1"), "{log}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(", train 100.00% (best epoch 30 of 30;"), "{}", String::from_utf8_lossy(&o.stdout));
    for f in ["model.safetensors", "config.json", "data.json", "train_report.json", "resume/state.json"] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("train_report.json")).unwrap()).unwrap();
    let keys: Vec<&str> = report["run"]["adaptive"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["patch", "stem", "stem_kernel", "sequence_norm", "conv_members", "dev_fraction"], "{report}");
    // Two members given: fewer than a mixed ensemble needs, so attention only.
    assert!(log.contains("  conv_members = 0: attention only"), "{log}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["model"]["stem"].as_u64(), config["train"]["dev_fraction"].as_f64()), (Some(64), Some(0.0)), "{config}");
    assert_eq!(config["model"]["members"].as_u64(), Some(2), "an ensemble of two, as given: {config}");
    // A dev fraction given holds that share out; --fixed-defaults keeps the rest fixed.
    let held = dir.path().join("held");
    let mut fixed = vec!["train", "sequence", "--train", train.to_str().unwrap(), "--out", held.to_str().unwrap(), "--epochs", "1"];
    fixed.extend_from_slice(&["--dev-fraction", "0.2", "--fixed-defaults"]);
    fixed.extend_from_slice(SMALL);
    let log = stderr(&run(&fixed));
    assert!(log.contains("60 sequences held out of train (20%, seed 42)") && !log.contains("chosen from the data"), "{log}");
    let m = out.to_str().unwrap();
    // eval: the flat form finds the kind; --json for scripts.
    let o = run(&["eval", "--model", m, "--input", test.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["accuracy"].as_f64().unwrap() > 0.85, "{j}");
    assert!(j["macro_f1"].as_f64().unwrap() > 0.8, "{j}");
    assert_eq!(j["count"], 120);
    let o = run(&["eval", "sequence", "--model", m, "--input", test.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("accuracy") && text.contains("precision") && text.contains("down"), "{text}");
    // predict: TSV and JSON, one label per sequence.
    let o = run(&["predict", "--model", m, "--input", test.to_str().unwrap()]);
    let tsv = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = tsv.lines().collect();
    assert_eq!(lines[0], "sequence\tline\tprediction");
    assert_eq!(lines.len(), 121);
    assert!(lines[1..].iter().all(|l| l.ends_with("\tup") || l.ends_with("\tdown")), "{tsv}");
    let o = run(&["predict", "--model", m, "--input", test.to_str().unwrap(), "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 120);
    assert!(j[0]["label"].is_string() && j[0]["line"].as_u64().unwrap() > 0, "{}", j[0]);
    // attention: heatmaps of one sequence, the summary slot first.
    let views = dir.path().join("views");
    let o = run(&["attention", "--model", m, "--input", test.to_str().unwrap(), "--index", "3", "--out", views.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("sequence 3"), "{}", String::from_utf8_lossy(&o.stdout));
    let maps: serde_json::Value = serde_json::from_slice(&std::fs::read(views.join("attention.json")).unwrap()).unwrap();
    assert_eq!(maps["words"][0], "[summary]");
    assert!(views.join("layer2-mean.png").exists() && views.join("layer1-head4.png").exists());
    let o = attend(&["attention", "--model", m, "--text", "a b"]);
    assert!(stderr(&o).contains("is a sequence model: give the file with --input FILE"), "{}", stderr(&o));
    // The tagger's commands name the kind.
    let o = attend(&["tag", "--model", m]);
    assert!(stderr(&o).contains("holds a \"sequence\" model, not a tagger model (use attend eval, attend predict)"), "{}", stderr(&o));
}

#[test]
fn a_label_per_vector_from_vector_text_including_a_long_sequence_in_slices() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "far.txt", &to_text_string(&series_far_context(240, 24, 3)));
    let dev = write(dir.path(), "far-dev.txt", &to_text_string(&series_far_context(40, 24, 4)));
    let out = dir.path().join("m");
    let mut args = vec![
        "train",
        "sequence",
        "--train",
        train.to_str().unwrap(),
        "--dev",
        dev.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "30",
        "--window",
        "24",
    ];
    args.extend_from_slice(SMALL);
    let o = run(&args);
    assert!(stderr(&o).contains("one class per vector, 2 classes"), "{}", stderr(&o));
    let m = out.to_str().unwrap();
    let o = run(&["eval", "--model", m, "--input", dev.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["accuracy"].as_f64().unwrap() > 0.9, "{j}");
    assert_eq!(j["count"], 40 * 24);
    // A 9,000-vector sequence without labels: labelled in slices of 4,096 under the window.
    let mut long = series_far_context(1, 9000, 5);
    long.series[0].label = attend::data::series::Label::None;
    let long = write(dir.path(), "long.txt", &to_text_string(&long));
    let o = run(&["predict", "--model", m, "--input", long.to_str().unwrap(), "--stats"]);
    let tsv = String::from_utf8_lossy(&o.stdout);
    assert_eq!(tsv.lines().next(), Some("sequence\tline\tposition\tprediction"));
    assert_eq!(tsv.lines().count(), 9001);
    assert!(tsv.lines().last().unwrap().starts_with("0\t1\t8999\t"), "{}", tsv.lines().last().unwrap());
    assert!(stderr(&o).contains("peak RSS"), "{}", stderr(&o));
}

#[test]
fn a_time_limited_run_resumes_to_the_same_model_and_seeds_report() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = majority_files(dir.path());
    let base = |out: &Path| {
        let mut a: Vec<String> = ["train", "sequence", "--train", train.to_str().unwrap(), "--out", out.to_str().unwrap(), "--epochs", "4"]
            .map(String::from)
            .to_vec();
        a.extend(SMALL.iter().map(|s| s.to_string()));
        a
    };
    let whole = dir.path().join("whole");
    let args = base(&whole);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let split = dir.path().join("split");
    let mut args = base(&split);
    args.extend(["--max-minutes", "0.000001"].map(String::from));
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(stderr(&o).contains("stopped early: time limit"), "{}", stderr(&o));
    let o = attend(&["train", "sequence", "--train", train.to_str().unwrap(), "--resume", split.to_str().unwrap(), "--epochs", "9"]);
    assert!(stderr(&o).contains("--resume continues with the settings saved in") && stderr(&o).contains("drop --epochs"), "{}", stderr(&o));
    // The saved limit applies again unless lifted: a generous one lets it finish.
    let o = run(&[
        "train",
        "sequence",
        "--train",
        train.to_str().unwrap(),
        "--resume",
        split.to_str().unwrap(),
        "--max-minutes",
        "60",
        "--threads",
        "2",
    ]);
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(split.join("model.safetensors")).unwrap(),
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        "resumed model differs"
    );
    // --seeds: one model per seed and a report.
    let seeds = dir.path().join("seeds");
    let mut args = base(&seeds);
    args.extend(["--seeds", "2", "--test", test.to_str().unwrap()].map(String::from));
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&o.stdout).contains("test accuracy over 2 seeds"), "{}", String::from_utf8_lossy(&o.stdout));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(seeds.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    assert!(seeds.join("seed-43/model.safetensors").exists());
    // A --seeds run stopped by its time limit: --resume OUT finishes every seed and the report, as if never stopped.
    let cut = dir.path().join("seeds-cut");
    let mut args = base(&cut);
    args.extend(["--seeds", "2", "--test", test.to_str().unwrap(), "--max-minutes", "0.000001"].map(String::from));
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(cut.join("seeds.json").exists());
    let o = run(&[
        "train",
        "sequence",
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--resume",
        cut.to_str().unwrap(),
        "--max-minutes",
        "60",
        "--threads",
        "2",
    ]);
    assert!(stderr(&o).contains("seed 43 resuming"), "{}", stderr(&o));
    for s in ["seed-42", "seed-43"] {
        assert_eq!(
            std::fs::read(cut.join(s).join("model.safetensors")).unwrap(),
            std::fs::read(seeds.join(s).join("model.safetensors")).unwrap(),
            "{s} differs"
        );
    }
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(cut.join("report.json")).unwrap()).unwrap();
    assert_eq!((&again["test_mean"], &again["test_std"]), (&report["test_mean"], &report["test_std"]));
}

#[test]
fn bad_sequence_input_gets_a_message_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = majority_files(dir.path());
    let bad = write(dir.path(), "bad.ts", "@classLabel true a b\n@data\n1,2:3,4:a\n1,2,x:3,4,5:b\n");
    let o = attend(&["train", "sequence", "--train", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.ts:4: dimension 1: \"x\" is not a number"), "{}", stderr(&o));
    let mixed = write(dir.path(), "mixed.txt", "1 2 a\n3 4 _\n");
    let o = attend(&["train", "sequence", "--train", mixed.to_str().unwrap()]);
    assert!(stderr(&o).contains("mixed.txt:2: this vector has no label (_) but the one on line 1 has a label"), "{}", stderr(&o));
    let far = write(dir.path(), "far.txt", &to_text_string(&series_far_context(10, 6, 1)));
    let o = attend(&["train", "sequence", "--train", far.to_str().unwrap(), "--patch", "4"]);
    assert!(stderr(&o).contains("--patch 4 joins vectors, but this data has one label per vector"), "{}", stderr(&o));
    let o = attend(&["train", "sequence", "--train", train.to_str().unwrap(), "--dev-fraction", "1.5"]);
    assert!(stderr(&o).contains("dev_fraction must be in [0, 1), got 1.5"), "{}", stderr(&o));
    // A model meets data of another width, and unlabelled data to score.
    let out = dir.path().join("m");
    let mut args = vec!["train", "sequence", "--train", train.to_str().unwrap(), "--out", out.to_str().unwrap(), "--epochs", "1"];
    args.extend_from_slice(SMALL);
    run(&args);
    let o = attend(&["predict", "--model", out.to_str().unwrap(), "--input", far.to_str().unwrap()]);
    assert!(stderr(&o).contains("far.txt: vectors have 3 values, the model was trained on 2"), "{}", stderr(&o));
    let unlabelled = write(dir.path(), "u.ts", "@classLabel false\n@data\n1,2:3,4\n");
    let o = attend(&["eval", "--model", out.to_str().unwrap(), "--input", unlabelled.to_str().unwrap()]);
    assert!(stderr(&o).contains("u.ts: has no labels to score against (attend predict labels it)"), "{}", stderr(&o));
    let o = run(&["predict", "--model", out.to_str().unwrap(), "--input", unlabelled.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let o = attend(&["attention", "--model", out.to_str().unwrap(), "--input", test.to_str().unwrap(), "--index", "500"]);
    assert!(stderr(&o).contains("has 120 sequences; --index 500 is out of range"), "{}", stderr(&o));
    let o = attend(&["train", "sequence", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--train",
        "--dev",
        "--test",
        "--pooling",
        "--patch",
        "--window",
        "--dev-fraction",
        "--resume",
        "--seeds",
        "--random-crop",
        "--sequence-norm",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
