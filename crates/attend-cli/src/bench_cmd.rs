//! `attend bench`: kernel benchmarks with ratios against the same run's GEMM.

use anyhow::{bail, Result};
use attend::attend_kernels::Isa;
use attend::bench::{bench_attention, AttentionBenchConfig, AttentionBenchRow, BenchPattern};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time the fused attention kernels (forward, forward + backward) and
    /// compare their GFLOP/s with a plain GEMM of the same flops measured in
    /// the same run.
    Attention(AttentionArgs),
}

#[derive(Args)]
pub struct AttentionArgs {
    /// Sequence lengths N.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096,8192,16384")]
    sizes: Vec<usize>,
    /// Patterns: dense, causal, windowW (W keys each side, e.g. window256).
    #[arg(long, value_delimiter = ',', default_value = "dense,causal,window256")]
    patterns: Vec<BenchPattern>,
    /// batch * heads.
    #[arg(long, default_value_t = 8)]
    batch_heads: usize,
    #[arg(long, default_value_t = 64)]
    head_dim: usize,
    /// Time the forward pass only.
    #[arg(long)]
    forward_only: bool,
    /// Repeat each measurement for at least this many seconds and at least 3 times (median reported).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Use the portable kernels even where AVX2 + FMA is available.
    #[arg(long)]
    portable: bool,
    /// Print one JSON document (machine, settings, rows) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Attention(args) => attention(args),
    }
}

fn attention(args: AttentionArgs) -> Result<()> {
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        bail!("--sizes needs positive sequence lengths");
    }
    if args.batch_heads == 0 || args.head_dim == 0 {
        bail!("--batch-heads and --head-dim must be positive");
    }
    let cfg = AttentionBenchConfig {
        sizes: args.sizes,
        patterns: args.patterns,
        batch_heads: args.batch_heads,
        head_dim: args.head_dim,
        backward: !args.forward_only,
        min_seconds: args.min_seconds,
        isa: if args.portable { Isa::Portable } else { Isa::detect() },
    };
    let threads = attend::rayon::current_num_threads();
    let machine = format!("{} ({threads} threads, {:?})", cpu_model(), cfg.isa);
    if !args.json {
        println!("fused attention, batch*heads {}, head_dim {}, {machine}", cfg.batch_heads, cfg.head_dim);
        println!(
            "{:<11} {:>6} {:<17} {:>10} {:>5} {:>8} {:>9} {:>10} {:>7} {:>10}",
            "pattern", "N", "pass", "ms", "reps", "GFLOP/s", "GEMM", "GEMM GF/s", "ratio", "extra MiB"
        );
    }
    let print = |r: &AttentionBenchRow| {
        if args.json {
            eprintln!("{} N={} {}: {:.1} GFLOP/s ({:.0}% of GEMM)", r.pattern, r.seq, r.pass, r.gflops, 100.0 * r.ratio_to_gemm);
        } else {
            let mem = r.extra_mib.map_or("n/a".to_string(), |m| format!("{m:.2}"));
            println!(
                "{:<11} {:>6} {:<17} {:>10.3} {:>5} {:>8.1} {:>9} {:>10.1} {:>6.1}% {:>10}",
                r.pattern,
                r.seq,
                r.pass,
                r.seconds * 1e3,
                r.reps,
                r.gflops,
                format!("{0}^3", r.gemm_size),
                r.gemm_gflops,
                100.0 * r.ratio_to_gemm,
                mem
            );
        }
    };
    let rows = bench_attention(&cfg, print);
    if args.json {
        let doc = serde_json::json!({
            "bench": "attention",
            "machine": machine,
            "threads": threads,
            "isa": format!("{:?}", cfg.isa),
            "batch_heads": cfg.batch_heads,
            "head_dim": cfg.head_dim,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

/// The CPU's model name (Linux), or the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
