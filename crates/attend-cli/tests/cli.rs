//! The `attend` binary end to end on a synthetic treebank: train, eval, tag,
//! and the errors users see on bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn attend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attend")).args(args).output().expect("run attend")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TINY: &[&str] = &[
    "--d-model",
    "32",
    "--heads",
    "4",
    "--layers",
    "2",
    "--ff-dim",
    "64",
    "--word-dim",
    "16",
    "--char-dim",
    "8",
    "--char-filters",
    "24",
    "--epochs",
    "30",
    "--lr",
    "0.003",
    "--warmup-steps",
    "20",
    "--batch-tokens",
    "256",
    "--seed",
    "5",
    "--no-segmenter",
];

fn train(dir: &Path) -> std::path::PathBuf {
    let bank = dir.join("toy");
    attend::data::synthetic::write_toy_treebank(&bank, 300, 60, 100).unwrap();
    let out = dir.join("model");
    let mut args = vec!["train", "tagger", "--treebank", bank.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(TINY);
    let o = attend(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("best dev") && log.contains("test "), "{log}");
    out
}

#[test]
fn train_eval_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path());
    for f in ["model.safetensors", "config.json", "vocab.json", "resume/optimizer.safetensors", "resume/state.json", "train_report.json"] {
        assert!(model.join(f).exists(), "missing {f}");
    }
    let test = dir.path().join("toy/toy-ud-test.conllu");
    let o = attend(&["eval", "--model", model.to_str().unwrap(), "--input", test.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["accuracy"].as_f64().unwrap() > 0.93, "{j}");
    assert!(j["per_tag"]["NOUN"]["recall"].as_f64().unwrap() > 0.8);
    assert!(j["unknown_tokens"].as_u64().unwrap() > 0);

    // Plain text on stdin -> CoNLL-U with UPOS.
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(["tag", "--model", model.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"the run watch it .\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let tags: Vec<&str> = out.lines().filter(|l| !l.is_empty()).map(|l| l.split('\t').nth(3).unwrap()).collect();
    assert_eq!(tags, ["DET", "NOUN", "VERB", "PRON", "PUNCT"], "{out}");

    // CoNLL-U in, CoNLL-U out: same lines, UPOS column rewritten.
    let tagged = dir.path().join("tagged.conllu");
    let o = attend(&["tag", "--model", model.to_str().unwrap(), "--input", test.to_str().unwrap(), "--output", tagged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = std::fs::read_to_string(&test).unwrap();
    let b = std::fs::read_to_string(&tagged).unwrap();
    assert_eq!(a.lines().count(), b.lines().count());

    // Heatmaps of one sentence.
    let maps = dir.path().join("maps");
    let o = attend(&["attention", "--model", model.to_str().unwrap(), "--text", "the run watch it .", "--out", maps.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("the/DET run/NOUN watch/VERB it/PRON ./PUNCT"));
    for f in ["layer1-head1.png", "layer2-head4.png", "layer2-mean.png", "attention.json"] {
        assert!(maps.join(f).exists(), "missing {f}");
    }
}

#[test]
fn xpos_and_feats_from_named_files_with_a_held_out_dev_set() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("toy");
    attend::data::synthetic::write_toy_treebank(&bank, 300, 60, 100).unwrap();
    // Files named otherwise, and no dev file.
    let (train_file, test_file) = (dir.path().join("mine.conllu"), dir.path().join("held.conllu"));
    std::fs::rename(bank.join("toy-ud-train.conllu"), &train_file).unwrap();
    std::fs::rename(bank.join("toy-ud-test.conllu"), &test_file).unwrap();
    let out = dir.path().join("model");
    let mut args = vec![
        "train",
        "tagger",
        "--train",
        train_file.to_str().unwrap(),
        "--test",
        test_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = attend(&args);
    assert!(!o.status.success() && stderr(&o).contains("no dev file: give --dev FILE, or --dev-fraction F"), "{}", stderr(&o));
    args.extend_from_slice(&["--dev-fraction", "0.2"]);
    args.extend_from_slice(TINY);
    let o = attend(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("dev the last 60 sentences of") && log.contains("train 240 sentences"), "{log}");
    assert!(log.contains("predicting UPOS (7), XPOS (8), FEATS (8)"), "{log}");
    assert!(log.contains("XPOS ") && log.contains("UFeats ") && log.contains("AllTags "), "{log}");

    let o = attend(&["eval", "--model", out.to_str().unwrap(), "--input", test_file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for m in ["UPOS", "XPOS", "UFeats", "AllTags"] {
        assert!(j["metrics"][m].as_f64().unwrap() > 0.9, "{m}: {j}");
    }
    // The official metrics on the tagged file agree with the model's own.
    let tagged = dir.path().join("tagged.conllu");
    let o =
        attend(&["tag", "--model", out.to_str().unwrap(), "--input", test_file.to_str().unwrap(), "--output", tagged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = attend(&["eval", "--system", tagged.to_str().unwrap(), "--gold", test_file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let official: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for m in ["UPOS", "XPOS", "UFeats", "AllTags"] {
        let f1 = official[m]["f1"].as_f64().unwrap();
        assert!((f1 - j["metrics"][m].as_f64().unwrap()).abs() < 1e-9, "{m}: {official}");
    }
    let first_word = std::fs::read_to_string(&tagged).unwrap().lines().find(|l| l.starts_with("1\t")).unwrap().to_string();
    let cols: Vec<&str> = first_word.split('\t').collect();
    assert!(cols[4] == "DT" && cols[5].contains("PronType="), "{first_word}");

    // UPOS only; and the flag's errors.
    let upos_only = dir.path().join("upos");
    let mut args = vec![
        "train",
        "tagger",
        "--train",
        train_file.to_str().unwrap(),
        "--dev-fraction",
        "0.2",
        "--out",
        upos_only.to_str().unwrap(),
        "--predict",
        "upos",
    ];
    args.extend_from_slice(TINY);
    *args.iter_mut().skip_while(|a| **a != "--epochs").nth(1).unwrap() = "2";
    let o = attend(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = attend(&["eval", "--model", upos_only.to_str().unwrap(), "--input", test_file.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["metrics"].get("XPOS").is_none() && j["metrics"].get("UPOS").is_some(), "{j}");
    for (flag, message) in [("xpos", "--predict must include upos"), ("upos,lemma", "unknown column 'lemma'")] {
        let o = attend(&["train", "tagger", "--train", train_file.to_str().unwrap(), "--dev-fraction", "0.2", "--predict", flag]);
        assert!(!o.status.success() && stderr(&o).contains(message), "{flag}: {}", stderr(&o));
    }
    let o = attend(&["train", "tagger", "--train", train_file.to_str().unwrap(), "--dev-fraction", "1"]);
    assert!(!o.status.success() && stderr(&o).contains("--dev-fraction must be between 0 and 1"), "{}", stderr(&o));
    let bad = dir.path().join("bad.conllu");
    std::fs::write(&bad, "1\tThe\t_\tDET\n").unwrap();
    let o = attend(&["train", "tagger", "--train", train_file.to_str().unwrap(), "--dev", bad.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("bad.conllu:1: expected 10 tab-separated columns"), "{}", stderr(&o));
}

#[test]
fn completions_man_pages_and_planetoid_conversion() {
    let o = attend(&["completions", "bash"]);
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.contains("_attend()") && script.contains("--treebank") && script.contains("--dev-fraction"), "bash completion");
    for shell in ["zsh", "fish"] {
        let o = attend(&["completions", shell]);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("dev-fraction"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let o = attend(&["man", "--out", man.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(man.join("attend-train-tagger.1")).unwrap();
    assert!(page.contains(".TH attend-train-tagger") && page.contains("dev\\-fraction"), "{}", &page[..page.len().min(400)]);
    assert!(man.join("attend.1").is_file() && man.join("attend-data-planetoid.1").is_file());

    let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/planetoid/raw");
    let out = dir.path().join("cora");
    let o = attend(&["data", "planetoid", "--raw", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("ind.cora.x"), "{}", stderr(&o));
    if !raw.is_dir() {
        eprintln!("skipped the Planetoid conversion: {} is absent", raw.display());
        return;
    }
    let o = attend(&["data", "planetoid", "--raw", raw.to_str().unwrap(), "--name", "cora", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2708 nodes (2708 labelled, 7 classes), 1433 features, 10556 directed edges; split 140 / 500 / 1000"),
        "{}",
        stderr(&o)
    );
    for f in ["nodes.tsv", "edges.tsv", "train.txt", "val.txt", "test.txt"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(raw.join("../cora").join(f)).unwrap(), "{f}");
    }
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("bank");
    std::fs::create_dir_all(&bank).unwrap();
    std::fs::write(bank.join("x-ud-train.conllu"), "1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n2 cat _ NOUN _ _ _ _ _ _\n").unwrap();
    std::fs::write(bank.join("x-ud-dev.conllu"), "1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n").unwrap();
    let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--out", dir.path().join("m").to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("x-ud-train.conllu:2: expected 10 tab-separated columns, found 1"), "{err}");

    let o = attend(&["train", "tagger", "--treebank", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no *-ud-train.conllu file in this directory"), "{}", stderr(&o));

    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[model]\nlayer = 3\n").unwrap();
    let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown field `layer`"), "{}", stderr(&o));
    // The segmenter's tables in the tagger's file: a key it does not know is
    // named as the file names it (not turned into a flag).
    std::fs::write(
        &cfg,
        "[segmenter.model]
widow = 3
",
    )
    .unwrap();
    let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("segmenter settings from") && stderr(&o).contains("unknown field `widow`, expected one of `char_dim`"),
        "{}",
        stderr(&o)
    );

    let o = attend(&["eval", "--model", dir.path().join("none").to_str().unwrap(), "--input", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}

#[test]
fn help_lists_hyperparameters() {
    let o = attend(&["train", "tagger", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--treebank",
        "--train",
        "--dev",
        "--test",
        "--dev-fraction",
        "--predict",
        "--position",
        "--heads",
        "--layers",
        "--window",
        "--lr",
        "--seed",
        "--config",
        "--max-minutes",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn train_and_eval_a_graph_model_with_seeds_and_bad_graph_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = attend::data::planetoid::random_graph(300, 900, 30, 4, 3, 2);
    let graph = dir.path().join("graph");
    attend::data::planetoid::write_dir(&data, &graph).unwrap();
    let out = dir.path().join("gat");
    let o = attend(&[
        "train",
        "graph",
        "--data",
        graph.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seeds",
        "2",
        "--max-epochs",
        "80",
        "--patience",
        "30",
        "--heads",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("test accuracy over 2 seeds:"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    // Resuming the whole run: a finished seed gives its result again, a
    // missing one is trained, and the report comes out the same.
    std::fs::remove_dir_all(out.join("seed-43")).unwrap();
    std::fs::remove_file(out.join("report.json")).unwrap();
    let o = attend(&["train", "graph", "--data", graph.to_str().unwrap(), "--resume", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("resuming {} at epoch", out.join("seed-42").display())), "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for k in 0..2 {
        assert_eq!(again["runs"][k]["test"], report["runs"][k]["test"], "seed {k}");
        assert_eq!(again["runs"][k]["best_epoch"], report["runs"][k]["best_epoch"], "seed {k}");
    }
    let o = attend(&["eval", "graph", "--model", out.join("seed-42").to_str().unwrap(), "--data", graph.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["test_accuracy"].as_f64().unwrap() > 0.5, "{j}");
    assert_eq!(j["test_accuracy"].as_f64().unwrap(), report["runs"][0]["test"]["accuracy"].as_f64().unwrap());

    // The node view: one picture per layer plus JSON; a tagger flag is refused.
    let model = out.join("seed-42");
    let views = dir.path().join("views");
    let o = attend(&[
        "attention",
        "--model",
        model.to_str().unwrap(),
        "--data",
        graph.to_str().unwrap(),
        "--node",
        "5",
        "--out",
        views.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("node 5: class"), "{}", String::from_utf8_lossy(&o.stdout));
    for f in ["node-5-layer1.png", "node-5-layer2.png", "node-5.json"] {
        assert!(views.join(f).exists(), "missing {f}");
    }
    let o = attend(&["attention", "--model", model.to_str().unwrap(), "--text", "a b"]);
    assert!(!o.status.success() && stderr(&o).contains("is a graph model: give --node ID and --data DIR"), "{}", stderr(&o));
    let o = attend(&["attention", "--model", model.to_str().unwrap(), "--data", graph.to_str().unwrap(), "--node", "300"]);
    assert!(!o.status.success() && stderr(&o).contains("node 300 is not in the graph (ids 0..300)"), "{}", stderr(&o));

    // attend predict: every node, or only the unlabelled ones; its
    // predictions on the test nodes score what eval graph scores.
    let o = attend(&["predict", "--model", model.to_str().unwrap(), "--data", graph.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tsv = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<Vec<&str>> = tsv.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    assert_eq!(tsv.lines().next(), Some("node\tprediction\tprobability\tlabel"));
    assert_eq!(rows.len(), 300);
    let right = data.test.iter().filter(|&&i| rows[i][1] == rows[i][3]).count();
    let accuracy = right as f64 / data.test.len() as f64;
    assert!((accuracy - j["test_accuracy"].as_f64().unwrap()).abs() < 1e-6, "{accuracy} vs {j}");
    assert!(rows.iter().all(|r| r[2].parse::<f32>().is_ok_and(|p| p > 0.0 && p <= 1.0)));
    let unlabelled = dir.path().join("unlabelled");
    std::fs::create_dir_all(&unlabelled).unwrap();
    std::fs::copy(graph.join("edges.tsv"), unlabelled.join("edges.tsv")).unwrap();
    let nodes_text = std::fs::read_to_string(graph.join("nodes.tsv")).unwrap();
    let hidden: String = nodes_text
        .lines()
        .enumerate()
        .map(|(i, l)| if i % 3 == 0 { format!("?\t{}\n", l.split_once('\t').unwrap().1) } else { format!("{l}\n") })
        .collect();
    std::fs::write(unlabelled.join("nodes.tsv"), hidden).unwrap();
    let o = attend(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        unlabelled.to_str().unwrap(),
        "--nodes",
        "unlabelled",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let items: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(items.len(), 100, "nodes 0, 3, ... 297 have no label");
    assert!(items.iter().all(|x| x["label"].is_null() && x["node"].as_u64().unwrap() % 3 == 0));
    assert_eq!(items[1]["prediction"].as_str().map(|_| ()), None, "classes are numbers");
    assert_eq!(items[1]["prediction"].as_u64().unwrap().to_string(), rows[3][1], "the same prediction without the label");
    let o = attend(&["predict", "--model", model.to_str().unwrap(), "--input", "x.ts"]);
    assert!(!o.status.success() && stderr(&o).contains("is a graph model: give the graph directory with --data DIR"), "{}", stderr(&o));

    // A bad edge names the file and line.
    let edges = graph.join("edges.tsv");
    let mut text = std::fs::read_to_string(&edges).unwrap();
    text.push_str("1\t300\n");
    std::fs::write(&edges, text).unwrap();
    let o = attend(&["eval", "graph", "--model", out.join("seed-42").to_str().unwrap(), "--data", graph.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("edges.tsv:901: target 300 is out of range: nodes.tsv has 300 nodes (ids 0..300)"), "{}", stderr(&o));
    // A graph with more features than the model takes.
    std::fs::write(&edges, "0\t1\n").unwrap();
    let nodes = graph.join("nodes.tsv");
    let text = std::fs::read_to_string(&nodes).unwrap().replacen('\n', " 40:1\n", 1);
    std::fs::write(&nodes, text).unwrap();
    let o = attend(&["eval", "graph", "--model", out.join("seed-42").to_str().unwrap(), "--data", graph.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nodes.tsv has features up to index 40 but the model takes 30 features"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_saves_and_resume_finishes_with_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("toy");
    attend::data::synthetic::write_toy_treebank(&bank, 300, 60, 100).unwrap();
    let run = |out: &Path| {
        let mut args = vec![
            "train".to_string(),
            "tagger".into(),
            "--treebank".into(),
            bank.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        args.extend(TINY.iter().map(|s| s.to_string()));
        *args.iter_mut().skip_while(|a| *a != "--epochs").nth(1).unwrap() = "8".into();
        args
    };
    let whole = dir.path().join("whole");
    let o = attend(&run(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));

    // Interrupt a second run once its first epoch is saved.
    let split = dir.path().join("split");
    let child = Command::new(env!("CARGO_BIN_EXE_attend")).args(run(&split)).stderr(Stdio::piped()).spawn().unwrap();
    let state = split.join("resume/state.json");
    let t0 = std::time::Instant::now();
    while !state.exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    // Several epochs remain when the first is saved, so the signal lands mid-run.
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: stopped") && err.contains("continue with --resume"), "{err}");
    let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--resume", split.to_str().unwrap(), "--lr", "0.1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--resume continues with the settings saved in") && stderr(&o).contains("drop --lr"), "{}", stderr(&o));
    let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--resume", split.to_str().unwrap(), "--no-segmenter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    for f in ["model.safetensors", "resume/model.safetensors", "resume/optimizer.safetensors"] {
        assert_eq!(std::fs::read(whole.join(f)).unwrap(), std::fs::read(split.join(f)).unwrap(), "{f} differs");
    }
}

/// `attend train graph` gets the loop's behaviour: a settings file, a time
/// limit that ends the session, Ctrl-C that saves, and `--resume` that ends
/// with the files an uninterrupted run writes.
#[test]
fn graph_training_stops_on_a_time_limit_and_ctrl_c_and_resumes_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = attend::data::planetoid::random_graph(300, 900, 30, 4, 3, 2);
    let graph = dir.path().join("graph");
    attend::data::planetoid::write_dir(&data, &graph).unwrap();
    let g = graph.to_str().unwrap();
    let cfg = dir.path().join("gat.toml");
    std::fs::write(&cfg, "[model]\nheads = 4\n[train]\nmax_epochs = 800\npatience = 800\n").unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (whole, split) = (out("whole"), out("split"));
    let o = attend(&["train", "graph", "--data", g, "--out", &whole, "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("best epoch"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains("epoch 100  loss ") && stderr(&o).contains("val loss"), "a line every 100 epochs: {}", stderr(&o));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(&whole).join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (saved["kind"].as_str(), saved["model"]["heads"].as_u64(), saved["train"]["max_epochs"].as_u64()),
        (Some("graph"), Some(4), Some(800))
    );

    // A session limited to (almost) no time stops after its first epoch, keeping the state.
    let o = attend(&["train", "graph", "--data", g, "--out", &split, "--config", cfg.to_str().unwrap(), "--max-minutes", "0.000001"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("time limit of 0.000001 minutes reached after epoch 1 (continue with --resume)"), "{}", stderr(&o));
    // Resuming takes no settings but --max-minutes.
    let o = attend(&["train", "graph", "--data", g, "--resume", &split, "--heads", "2"]);
    assert!(!o.status.success() && stderr(&o).contains("drop --heads"), "{}", stderr(&o));
    // Then Ctrl-C in the resumed session: it saves and exits 130.
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(["train", "graph", "--data", g, "--resume", &split, "--max-minutes", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is installed before "resuming" is printed.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut err = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if line.starts_with("resuming") {
            break;
        }
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    err.extend(lines.map(|l| l.unwrap() + "\n"));
    let code = child.wait().unwrap().code();
    eprintln!("the resumed session ended with {code:?}");
    match code {
        Some(130) => assert!(err.contains("interrupted: stopped after epoch") && err.contains("continue with --resume"), "{err}"),
        // A fast machine may finish the 800 epochs before the signal lands.
        Some(0) => {}
        other => panic!("exit {other:?}: {err}"),
    }
    let o = attend(&["train", "graph", "--data", g, "--resume", &split, "--max-minutes", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["model.safetensors", "resume/model.safetensors", "resume/optimizer.safetensors"] {
        assert_eq!(std::fs::read(Path::new(&whole).join(f)).unwrap(), std::fs::read(Path::new(&split).join(f)).unwrap(), "{f} differs");
    }
}

/// One test per kind of bad input, each with its exact message and a
/// non-zero exit.
#[test]
fn every_bad_input_gets_a_message_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path());
    let m = model.to_str().unwrap();
    let bank = dir.path().join("bad");
    std::fs::create_dir_all(&bank).unwrap();
    let dev = "1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n";
    std::fs::write(bank.join("x-ud-dev.conllu"), dev).unwrap();
    let train_with = |train: &[u8]| {
        std::fs::write(bank.join("x-ud-train.conllu"), train).unwrap();
        let o = attend(&["train", "tagger", "--treebank", bank.to_str().unwrap(), "--out", dir.path().join("m2").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        stderr(&o)
    };
    let file = bank.join("x-ud-train.conllu").display().to_string();
    let cases: Vec<(String, String)> = vec![
        (train_with(b""), format!("error: {file}:1: no sentences in file (empty or only blank lines)")),
        (train_with(b"# sent_id = 1\n\n"), format!("error: {file}:1: sentence has no words (only comments or multiword/empty lines)")),
        (
            train_with(b"1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tca\xfft\t_\tNOUN\t_\t_\t_\t_\t_\t_\n"),
            format!("error: {file}:2: not valid UTF-8 (byte 5 of the line)"),
        ),
        (train_with(b"1\tThe\t_\tDET\t_\t_\t_\n"), format!("error: {file}:1: expected 10 tab-separated columns, found 7")),
    ];
    for (got, want) in cases {
        assert_eq!(got.trim_end(), want);
    }
    // eval: a missing file, a tag the model never saw, an untagged file
    let missing = dir.path().join("none.conllu");
    let o = attend(&["eval", "--model", m, "--input", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim_end(), format!("error: {}: No such file or directory (os error 2)", missing.display()));
    let gold = dir.path().join("gold.conllu");
    std::fs::write(&gold, "# text = the cat\n1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tcat\t_\tNN\t_\t_\t_\t_\t_\t_\n\n").unwrap();
    let o = attend(&["eval", "--model", m, "--input", gold.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("error: {}:3: gold UPOS \"NN\" never occurred in the model's training data (it knows ", gold.display())),
        "{err}"
    );
    std::fs::write(&gold, "1\tthe\t_\t_\t_\t_\t_\t_\t_\t_\n\n").unwrap();
    let o = attend(&["eval", "--model", m, "--input", gold.to_str().unwrap()]);
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "error: {}:1: no gold UPOS (\"_\") for this word: eval needs a tagged file (attend tag tags untagged text)",
            gold.display()
        )
    );
    // a tagger checkpoint given to the graph commands
    let o = attend(&["eval", "graph", "--model", m, "--data", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "error: checkpoint {}: holds a \"tagger\" model, not a graph model (use attend eval tagger, attend tag)",
            model.join("config.json").display()
        )
    );
}

/// `attend compare` end to end on the toy treebank with small settings:
/// trains both encoders, measures, plots, writes its reports; a rerun
/// reuses the finished trainings.
#[test]
fn compare_trains_both_encoders_measures_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("toy");
    attend::data::synthetic::write_toy_treebank(&bank, 200, 40, 60).unwrap();
    let out = dir.path().join("cmp");
    let args = [
        "compare",
        "--treebank",
        bank.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--lengths",
        "8,32",
        "--window",
        "4",
        "--long-words",
        "3000",
        "--synthetic-train",
        "60",
        "--synthetic-length",
        "16",
        "--synthetic-epochs",
        "1",
        "--min-seconds",
        "0",
    ];
    let o = attend(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(report["models"].as_array().unwrap().len(), 3);
    for m in report["models"].as_array().unwrap() {
        assert!(m["upos"].as_f64().unwrap() > 0.0 && m["tag_tokens_per_sec"].as_f64().unwrap() > 0.0, "{m}");
    }
    for s in report["latency_ms"].as_array().unwrap() {
        assert_eq!(s["points"].as_array().unwrap().len(), 2, "{s}");
    }
    let long = report["long_input"].as_array().unwrap();
    assert_eq!(long.len(), 3);
    assert!(long.iter().all(|l| l["ok"].as_bool().unwrap() && l["result"].as_str().unwrap().contains("3000 words")), "{long:?}");
    assert_eq!(report["synthetic"].as_array().unwrap().len(), 3);
    assert_eq!(&std::fs::read(out.join("latency.png")).unwrap()[1..4], b"PNG");
    assert!(std::fs::read_to_string(out.join("compare.md")).unwrap().contains("| BiLSTM |"));
    // The rerun reuses the two trained models.
    let o = attend(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("reusing the finished").count(), 2, "{}", stderr(&o));
}

/// Long inputs: dense attention above the limit is refused with the
/// remedy; --window tags it; a BiLSTM refuses --window.
#[test]
fn long_inputs_need_a_window_under_dense_attention() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path());
    let input = dir.path().join("long.txt");
    std::fs::write(&input, vec!["the run watch it ."; 40].join(" ") + "\n").unwrap();
    let (m, i) = (model.to_str().unwrap(), input.to_str().unwrap());
    let o = attend(&["tag", "--model", m, "--input", i, "--max-dense-words", "100"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("long.txt: a sequence of 200 words under dense attention") && stderr(&o).contains("pass --window 64"),
        "{}",
        stderr(&o)
    );
    let o = attend(&["tag", "--model", m, "--input", i, "--max-dense-words", "100", "--window", "8", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("200 words (longest 200)") && stderr(&o).contains("peak RSS"), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.split('\t').nth(3).is_some_and(|t| t != "_")).count(), 200);
}

#[test]
fn bench_tagger_rounds_interleave_thread_counts_and_report_medians() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("toy");
    attend::data::synthetic::write_toy_treebank(&bank, 120, 20, 30).unwrap();
    let args = ["--threads", "1,2", "bench", "tagger", "--treebank", bank.to_str().unwrap(), "--steps", "2", "--warmup-steps", "0"];
    let o = attend(&[&args[..], &["--tag-runs", "1", "--rounds", "3", "--json"]].concat());
    let log = stderr(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    // The counts alternate round by round.
    let order: Vec<&str> = log.lines().filter(|l| l.starts_with("round ")).map(|l| l.trim_end_matches(':')).collect::<Vec<_>>();
    let want: Vec<String> = (1..=3).flat_map(|r| [1, 2].map(|n| format!("round {r} of 3, --threads {n}"))).collect();
    assert_eq!(order, want);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["rounds"], 3);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["threads"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    let speedup = doc["train"]["speedups"][1].as_f64().unwrap();
    let ratio =
        runs[1]["result"]["train_words_per_second"].as_f64().unwrap() / runs[0]["result"]["train_words_per_second"].as_f64().unwrap();
    assert!((speedup - ratio).abs() < 1e-9, "the speed-up is that of the reported runs: {speedup} vs {ratio}");
    // Zero rounds is refused by name.
    let o = attend(&[&args[..], &["--rounds", "0"]].concat());
    assert!(!o.status.success() && stderr(&o).contains("--rounds"), "{}", stderr(&o));
    // --independent: two one-thread runs at once beside the two-thread run,
    // their sum reported; it needs the one-thread run to compare with.
    let o = attend(&[&args[..], &["--tag-runs", "1", "--independent", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("2 one-thread runs at once").count(), 1, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let together = doc["independent"].as_array().unwrap();
    assert_eq!(together.len(), 1);
    assert_eq!(together[0]["runs"], 2);
    assert!(together[0]["train_words_per_second_together"].as_f64().unwrap() > 0.0);
    let o = attend(&["--threads", "2,4", "bench", "tagger", "--treebank", bank.to_str().unwrap(), "--independent"]);
    assert!(!o.status.success() && stderr(&o).contains("put 1 among the --threads counts"), "{}", stderr(&o));
}
