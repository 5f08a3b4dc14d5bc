//! Attention kernel benchmarks against the machine's own GEMM ceiling,
//! measured in the same run (`attend bench attention`).
//!
//! Every row times the fused kernel on `[1, batch_heads, N, head_dim]`
//! inputs and divides its GFLOP/s by the GFLOP/s of a plain square f32 GEMM
//! (the `gemm` crate that candle uses, on the same threads) of the same total
//! flops. Flops count only the query-key pairs the pattern lets through:
//! forward `4 * pairs * head_dim` per head, backward 2.5 times that.

use crate::timing::median_seconds;
use attend_kernels::dense::{flash_backward_on, flash_forward_on};
use attend_kernels::reference::AttentionShape;
use attend_kernels::{AttentionParams, AttentionPattern, Isa};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A pattern to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchPattern {
    Dense,
    Causal,
    /// Symmetric window: each query sees `w` keys to each side and itself.
    Window(usize),
}

impl BenchPattern {
    pub fn pattern(&self) -> AttentionPattern {
        match *self {
            BenchPattern::Dense => AttentionPattern::dense(),
            BenchPattern::Causal => AttentionPattern::dense().with_causal(true),
            BenchPattern::Window(w) => AttentionPattern::dense().with_window(w, w),
        }
    }
}

impl fmt::Display for BenchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchPattern::Dense => write!(f, "dense"),
            BenchPattern::Causal => write!(f, "causal"),
            BenchPattern::Window(w) => write!(f, "window{w}"),
        }
    }
}

impl FromStr for BenchPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(BenchPattern::Dense),
            "causal" => Ok(BenchPattern::Causal),
            _ => s
                .strip_prefix("window")
                .and_then(|w| w.parse().ok())
                .map(BenchPattern::Window)
                .ok_or_else(|| format!("unknown pattern '{s}': use dense, causal or windowW (e.g. window256)")),
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct AttentionBenchConfig {
    pub sizes: Vec<usize>,
    pub patterns: Vec<BenchPattern>,
    pub batch_heads: usize,
    pub head_dim: usize,
    /// Also time forward + backward.
    pub backward: bool,
    /// Repeat each measurement until this much time is spent (one run at least).
    pub min_seconds: f64,
    pub isa: Isa,
}

