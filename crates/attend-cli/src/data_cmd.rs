//! `attend data`: turn public data releases into the formats attend reads.

use anyhow::{Context, Result};
use attend::data::{planetoid, planetoid_release};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Convert the original Planetoid release (ind.NAME.x, .y, .allx, .ally,
    /// .tx, .ty, .graph, .test.index from github.com/kimiyoung/planetoid)
    /// into a graph directory (nodes.tsv, edges.tsv, train.txt, val.txt,
    /// test.txt) with the standard split: 20 labelled nodes per class to
    /// train, 500 to validate, 1,000 to test. No Python needed.
    Planetoid(PlanetoidArgs),
}

#[derive(Args)]
pub struct PlanetoidArgs {
    /// Directory holding the release files.
    #[arg(long)]
    raw: PathBuf,
    /// Data set name in the file names: cora, citeseer or pubmed.
    #[arg(long, default_value = "cora")]
    name: String,
    /// Graph directory to write (created if missing; its five files are replaced).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Planetoid(args) => {
            let data = planetoid_release::convert(&args.raw, &args.name)?;
            planetoid::write_dir(&data, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
            let labelled = data.labels.iter().flatten().count();
            eprintln!(
                "{}: {} nodes ({} labelled, {} classes), {} features, {} directed edges; split {} / {} / {} -> {}",
                args.name,
                data.nodes(),
                labelled,
                data.classes,
                data.feature_dim,
                data.edges.len(),
                data.train.len(),
                data.val.len(),
                data.test.len(),
                args.out.display()
            );
            Ok(())
        }
    }
}
