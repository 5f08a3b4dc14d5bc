//! The architecture's rules, checked on the sources: kernels <- library <-
//! tools, and no two source files of a crate import each other (a `use
//! crate::...` or `super::...` path resolves to the file that defines the
//! module it names).

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

/// Paths a file imports (`use` lines, with `{..}` groups expanded one level), as module segments.
fn imports(text: &str, here: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_tests = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("#[cfg(test)]") {
            in_tests = true; // unit tests may reach anywhere in their crate
        }
        if in_tests {
            continue;
        }
        let Some(rest) = line.strip_prefix("use ").or_else(|| line.strip_prefix("pub use ")).or_else(|| line.strip_prefix("pub(crate) use ")) else { continue };
        let rest = rest.trim_end_matches(';');
        let (base, group) = match rest.split_once('{') {
            Some((b, g)) => (b.trim_end_matches("::"), g.trim_end_matches('}').split(',').map(|s| s.trim().to_string()).collect()),
            None => (rest, vec![String::new()]),
        };
        let mut segs: Vec<String> = base.split("::").map(str::to_string).collect();
        let start: Vec<String> = match segs.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => here[..here.len().saturating_sub(1)].to_vec(),
            Some("self") => here.to_vec(),
            // a child module of this one (`use config::TaggerConfig;` in a mod.rs)
            Some(child) if modules.contains_key(&[here, &[child.to_string()]].concat()) => {
                segs.insert(0, String::new());
                here.to_vec()
            }
            _ => continue,
        };
        segs.remove(0);
        while segs.first().is_some_and(|s| s == "super") {
            segs.remove(0);
        }
        for g in group {
            let mut path = start.clone();
            path.extend(segs.iter().cloned());
            path.extend(g.split("::").filter(|s| !s.is_empty() && *s != "self").map(str::to_string));
            out.push(path);
        }
    }
    out
}

/// The longest prefix of `path` that is a module with its own file.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]).cloned())
}

#[test]
fn no_two_source_files_import_each_other() {
    for krate in ["attend-kernels", "attend", "attend-cli"] {
        let src = crates_dir().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_of(&src, f), f.clone())).collect();
        let mut edges: BTreeSet<(PathBuf, PathBuf)> = BTreeSet::new();
        for (module, file) in &modules {
            for path in imports(&std::fs::read_to_string(file).unwrap(), module, &modules) {
                if let Some(target) = resolve(&path, &modules).filter(|t| t != file) {
                    edges.insert((file.clone(), target));
                }
            }
        }
        assert!(edges.len() >= 4, "{krate}: the scan found only {} imports", edges.len());
        let cycles: Vec<String> = edges
            .iter()
            .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
            .map(|(a, b)| format!("{} <-> {}", a.strip_prefix(&src).unwrap().display(), b.strip_prefix(&src).unwrap().display()))
            .collect();
        assert!(cycles.is_empty(), "{krate}: files that import each other: {cycles:?}");
    }
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