impl Default for AttentionBenchConfig {
    fn default() -> Self {
        AttentionBenchConfig {
            sizes: vec![256, 1024, 4096, 8192, 16384],
            patterns: vec![BenchPattern::Dense, BenchPattern::Causal, BenchPattern::Window(256)],
            batch_heads: 8,
            head_dim: 64,
            backward: true,
            min_seconds: 1.0,
            isa: Isa::detect(),
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionBenchRow {
    pub pattern: String,
    pub seq: usize,
    /// "forward" or "forward+backward".
    pub pass: &'static str,
    /// Median seconds per call.
    pub seconds: f64,
    pub reps: usize,
    /// Visible query-key pairs over N^2.
    pub visited_fraction: f64,
    pub gflop: f64,
    pub gflops: f64,
    /// Side of the square GEMM used as the ceiling, and its GFLOP/s.
    pub gemm_size: usize,
    pub gemm_gflops: f64,
    /// `gflops / gemm_gflops`.
    pub ratio_to_gemm: f64,
    /// Peak heap beyond the inputs and the returned gradients/outputs, MiB
    /// (`None` without the counting allocator).
    pub extra_mib: Option<f64>,
}

/// Runs the benchmark, calling `on_row` as each row is measured.
pub fn bench_attention(cfg: &AttentionBenchConfig, mut on_row: impl FnMut(&AttentionBenchRow)) -> Vec<AttentionBenchRow> {
    let mut gemm_cache: BTreeMap<usize, f64> = BTreeMap::new();
    let mut rows = Vec::new();
    for &n in &cfg.sizes {
        let shape = AttentionShape { batch: 1, heads: cfg.batch_heads, seq: n, head_dim: cfg.head_dim };
        let len = shape.len();
        let (q, k, v, dout) = (values(len, 1), values(len, 2), values(len, 3), values(len, 4));
        for bp in &cfg.patterns {
            let pattern = bp.pattern();
            let pairs: usize = (0..n).map(|i| pattern.key_range(0, i, n).len()).sum();
            let forward_flop = 4.0 * pairs as f64 * cfg.head_dim as f64 * cfg.batch_heads as f64;
            let params = AttentionParams { shape, scale: 1.0 / (cfg.head_dim as f32).sqrt(), pattern: &pattern, dropout: None };
            let out_bytes = len * 4;
            let mut passes: Vec<(&'static str, f64, usize)> = vec![("forward", forward_flop, out_bytes)];
            if cfg.backward {
                passes.push(("forward+backward", forward_flop * 3.5, out_bytes * 4));
            }
            for (pass, flop, output_bytes) in passes {
                let backward = pass != "forward";
                let run = || {
                    let f = flash_forward_on(cfg.isa, &q, &k, &v, &params);
                    if backward {
                        let g = flash_backward_on(cfg.isa, &q, &k, &v, &f.out, &f.lse, &dout, &params);
                        std::hint::black_box(&g.dq);
                    }
                    std::hint::black_box(&f.out);
                };
                let before = crate::memory::live();
                crate::memory::reset_peak();
                let (seconds, reps) = median_seconds(cfg.min_seconds, run);
                let extra_mib = match (before, crate::memory::peak()) {
                    (Some(b), Some(p)) => Some(p.saturating_sub(b).saturating_sub(output_bytes) as f64 / (1 << 20) as f64),
                    _ => None,
                };
                let gemm_size = gemm_side(flop);
                let gemm_gflops = *gemm_cache.entry(gemm_size).or_insert_with(|| gemm_gflops(gemm_size, cfg.min_seconds));
                let gflops = flop / seconds / 1e9;
                let row = AttentionBenchRow {
                    pattern: bp.to_string(),
                    seq: n,
                    pass,
                    seconds,
                    reps,
                    visited_fraction: pairs as f64 / (n as f64 * n as f64),
                    gflop: flop / 1e9,
                    gflops,
                    gemm_size,
                    gemm_gflops,
                    ratio_to_gemm: gflops / gemm_gflops,
                    extra_mib,
                };
                on_row(&row);
                rows.push(row);
            }
        }
    }
    rows
}

// ------------------------------------------------------------------ graphs

/// One graph model measured end to end (`attend bench graph`).
#[derive(Debug, Clone, Serialize)]
pub struct GraphModelRow {
    pub graph: String,
    /// "fused" or "reference" (dense adjacency-masked).
    pub kernel: String,
    pub nodes: usize,
    /// Directed edges the attention visits, self loops included.
    pub edges: usize,
    /// One training step: forward with dropout, loss, backward, optimizer update.
    pub train_epoch_ms: f64,
    /// One forward pass without dropout over all nodes.
    pub inference_ms: f64,
    /// Peak heap during a training step beyond what was live before it, MiB.
    pub train_peak_mib: Option<f64>,
}

/// Times training steps and inference of `cfg` on `data`.
pub fn bench_graph_model(
    name: &str,
    data: &attend::data::planetoid::GraphData,
    cfg: &attend::models::GraphModelConfig,
    min_seconds: f64,
) -> attend::Result<GraphModelRow> {
    use attend::models::graph::task::{loop_config, GraphTask};
    use attend::models::graph::GraphInput;
    use attend::models::{GraphClassifier, GraphTrainConfig};
    use attend::nn::Ctx;
    use attend::train::{Stepper, Task};
    use rand::SeedableRng;
    let input = GraphInput::new(data, cfg)?;
    let model = GraphClassifier::new(cfg.clone(), 1)?;
    // The training loop's own step (forward, loss, backward, update).
    let train_cfg = GraphTrainConfig { seed: 1, ..GraphTrainConfig::default() };
    let looped = loop_config(&train_cfg);
    let task = GraphTask::new(&model, &input, &data.train, &data.val, &train_cfg)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(looped.seed);
    let batch = task.batches(&mut rng).remove(0);
    let mut stepper = Stepper {
        optimizer: Default::default(),
        ctx: Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(looped.dropout_seed) },
    };
    let mut step = || stepper.step(&task, &batch, &mut rng, looped.schedule.lr, &looped.optimizer).map(|_| ());
    step()?; // warm-up, and the optimizer state exists before measuring memory
    let before = crate::memory::live();
    crate::memory::reset_peak();
    step()?;
    let train_peak_mib = match (before, crate::memory::peak()) {
        (Some(b), Some(p)) => Some(p.saturating_sub(b) as f64 / (1 << 20) as f64),
        _ => None,
    };
    let mut failed = None;
    let (train, _) = median_seconds(min_seconds, || {
        if let Err(e) = step() {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let (inference, _) = median_seconds(min_seconds, || {
        std::hint::black_box(model.forward(&input.features, &input.graph, &mut Ctx::eval()).ok());
    });
    Ok(GraphModelRow {
        graph: name.to_string(),
        kernel: match cfg.kernel {
            attend::nn::AttentionKernel::Fused => "fused".into(),
            attend::nn::AttentionKernel::Reference => "reference".into(),
        },
        nodes: data.nodes(),
        edges: input.graph.edges(),
        train_epoch_ms: train * 1e3,
        inference_ms: inference * 1e3,
        train_peak_mib,
    })
}

/// The graph attention kernel alone on a random graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphKernelRow {
    pub nodes: usize,
    /// Directed edges incl. self loops.
    pub edges: usize,
    pub heads: usize,
    pub channels: usize,
    pub forward_ms: f64,
    pub forward_backward_ms: f64,
    /// Peak heap of forward + backward beyond inputs and results, MiB.
    pub extra_mib: Option<f64>,
    /// `extra` per (edge, head), bytes: flat when memory grows as edges x heads.
    pub extra_bytes_per_edge_head: Option<f64>,
}

/// Times the fused additive graph attention (forward, forward + backward)
/// on a random graph with `edges` random pairs, and its peak extra memory.
pub fn bench_graph_kernel(nodes: usize, edges: usize, heads: usize, channels: usize, min_seconds: f64) -> GraphKernelRow {
    use attend_kernels::graph::{graph_backward, graph_forward, EdgeDropout, EdgeOptions, Graph, GraphAttention, GraphScore};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let list: Vec<(u64, u64)> = (0..edges).map(|_| (next() % nodes as u64, next() % nodes as u64)).collect();
    let (graph, _) = Graph::from_edges(nodes, &list, EdgeOptions::default()).expect("ids in range");
    drop(list);
    let (dst, src, v) = (values(nodes * heads, 1), values(nodes * heads, 2), values(nodes * heads * channels, 3));
    let att = GraphAttention {
        graph: &graph,
        heads,
        score: GraphScore::Additive { dst: &dst, src: &src, slope: 0.2 },
        dropout: Some(EdgeDropout { p: 0.5, seed: 7 }),
    };
    let (forward, _) = median_seconds(min_seconds, || {
        std::hint::black_box(graph_forward(&att, &v));
    });
    let results = 2 * nodes * heads * channels * 4 + nodes * heads * 4 + 2 * nodes * heads * 4; // out, dv, lse, d_dst, d_src
    let before = crate::memory::live();
    crate::memory::reset_peak();
    let (forward_backward, _) = median_seconds(min_seconds, || {
        let f = graph_forward(&att, &v);
        std::hint::black_box(graph_backward(&att, &v, &f.out, &f.lse, &v));
    });
    let extra = match (before, crate::memory::peak()) {
        (Some(b), Some(p)) => Some(p.saturating_sub(b).saturating_sub(results) as f64),
        _ => None,
    };
    GraphKernelRow {
        nodes,
        edges: graph.edges(),
        heads,
        channels,
        forward_ms: forward * 1e3,
        forward_backward_ms: forward_backward * 1e3,
        extra_mib: extra.map(|b| b / (1 << 20) as f64),
        extra_bytes_per_edge_head: extra.map(|b| b / (graph.edges() * heads) as f64),
    }
}

/// Side m of the square GEMM with `2 m^3` close to `flop`, a multiple of 64,
/// between 64 and 2048 (beyond 2048 the GEMM's throughput no longer grows).
pub fn gemm_side(flop: f64) -> usize {
    let m = (flop / 2.0).cbrt();
    ((m / 64.0).round() as usize * 64).clamp(64, 2048)
}

/// GFLOP/s of a square `m x m` f32 GEMM through the `gemm` crate on the
/// current rayon thread count.
pub fn gemm_gflops(m: usize, min_seconds: f64) -> f64 {
    let a = values(m * m, 5);
    let b = values(m * m, 6);
    let mut c = vec![0f32; m * m];
    let threads = attend::rayon::current_num_threads();
    let (seconds, _) = median_seconds(min_seconds, || {
        // Safety: a, b and c are m x m row-major and live through the call.
        unsafe {
            gemm::gemm(
                m,
                m,
                m,
                c.as_mut_ptr(),
                1,
                m as isize,
                false,
                a.as_ptr(),
                1,
                m as isize,
                b.as_ptr(),
                1,
                m as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(threads),
            )
        };
        std::hint::black_box(&c);
    });
    2.0 * (m as f64).powi(3) / seconds / 1e9
}

/// Deterministic inputs in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let mut z = (i ^ (seed << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_print() {
        for s in ["dense", "causal", "window256"] {
            assert_eq!(s.parse::<BenchPattern>().unwrap().to_string(), s);
        }
        assert!("window".parse::<BenchPattern>().is_err());
        assert!("sparse".parse::<BenchPattern>().unwrap_err().contains("dense, causal or windowW"));
    }

    #[test]
    fn gemm_side_matches_flops() {
        assert_eq!(gemm_side(2.0 * 1024f64.powi(3)), 1024);
        assert_eq!(gemm_side(1.0), 64);
        assert_eq!(gemm_side(1e15), 2048);
    }

    #[test]
    fn a_small_run_reports_sane_rows() {
        let cfg = AttentionBenchConfig {
            sizes: vec![100],
            patterns: vec![BenchPattern::Dense, BenchPattern::Window(10)],
            batch_heads: 2,
            head_dim: 16,
            backward: true,
            min_seconds: 0.0,
            isa: Isa::detect(),
        };
        let rows = bench_attention(&cfg, |_| {});
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].visited_fraction, 1.0);
        // window 10 over 100 positions: 21 keys for most queries, fewer at the ends
        let pairs: f64 = (0..100).map(|i: i64| ((i + 10).min(99) - (i - 10).max(0) + 1) as f64).sum();
        assert!((rows[2].visited_fraction - pairs / 1e4).abs() < 1e-12);
        assert!((rows[1].gflop / rows[0].gflop - 3.5).abs() < 1e-9);
        assert!(rows.iter().all(|r| r.seconds > 0.0 && r.gflops > 0.0 && r.gemm_gflops > 0.0));
    }
}

// -------------------------------------------------------------- FMA peak

/// The machine's f32 FMA peak for `threads` cores, from its widest vector
/// unit, two FMA pipes per core, and the clock measured now on one core.
#[derive(Debug, Clone, Serialize)]
pub struct FmaPeak {
    /// "AVX-512", "AVX2" or "scalar".
    pub isa: &'static str,
    pub lanes: usize,
    pub fma_pipes: usize,
    pub threads: usize,
    pub clock_ghz: f64,
    /// threads x pipes x lanes x 2 flops x clock.
    pub gflops: f64,
}

/// Measures the clock (one add per cycle, in a dependent chain) and
/// returns the peak; `None` where the clock cannot be measured this way
/// (not x86_64). Two FMA pipes per core holds for the x86 cores of the
/// last decade at 256 bits; at 512 bits it holds for Zen 5 and for Xeons
/// with two AVX-512 units (Zen 4 splits 512-bit operations in two, so its
/// true AVX-512 peak is half this figure).
pub fn fma_peak(threads: usize) -> Option<FmaPeak> {
    let clock_ghz = measure_clock_ghz()?;
    let (isa, lanes) = match Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => ("AVX-512", 16),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => ("AVX2", 8),
        Isa::Portable => ("scalar", 1),
    };
    let fma_pipes = 2;
    Some(FmaPeak { isa, lanes, fma_pipes, threads, clock_ghz, gflops: (threads * fma_pipes * lanes * 2) as f64 * clock_ghz })
}

/// Cycles per second of the current core: a chain of dependent
/// register-to-register adds, one cycle each (the loop counter's own chain
/// runs beside it), the best of five runs of 100 M adds. Register operands,
/// not immediates: Intel's Golden Cove and later fold chains of immediate
/// adds at rename, which would read as a clock of 11 GHz.
fn measure_clock_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let run = |n: u64| {
            let start = std::time::Instant::now();
            let mut x: u64 = 0;
            let one: u64 = 1;
            // SAFETY: register-only arithmetic.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "add {x}, {one}",
                    "add {x}, {one}",
                    "add {x}, {one}",
                    "add {x}, {one}",
                    "sub {n}, 1",
                    "jnz 2b",
                    x = inout(reg) x,
                    one = in(reg) one,
                    n = inout(reg) n => _,
                    options(nomem, nostack),
                );
            }
            std::hint::black_box(x);
            start.elapsed().as_secs_f64()
        };
        let n = 25_000_000u64; // x 4 dependent adds
        run(n / 10); // ramp the clock up
        let best = (0..5).map(|_| run(n)).fold(f64::INFINITY, f64::min);
        Some(4.0 * n as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
