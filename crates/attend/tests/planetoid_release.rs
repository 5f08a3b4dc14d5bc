//! The Planetoid converter against the files everyone uses: converting the
//! original release in `../shared/data/planetoid/raw` must give, byte for
//! byte, the graph directory in `../shared/data/planetoid/cora`. Skipped
//! with a message where the shared data is absent (it is never copied into
//! the repository).

use attend::data::{planetoid, planetoid_release};
use std::path::{Path, PathBuf};

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/planetoid");
    if dir.join("raw/ind.cora.graph").is_file() && dir.join("cora/nodes.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent (the Planetoid release and its converted Cora)", dir.display());
        None
    }
}

#[test]
fn cora_converts_to_the_shared_graph_files_byte_for_byte() {
    let Some(dir) = shared() else { return };
    let data = planetoid_release::convert(dir.join("raw"), "cora").unwrap();
    assert_eq!((data.nodes(), data.feature_dim, data.classes), (2708, 1433, 7));
    assert_eq!((data.train.len(), data.val.len(), data.test.len()), (140, 500, 1000));
    let out = tempfile::tempdir().unwrap();
    planetoid::write_dir(&data, out.path()).unwrap();
    for name in ["nodes.tsv", "edges.tsv", "train.txt", "val.txt", "test.txt"] {
        let ours = std::fs::read(out.path().join(name)).unwrap();
        let theirs = std::fs::read(dir.join("cora").join(name)).unwrap();
        assert!(ours == theirs, "{name} differs from the shared file ({} vs {} bytes)", ours.len(), theirs.len());
    }
}

#[test]
fn damaged_release_files_are_errors_that_name_the_file() {
    let Some(dir) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.join("raw")).unwrap() {
        let entry = entry.unwrap();
        // written afresh: the shared files are read-only, and copies keep that
        std::fs::write(tmp.path().join(entry.file_name()), std::fs::read(entry.path()).unwrap()).unwrap();
    }
    let graph = tmp.path().join("ind.cora.graph");
    let bytes = std::fs::read(&graph).unwrap();
    std::fs::write(&graph, &bytes[..bytes.len() / 2]).unwrap();
    let err = planetoid_release::convert(tmp.path(), "cora").err().unwrap().to_string();
    assert!(err.contains("ind.cora.graph") && err.contains("ends early"), "{err}");
    std::fs::write(tmp.path().join("ind.cora.test.index"), "2692\nnot-a-number\n").unwrap();
    let err = planetoid_release::convert(tmp.path(), "cora").err().unwrap().to_string();
    assert!(err.contains("ind.cora.test.index:2:") && err.contains("not-a-number"), "{err}");
    let err = planetoid_release::convert(tmp.path(), "citeseer").err().unwrap().to_string();
    assert!(err.contains("ind.citeseer.x"), "{err}");
}
