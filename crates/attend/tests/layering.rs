//! The architecture's rules, checked on the sources (docs/architecture.md):
//! - kernels <- library <- tools: what each crate's `Cargo.toml` may list;
//! - no import cycles between the source files of a crate, of any length,
//!   counting every path that names another file's module: `use` trees
//!   (nested groups too), inline `crate::..` and `super::..` paths, and a
//!   parent module's paths into its children (`config::TaggerConfig` in a
//!   `mod.rs`). Comments, string literals and `#[cfg(test)]` code do not
//!   count; declaring a child module (`mod task;`) does not either;
//! - the checkpoint and settings modules name no model, models never import
//!   each other, and the CLI's kind modules never import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module path of a source file (`src/models/tagger/mod.rs` -> `models::tagger`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments, string and char literals (their
/// contents become spaces), and without what follows its first
/// `#[cfg(test)]` (unit tests may reach anywhere in their crate).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if b.get(i + 1) == Some(&b'#') || (b.get(i + 1) == Some(&b'"') && (i == 0 || !b[i - 1].is_ascii_alphanumeric())) => {
                // raw string r"..." or r#"..."#
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push(' ');
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            // a char literal ('a', '\n', '"'), not a lifetime ('a)
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// Expands a `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| expand_use(&format!("{prefix}{p}"))).collect()
}

/// Every path of `code` that may name a module of this crate: `use` trees
/// and inline paths of two or more segments (`crate::x::y`, `super::T`,
/// `config::T`), as written.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    // `use` declarations (they may span lines)
    let mut others = String::new();
    while let Some(i) = find_word(rest, "use") {
        others.push_str(&rest[..i]);
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        let tree = rest[i + 3..end].trim().trim_start_matches("::");
        let tree = tree.split(" as ").next().unwrap_or(tree);
        out.extend(expand_use(tree).into_iter().map(|p| p.split(" as ").next().unwrap_or(&p).to_string()));
        rest = &rest[(end + 1).min(rest.len())..];
    }
    others.push_str(rest);
    // inline paths
    let b = others.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if ident(b[i]) && (i == 0 || !(ident(b[i - 1]) || b[i - 1] == b':')) {
            let mut j = i;
            while j < b.len()
                && (ident(b[j]) || (b[j] == b':' && b.get(j + 1) == Some(&b':')) || (b[j] == b':' && j > 0 && b[j - 1] == b':'))
            {
                j += 1;
            }
            let path = others[i..j].trim_end_matches(':');
            if path.contains("::") {
                out.push(path.to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Where the keyword `word` starts in `text` as a whole word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut from = 0;
    while let Some(k) = text[from..].find(word) {
        let i = from + k;
        let before = i == 0 || !(ident(b[i - 1]) || b[i - 1] == b':');
        let after = b.get(i + word.len()).is_some_and(|c| c.is_ascii_whitespace());
        if before && after {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

/// The module a path names, as segments from the crate root: `crate::`,
/// `super::` and `self::` resolved from `here`; a path starting with a
/// child module of `here` resolved to it; anything else (another crate, a
/// local item) is `None`.
fn absolute(path: &str, here: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segs.first().copied()? {
        "crate" => {
            segs.remove(0);
            Vec::new()
        }
        "self" => {
            segs.remove(0);
            here.to_vec()
        }
        "super" => here.to_vec(),
        child if modules.contains_key(&[here, &[child.to_string()]].concat()) => here.to_vec(),
        _ => return None,
    };
    while segs.first() == Some(&"super") {
        segs.remove(0);
        base.pop()?;
    }
    base.extend(segs.iter().map(|s| s.to_string()));
    Some(base)
}

/// The file defining the longest module prefix of `path`.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]).cloned())
}

/// A crate's import graph: for each source file (relative to `src/`), the files it imports.
fn import_graph(krate: &str) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let src = crates_dir().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_of(&src, f), f.clone())).collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let targets: BTreeSet<PathBuf> = paths(&code)
            .iter()
            .filter_map(|p| absolute(p, module, &modules))
            .filter_map(|p| resolve(&p, &modules))
            .filter(|t| t != file)
            .map(|t| t.strip_prefix(&src).unwrap().to_path_buf())
            .collect();
        graph.insert(file.strip_prefix(&src).unwrap().to_path_buf(), targets);
    }
    graph
}

