//! `attend bench`: kernel benchmarks with ratios against the same run's GEMM.

use anyhow::{bail, Result};
use attend::attend_kernels::Isa;
use attend::data::planetoid;
use attend::models::{GraphModelConfig, GraphScoreType};
use attend::nn::AttentionKernel;
use attend_cli::bench::{bench_attention, AttentionBenchConfig, AttentionBenchRow, BenchPattern};
use attend_cli::bench::{bench_graph_kernel, bench_graph_model, GraphKernelRow, GraphModelRow};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time the fused attention kernels (forward, forward + backward) and
    /// compare their GFLOP/s with a plain GEMM of the same flops measured in
    /// the same run.
    Attention(AttentionArgs),
    /// Graph attention: ms per training epoch and per inference pass on a
    /// graph directory (fused kernel vs the dense adjacency-masked
    /// reference, same run), and the fused kernel's time and memory on
    /// random graphs of growing edge count.
    Graph(GraphArgs),
    /// The default tagger end to end: words per second training it (the
    /// training loop's own steps on the first batches of a seeded epoch)
    /// and tagging the test set, and the peak RSS. `--export DIR` also
    /// writes those batches for the PyTorch twin (scripts/bench-torch.sh).
    Tagger(TaggerArgs),
    /// The viewer's API: latency of `POST /api/tag` for one sentence over
    /// loopback HTTP, against tagging it in-process in the same run.
    Serve(crate::serve::BenchServeArgs),
}

