//! Raw text end to end: a tagger trained with its segmenter reads raw
//! text (streamed a paragraph at a time), writes CoNLL-U the official
//! evaluation script reads, JSON or horizontal text; `attend eval --system
//! --gold` prints what the official script prints; bad input is named.

use attend::data::conllu;
use attend::data::synthetic::toy_raw_treebank;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn attend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attend")).args(args).output().expect("run attend")
}

fn attend_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ud-eval").join(name)
}

/// The two hand-written files of tests/data/ud-eval hold multiword tokens
/// split differently, other sentence ends, tokens split in two, non-universal
/// features, deprel subtypes and wrong heads; expected.txt is what the
/// official script (`eval.py -v`, 2.15 tools) printed for them, without its
/// two enhanced-graph lines.
#[test]
fn eval_prints_what_the_official_script_prints() {
    let o = attend(&["eval", "--system", data("system.conllu").to_str().unwrap(), "--gold", data("gold.conllu").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), std::fs::read_to_string(data("expected.txt")).unwrap());

    let o =
        attend(&["eval", "--system", data("system.conllu").to_str().unwrap(), "--gold", data("gold.conllu").to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["Words"]["correct"], 18);
    assert_eq!(j["Sentences"]["gold"], 4);

    // Different text: refused, naming both files and lines.
    let o = attend(&["eval", "--system", data("gold.conllu").to_str().unwrap(), "--gold", data("expected.txt").to_str().unwrap()]);
    assert!(!o.status.success());
    let o = attend(&["eval", "--system", data("gold.conllu").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--gold"), "{}", stderr(&o));
}

/// A toy treebank of raw text (`attend::data::synthetic::toy_raw_treebank`).
fn write_bank(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (split, n, seed) in [("train", 300, 1), ("dev", 60, 2), ("test", 60, 3)] {
        std::fs::write(dir.join(format!("toy-ud-{split}.conllu")), conllu::to_string(&toy_raw_treebank(n, seed))).unwrap();
    }
}

#[test]
fn a_tagger_with_its_segmenter_reads_raw_text() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("toy");
    write_bank(&bank);
    let model = dir.path().join("model");
    let m = model.to_str().unwrap();
    let o = attend(&[
        "train",
        "tagger",
        "--treebank",
        bank.to_str().unwrap(),
        "--out",
        m,
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
        "--segmenter-epochs",
        "30",
        "--segmenter-d-model",
        "32",
        "--segmenter-layers",
        "2",
        "--segmenter-window",
        "8",
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("from raw text (CoNLL 2018 F1): Tokens"), "{log}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("train_report.json")).unwrap()).unwrap();
    let f1 = |m: &str| report["test_raw_text"][m]["f1"].as_f64().unwrap();
    assert!(f1("Tokens") > 0.97 && f1("Sentences") > 0.9 && f1("UPOS") > 0.9, "{}", report["test_raw_text"]);

    // A tagger save keeps the segmenter beside it.
    assert!(model.join("segmenter/config.json").is_file() && model.join("segmenter/segmenter.json").is_file());

    // Raw text on stdin: tokens, sentences, SpaceAfter=No, a flat tree the official script takes.
    let o = attend_stdin(&["tag", "--model", m], b"the run watch it. a light cooked her.\n\nthe plant ran.\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let sentences = conllu::parse_bytes(out.as_bytes(), Path::new("out")).unwrap();
    assert_eq!(sentences.len(), 3, "{out}");
    assert!(out.starts_with("# newdoc\n# newpar id = p1\n# sent_id = 1\n# text = the run watch it.\n1\tthe\t_\tDET\tDT\tDefinite=Def|PronType=Art\t0\troot\t_\t_\n"), "{out}");
    // XPOS and FEATS too: the toy treebank has them, so the tagger learned them
    assert!(
        out.contains("4\tit\t_\tPRON\tPRP\tCase=Acc|PronType=Prs\t1\tdep\t_\tSpaceAfter=No\n5\t.\t_\tPUNCT\t.\t_\t1\tdep\t_\t_\n"),
        "{out}"
    );
    assert!(out.contains("# newpar id = p2\n# sent_id = 3\n# text = the plant ran.\n"), "{out}");

    // The test file's raw text, tagged and scored as the train report scored it.
    let text = dir.path().join("test.txt");
    let o = attend(&["raw-text", bank.join("toy-ud-test.conllu").to_str().unwrap(), "--output", text.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tagged = dir.path().join("test.conllu");
    let o = attend(&["tag", "--model", m, "--input", text.to_str().unwrap(), "--output", tagged.to_str().unwrap(), "--stats"]);
    assert!(o.status.success() && stderr(&o).contains("words/s"), "{}", stderr(&o));
    let o = attend(&["eval", "--system", tagged.to_str().unwrap(), "--gold", bank.join("toy-ud-test.conllu").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for metric in ["Tokens", "Sentences", "Words", "UPOS"] {
        assert_eq!(j[metric], report["test_raw_text"][metric], "{metric}");
    }

    // Other outputs.
    let o = attend_stdin(&["tag", "--model", m, "--output-format", "horizontal"], b"the run watch it. a light cooked her.\n");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "the run watch it .\na light cooked her .\n");
    let o = attend_stdin(&["tag", "--model", m, "--output-format", "json"], b"the run watch it.\n");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["text"], "the run watch it.");
    assert_eq!(j["tokens"][3]["space_after"], false);
    assert_eq!(j["tokens"][3]["words"][0]["upos"], "PRON");
    // Tokenized text still goes in with --format horizontal.
    let o = attend_stdin(&["tag", "--model", m, "--format", "horizontal", "--output-format", "horizontal"], b"the run watch it.\n");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "the run watch it.\n");

    // Bad input: named by file, line and byte; nothing crashes.
    let bad = dir.path().join("bad.txt");
    let b = bad.to_str().unwrap();
    let cases: Vec<(&[u8], String)> = vec![
        (b"fine.\n\nthe \xff run.\n", format!("error: {b}:3: not valid UTF-8 (byte 5 of the line)")),
        (b"fine.\nbell \x07 here.\n", format!("error: {b}:2: control character U+0007 at byte 6 of the line (raw text cannot hold it)")),
        (b"\n\n   \n", format!("error: {b}: no text to tag")),
    ];
    for (input, want) in cases {
        std::fs::write(&bad, input).unwrap();
        let o = attend(&["tag", "--model", m, "--input", b, "--format", "raw"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stderr(&o).trim_end(), want);
    }
    // A failed run leaves an existing output file as it was.
    let kept = dir.path().join("kept.conllu");
    std::fs::write(&kept, "keep me\n").unwrap();
    std::fs::write(&bad, b"fine.\n\nthe \xff run.\n").unwrap();
    let o = attend(&["tag", "--model", m, "--input", b, "--output", kept.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "keep me\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial")).count(),
        0
    );
    // An output that is not a regular file (a pipe here; /dev/null for a
    // user) is written as it is, not replaced by a file moved onto it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let fifo = dir.path().join("pipe");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        std::fs::write(&bad, b"the run watch it.\n").unwrap();
        let o = attend(&["tag", "--model", m, "--input", b, "--format", "raw", "--output", fifo.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe was replaced by a file");
        assert!(reader.join().unwrap().contains("# text = the run watch it."));
    }

    // Text without any sentence end, and a long line without spaces: one sentence, one token each.
    let o = attend_stdin(&["tag", "--model", m, "--output-format", "horizontal"], b"the run watch it");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "the run watch it\n");
    let long = vec![b'x'; 300_000];
    let o = attend_stdin(&["tag", "--model", m, "--output-format", "json"], &long);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let chars: usize = j["tokens"].as_array().unwrap().iter().map(|t| t["form"].as_str().unwrap().len()).sum();
    assert_eq!(chars, 300_000);
}