/// The strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s =
        State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_import_cycles_of_any_length() {
    for krate in ["attend-kernels", "attend", "attend-cli"] {
        let graph = import_graph(krate);
        let edges: usize = graph.values().map(BTreeSet::len).sum();
        assert!(edges >= 4, "{krate}: the scan found only {edges} imports");
        let found = cycles(&graph);
        assert!(found.is_empty(), "{krate}: files in import cycles: {found:?}");
    }
}

/// The scan sees what the rules are about: inline paths, nested `use`
/// groups and a parent's paths into its children, but not comments or
/// strings; and the cycle finder finds a cycle of three.
#[test]
fn the_scan_reads_paths_as_rust_does() {
    let code = code_of("use crate::a::{b, c::{d, e as f}};\n// crate::x::y\nfn g() { let s = \"crate::z::w\"; super::super::h::k(); config::T::new(); }\n#[cfg(test)]\nuse crate::t::u;");
    let found = paths(&code);
    for want in ["crate::a::b", "crate::a::c::d", "crate::a::c::e", "super::super::h::k", "config::T::new"] {
        assert!(found.iter().any(|p| p == want), "{want} not in {found:?}");
    }
    for unwanted in ["crate::x::y", "crate::z::w", "crate::t::u"] {
        assert!(!found.iter().any(|p| p == unwanted), "{unwanted} found in {found:?}");
    }
    let p = |s: &str| PathBuf::from(s);
    let graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> =
        [(p("a"), [p("b")].into()), (p("b"), [p("c")].into()), (p("c"), [p("a")].into()), (p("d"), [p("a")].into())].into_iter().collect();
    assert_eq!(cycles(&graph), vec![vec![p("a"), p("b"), p("c")]]);
}

#[test]
fn checkpoint_and_settings_name_no_model_and_models_do_not_import_each_other() {
    let graph = import_graph("attend");
    let model_of =
        |f: &Path| f.strip_prefix("models").ok().and_then(|r| (r.components().count() > 1).then(|| r.iter().next().unwrap().to_owned()));
    for common in ["checkpoint.rs", "config.rs", "train.rs", "optim.rs"] {
        let into_models: Vec<&PathBuf> = graph[Path::new(common)].iter().filter(|t| t.starts_with("models")).collect();
        assert!(into_models.is_empty(), "{common} imports models: {into_models:?}");
    }
    let mut checked = 0;
    for (file, targets) in &graph {
        let Some(kind) = model_of(file) else { continue };
        checked += 1;
        for t in targets {
            assert!(model_of(t).is_none_or(|k| k == kind), "{} imports {} (models never import each other)", file.display(), t.display());
            assert!(!t.starts_with("api"), "{} imports the task-level API {}", file.display(), t.display());
        }
    }
    assert!(checked >= 12, "the scan saw {checked} model files");
}

#[test]
fn the_cli_kind_modules_do_not_import_each_other() {
    let graph = import_graph("attend-cli");
    let kinds = ["tagger_cmd.rs", "graph_cmd.rs", "sequence_cmd.rs", "segment_cmd.rs"];
    for a in kinds {
        let targets = &graph[Path::new(a)];
        for b in kinds.iter().filter(|b| **b != a) {
            assert!(!targets.contains(Path::new(b)), "{a} imports {b}: shared code belongs in common.rs or the library");
        }
    }
    // The registry reaches the kinds; the scan sees it.
    assert!(graph[Path::new("kinds.rs")].contains(Path::new("tagger_cmd.rs")));
}

/// What each crate may depend on: the kernels on no ML framework, the
/// library on no plotting, web or benchmark code.
#[test]
fn crates_depend_only_on_what_their_layer_allows() {
    let deps = |krate: &str| {
        let text = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
        let section = text.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap().to_string();
        section.lines().filter_map(|l| l.split(['.', ' ', '=']).next()).filter(|n| !n.is_empty()).map(str::to_string).collect::<Vec<_>>()
    };
    let kernels = deps("attend-kernels");
    for banned in ["candle-core", "candle-nn", "attend"] {
        assert!(!kernels.iter().any(|d| d == banned), "attend-kernels depends on {banned}");
    }
    let library = deps("attend");
    assert!(library.iter().any(|d| d == "candle-core"), "the scan read attend's dependencies: {library:?}");
    for banned in ["plotters", "axum", "tokio", "criterion", "candle-nn", "indicatif", "clap", "attend-cli"] {
        assert!(!library.iter().any(|d| d == banned), "the attend library depends on {banned}");
    }
}