#[derive(Args)]
pub struct TaggerArgs {
    /// Treebank directory with *-ud-train.conllu and *-ud-test.conllu.
    #[arg(long, default_value = "../shared/data/ud-english-ewt")]
    treebank: PathBuf,
    /// Timed training steps (batches of about 1,024 words).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 5)]
    warmup_steps: usize,
    /// Times the test set is tagged (median reported).
    #[arg(long, default_value_t = 3)]
    tag_runs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the batches, sizes and learning rates to DIR/batches.json
    /// for a twin implementation.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// With a list of --threads counts: run the list this many times,
    /// interleaved (1,2,1,2,...), and report each count's median run (of
    /// an even number, the faster middle one), so that a shared, noisy
    /// machine moves every count alike. Also with one count.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// With a list of --threads counts: also run, for each count N above
    /// one, N one-thread benchmarks at the same time (in each round) and
    /// report their summed words/s over the one-thread run's. That is what
    /// this machine gives N independent jobs that share nothing: the
    /// ceiling for N-way data parallelism here (shared caches, memory
    /// bandwidth, clock limits and the host's other load all lower it).
    #[arg(long)]
    independent: bool,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct GraphArgs {
    /// Graph directory (e.g. Cora) for the end-to-end rows; skipped when absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Nodes of the random graphs.
    #[arg(long, default_value_t = 200_000)]
    random_nodes: usize,
    /// Random edge counts (before symmetrising; 0 skips the random graphs).
    #[arg(long, value_delimiter = ',', default_value = "500000,1000000,2000000")]
    random_edges: Vec<usize>,
    /// Score for the model rows: additive or dot.
    #[arg(long, default_value = "additive")]
    score: GraphScoreType,
    /// Skip the dense reference (O(nodes^2) memory and time).
    #[arg(long)]
    no_reference: bool,
    /// Repeat each measurement for at least this many seconds and at least 3 times (median reported).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
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
    /// Instruction set of the fused kernels: auto (the fastest this CPU has),
    /// avx512, avx2 or portable, to compare paths on one machine.
    #[arg(long, value_enum, default_value_t = IsaChoice::Auto)]
    isa: IsaChoice,
    /// Print one JSON document (machine, settings, rows) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--isa` of `attend bench attention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsaChoice {
    Auto,
    Avx512,
    Avx2,
    Portable,
}

impl IsaChoice {
    /// The instruction set, or an error naming what this CPU lacks.
    fn resolve(self) -> Result<Isa> {
        let want = match self {
            IsaChoice::Auto => return Ok(Isa::detect()),
            IsaChoice::Portable => return Ok(Isa::Portable),
            #[cfg(target_arch = "x86_64")]
            IsaChoice::Avx512 => Isa::Avx512,
            #[cfg(target_arch = "x86_64")]
            IsaChoice::Avx2 => Isa::Avx2Fma,
            #[cfg(not(target_arch = "x86_64"))]
            other => bail!("--isa {other:?} exists only on x86_64"),
        };
        if !want.is_available() {
            bail!("this CPU ({}) cannot run --isa {self:?}: it has {:?}", cpu_model(), Isa::available());
        }
        Ok(want)
    }
}

/// Runs a benchmark; `threads` is the `--threads` list (more than one
/// count only for `bench tagger`).
pub fn run(command: BenchCommand, threads: &[usize]) -> Result<()> {
    match command {
        BenchCommand::Tagger(args) if threads.len() > 1 || args.rounds != 1 => tagger_scaling(args, threads),
        BenchCommand::Attention(args) => attention(args),
        BenchCommand::Graph(args) => graph(args),
        BenchCommand::Serve(args) => crate::serve::bench(args),
        BenchCommand::Tagger(args) => tagger(args),
    }
}

fn tagger(args: TaggerArgs) -> Result<()> {
    use attend::data::conllu;
    use attend_cli::bench_tagger::{bench_tagger, TaggerBenchConfig};
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let [train, _, test] = conllu::find_splits(&args.treebank)?;
    let (Some(train), Some(test)) = (train, test) else {
        bail!("{} needs a *-ud-train.conllu and a *-ud-test.conllu file", args.treebank.display());
    };
    let (train, test) = (conllu::read_file(&train)?, conllu::read_file(&test)?);
    let threads = attend::rayon::current_num_threads();
    let machine = format!("{} ({threads} threads, {:?})", cpu_model(), Isa::detect());
    let cfg = TaggerBenchConfig { steps: args.steps, warmup_steps: args.warmup_steps, tag_runs: args.tag_runs, seed: args.seed };
    eprintln!("default tagger, {} + {} training steps, {machine}", cfg.warmup_steps, cfg.steps);
    let r = bench_tagger(&train, &test, &cfg, args.export.as_deref())?;
    if args.json {
        let doc = serde_json::json!({ "bench": "tagger", "implementation": "attend", "machine": machine, "threads": threads, "result": r });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("parameters      {}", r.parameters);
        println!(
            "train           {:.0} words/s ({} words in {:.2} s; loss {:.3} -> {:.3})",
            r.train_words_per_second, r.train_words, r.train_seconds, r.first_loss, r.last_loss
        );
        println!(
            "tag             {:.0} words/s ({} words in {:.3} s, median; {} products)",
            r.tag_words_per_second, r.tag_words, r.tag_seconds, r.tag_precision
        );
        if let Some(f32_speed) = r.tag_f32_words_per_second {
            println!(
                "tag, f32        {f32_speed:.0} words/s (the same runs with f32 products: bf16 is {:.2}x)",
                r.tag_words_per_second / f32_speed
            );
        }
        println!("peak RSS        {}", r.peak_rss_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    }
    Ok(())
}

/// The measured FMA peak as one line: the figure, how it was measured,
/// and (where the clock is known) what a core does per cycle.
fn peak_line(p: &attend_cli::bench::FmaPeak) -> String {
    let per_cycle = match (p.clock_ghz, p.flops_per_cycle) {
        (Some(ghz), Some(f)) => format!(" = {f:.1} flops per cycle per core at {ghz:.2} GHz (two full-width FMA pipes: {})", 4 * p.lanes),
        _ => String::new(),
    };
    format!("FMA peak {:.1} GFLOP/s measured now ({} thread(s), {} FMA loop{per_cycle})", p.gflops, p.threads, p.isa)
}

/// `attend bench tagger --threads 1,2,4`: the benchmark once per count, each
/// in a fresh process of this program (its own thread pool and peak RSS),
/// then speed-ups over the first count and Amdahl's law fitted to them.
fn tagger_scaling(args: TaggerArgs, counts: &[usize]) -> Result<()> {
    use anyhow::Context;
    use attend_cli::bench_tagger::{Scaling, TaggerBenchResult};
    if args.export.is_some() {
        bail!("--export writes one run's batches: give one --threads count with it");
    }
    if counts.contains(&0) {
        bail!("--threads counts must be at least 1");
    }
    // `--rounds` without --threads: this process's count.
    let counts = if counts.is_empty() { vec![attend::rayon::current_num_threads()] } else { counts.to_vec() };
    let counts = &counts[..];
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.independent && !counts.contains(&1) {
        bail!("--independent compares with the one-thread run: put 1 among the --threads counts");
    }
    let exe = std::env::current_exe().context("finding this program to run it once per thread count")?;
    // One benchmark process with `n` threads, started (stdout captured).
    let start = |n: usize| -> Result<std::process::Child> {
        std::process::Command::new(&exe)
            .args(["--threads", &n.to_string(), "--precision", attend::precision::get().as_str(), "bench", "tagger", "--json"])
            .arg("--treebank")
            .arg(&args.treebank)
            .args(["--steps", &args.steps.to_string(), "--warmup-steps", &args.warmup_steps.to_string()])
            .args(["--tag-runs", &args.tag_runs.to_string(), "--seed", &args.seed.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {}", exe.display()))
    };
    let finish = |child: std::process::Child, what: &str| -> Result<TaggerBenchResult> {
        let out = child.wait_with_output().with_context(|| format!("waiting for {what}"))?;
        if !out.status.success() {
            bail!("{what} failed ({})", out.status);
        }
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading a run's JSON")?;
        serde_json::from_value(doc["result"].clone()).context("reading a run's result")
    };
    // Every run of every count, the rounds interleaved.
    let mut all: Vec<Vec<TaggerBenchResult>> = vec![Vec::new(); counts.len()];
    // With --independent: per count, the summed training words/s of that
    // many one-thread runs at once, per round.
    let mut together: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    for round in 1..=args.rounds {
        for (i, &n) in counts.iter().enumerate() {
            if args.rounds > 1 {
                eprintln!("round {round} of {}, --threads {n}:", args.rounds);
            } else {
                eprintln!("--threads {n}:");
            }
            all[i].push(finish(start(n)?, &format!("the run with --threads {n}"))?);
            if args.independent && n > 1 {
                eprintln!("{n} one-thread runs at once:");
                let children = (0..n).map(|_| start(1)).collect::<Result<Vec<_>>>()?;
                let mut sum = 0.0;
                for child in children {
                    sum += finish(child, "a one-thread run beside others")?.train_words_per_second;
                }
                together[i].push(sum);
            }
        }
    }
    // Per count: the run with the median training speed (its tagging and
    // phases with it), and the median tagging speed over the rounds.
    let spread = |xs: Vec<f64>| (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(0.0, f64::max));
    let mut runs: Vec<(usize, TaggerBenchResult)> = Vec::new();
    let mut spreads: Vec<((f64, f64), (f64, f64))> = Vec::new();
    for (&n, mut rs) in counts.iter().zip(all) {
        spreads.push((
            spread(rs.iter().map(|r| r.train_words_per_second).collect()),
            spread(rs.iter().map(|r| r.tag_words_per_second).collect()),
        ));
        let tag = median(rs.iter().map(|r| r.tag_words_per_second).collect());
        rs.sort_by(|a, b| a.train_words_per_second.total_cmp(&b.train_words_per_second));
        let mut r = rs.swap_remove(rs.len() / 2);
        r.tag_words_per_second = tag;
        runs.push((n, r));
    }
    let train = Scaling::fit(&runs.iter().map(|(n, r)| (*n, r.train_words_per_second)).collect::<Vec<_>>());
    let tag = Scaling::fit(&runs.iter().map(|(n, r)| (*n, r.tag_words_per_second)).collect::<Vec<_>>());
    if args.json {
        let doc = serde_json::json!({
            "bench": "tagger-scaling",
            "machine": cpu_model(),
            "isa": format!("{:?}", Isa::detect()),
            "rounds": args.rounds,
            "runs": runs.iter().map(|(n, r)| serde_json::json!({ "threads": n, "result": r })).collect::<Vec<_>>(),
            "train": train,
            "tag": tag,
            "independent": counts.iter().zip(&together).filter(|(_, s)| !s.is_empty())
                .map(|(n, s)| serde_json::json!({ "runs": n, "train_words_per_second_together": median(s.clone()) }))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("default tagger, {} + {} training steps, {} ({:?})", args.warmup_steps, args.steps, cpu_model(), Isa::detect());
    if args.rounds > 1 {
        println!("medians of {} interleaved rounds (each count's range after its speed-up)", args.rounds);
    }
    println!(
        "{:>7} {:>13} {:>8} {:>8} {:>13} {:>8} {:>8} {:>9}",
        "threads", "train words/s", "speed-up", "Amdahl", "tag words/s", "speed-up", "Amdahl", "peak RSS"
    );
    for (i, (n, r)) in runs.iter().enumerate() {
        let rss = r.peak_rss_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB"));
        let ((train_lo, train_hi), (tag_lo, tag_hi)) = spreads[i];
        let range =
            if args.rounds > 1 { format!("  train {train_lo:.0}-{train_hi:.0}, tag {tag_lo:.0}-{tag_hi:.0}") } else { String::new() };
        println!(
            "{n:>7} {:>13.0} {:>7.2}x {:>7.2}x {:>13.0} {:>7.2}x {:>7.2}x {rss:>9}{range}",
            r.train_words_per_second,
            train.speedups[i],
            train.predicted(*n),
            r.tag_words_per_second,
            tag.speedups[i],
            tag.predicted(*n),
        );
    }
    for (what, fit) in [("training", &train), ("tagging", &tag)] {
        println!("{what}: {}", fit.describe());
    }
    if let Some(one) = runs.iter().find(|(n, _)| *n == 1).map(|(_, r)| r.train_words_per_second) {
        for ((&n, sums), (_, r)) in counts.iter().zip(&together).zip(&runs) {
            if !sums.is_empty() {
                let together = median(sums.clone());
                let ceiling = together / one;
                println!(
                    "{n} one-thread runs at once: {together:.0} training words/s together, {ceiling:.2}x one alone (the ceiling here for {n} threads); {n} threads reached {:.2}x, {:.0}% of it",
                    r.train_words_per_second / one,
                    100.0 * r.train_words_per_second / one / ceiling
                );
            }
        }
    }
    if let Some((_, first)) = runs.first() {
        let baselines: Vec<String> = runs
            .iter()
            .filter_map(|(n, r)| {
                r.tag_f32_words_per_second.map(|f| format!("{n} threads {f:.0} words/s ({:.2}x)", r.tag_words_per_second / f))
            })
            .collect();
        if baselines.is_empty() {
            println!("tagging ran {} products", first.tag_precision);
        } else {
            println!("tagging ran {} products; with f32 products in the same runs: {}", first.tag_precision, baselines.join(", "));
        }
    }
    println!("a training step's time, ms per step (waiting: threads outside a piece of their own while a split batch's longest piece runs, idle or helping it; starting: from handing the pieces out to each one's start; update: adding the pieces' gradients, their norm and AdamW, one pass)");
    println!(
        "{:>7} {:>8} {:>8} {:>16} {:>8} {:>8} {:>8}",
        "threads", "total", "prepare", "forward+backward", "waiting", "starting", "update"
    );
    for (n, r) in &runs {
        let p = &r.train_phases;
        let ms = |s: f64| 1e3 * s / p.steps.max(1) as f64;
        // Thread time not spent on a piece, as wall time over the threads.
        let waiting = if p.pieces_busy > 0.0 { (p.forward_backward * *n as f64 - p.pieces_busy).max(0.0) / *n as f64 } else { 0.0 };
        println!(
            "{n:>7} {:>8.1} {:>8.1} {:>16.1} {:>8.1} {:>8.2} {:>8.1}",
            ms(p.total()),
            ms(p.prepare),
            ms(p.forward_backward),
            ms(waiting),
            ms(p.pieces_starting / *n as f64),
            ms(p.update)
        );
    }
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let k = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[k]
    } else {
        (xs[k - 1] + xs[k]) / 2.0
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
        isa: args.isa.resolve()?,
    };
    let threads = attend::rayon::current_num_threads();
    let machine = format!("{} ({threads} threads, {:?})", cpu_model(), cfg.isa);
    let peak = attend_cli::bench::fma_peak(cfg.isa, threads);
    let peak_line = peak_line(&peak);
    if !args.json {
        println!("fused attention, batch*heads {}, head_dim {}, {machine}", cfg.batch_heads, cfg.head_dim);
        println!("{peak_line}");
        println!(
            "{:<11} {:>6} {:<17} {:>10} {:>5} {:>8} {:>9} {:>10} {:>7} {:>7} {:>10}",
            "pattern", "N", "pass", "ms", "reps", "GFLOP/s", "GEMM", "GEMM GF/s", "ratio", "% peak", "extra MiB"
        );
    } else {
        eprintln!("{peak_line}");
    }
    let print = |r: &AttentionBenchRow| {
        if args.json {
            eprintln!("{} N={} {}: {:.1} GFLOP/s ({:.0}% of GEMM)", r.pattern, r.seq, r.pass, r.gflops, 100.0 * r.ratio_to_gemm);
        } else {
            let mem = r.extra_mib.map_or("n/a".to_string(), |m| format!("{m:.2}"));
            let of_peak = format!("{:.1}%", 100.0 * r.gflops / peak.gflops);
            println!(
                "{:<11} {:>6} {:<17} {:>10.3} {:>5} {:>8.1} {:>9} {:>10.1} {:>6.1}% {:>7} {:>10}",
                r.pattern,
                r.seq,
                r.pass,
                r.seconds * 1e3,
                r.reps,
                r.gflops,
                format!("{0}^3", r.gemm_size),
                r.gemm_gflops,
                100.0 * r.ratio_to_gemm,
                of_peak,
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
            "fma_peak": peak,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

pub fn graph(args: GraphArgs) -> Result<()> {
    let threads = attend::rayon::current_num_threads();
    let machine = format!("{} ({threads} threads)", cpu_model());
    let mut models: Vec<GraphModelRow> = Vec::new();
    let mut kernels: Vec<GraphKernelRow> = Vec::new();
    let say = |line: String| if args.json { eprintln!("{line}") } else { println!("{line}") };
    say(format!("graph attention, {machine}"));
    let model_row = |r: &GraphModelRow| {
        format!(
            "{:<22} {:<10} {:>8} {:>9} {:>12.2} {:>13.2} {:>12}",
            r.graph,
            r.kernel,
            r.nodes,
            r.edges,
            r.train_epoch_ms,
            r.inference_ms,
            r.train_peak_mib.map_or("n/a".into(), |m| format!("{m:.1}"))
        )
    };
    let model_header = format!(
        "{:<22} {:<10} {:>8} {:>9} {:>12} {:>13} {:>12}",
        "graph", "kernel", "nodes", "edges", "train ms/ep", "inference ms", "train MiB"
    );
    if let Some(dir) = &args.data {
        let data = planetoid::read_dir(dir, 0)?;
        let name = dir.file_name().map_or("graph".into(), |n| n.to_string_lossy().into_owned());
        let mut kernels_to_run = vec![AttentionKernel::Fused];
        if !args.no_reference {
            kernels_to_run.push(AttentionKernel::Reference);
        }
        say(model_header.clone());
        for kernel in kernels_to_run {
            let cfg = GraphModelConfig {
                score: args.score,
                kernel,
                feature_dim: data.feature_dim,
                classes: data.classes,
                ..GraphModelConfig::default()
            };
            let row = bench_graph_model(&name, &data, &cfg, args.min_seconds)?;
            say(model_row(&row));
            models.push(row);
        }
        if let [fused, reference] = &models[..] {
            say(format!(
                "fused vs reference: training {:.1}x, inference {:.1}x faster",
                reference.train_epoch_ms / fused.train_epoch_ms,
                reference.inference_ms / fused.inference_ms
            ));
        }
    }
    let edges: Vec<usize> = args.random_edges.iter().copied().filter(|&e| e > 0).collect();
    if !edges.is_empty() {
        say(format!("\nfused additive kernel alone, {} nodes, 8 heads x 8 channels, edge dropout 0.5", args.random_nodes));
        say(format!("{:>10} {:>11} {:>15} {:>10} {:>15}", "edges", "forward ms", "fwd+bwd ms", "extra MiB", "B/(edge*head)"));
        for &e in &edges {
            let r = bench_graph_kernel(args.random_nodes, e, 8, 8, args.min_seconds);
            say(format!(
                "{:>10} {:>11.2} {:>15.2} {:>10} {:>15}",
                r.edges,
                r.forward_ms,
                r.forward_backward_ms,
                r.extra_mib.map_or("n/a".into(), |m| format!("{m:.1}")),
                r.extra_bytes_per_edge_head.map_or("n/a".into(), |b| format!("{b:.1}"))
            ));
            kernels.push(r);
        }
        let largest = *edges.iter().max().expect("non-empty");
        let data = planetoid::random_graph(args.random_nodes, largest, 500, 10, 8, 1);
        let cfg =
            GraphModelConfig { score: args.score, feature_dim: data.feature_dim, classes: data.classes, ..GraphModelConfig::default() };
        say(format!("\nGAT model on the largest random graph (500 sparse features, 8 classes)\n{model_header}"));
        let row = bench_graph_model(&format!("random-{}", data.nodes()), &data, &cfg, args.min_seconds)?;
        say(model_row(&row));
        models.push(row);
    }
    if args.json {
        let doc = serde_json::json!({ "bench": "graph", "machine": machine, "threads": threads, "models": models, "kernels": kernels });
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
