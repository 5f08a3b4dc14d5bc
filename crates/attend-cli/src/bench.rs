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
    let mut stepper =
        Stepper::new(Default::default(), Ctx { train: true, rng: rand_chacha::ChaCha8Rng::seed_from_u64(looped.dropout_seed), rows: None });
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
    fn every_fma_loop_measures_a_plausible_peak() {
        for isa in Isa::available() {
            let p = fma_peak(isa, 1);
            assert!(p.gflops.is_finite() && p.gflops > 0.0, "{isa:?}: {p:?}");
            if let Some(f) = p.flops_per_cycle {
                // No core finishes more than two full-width FMAs a cycle
                // (slack for a clock that moved between the two loops).
                assert!(f <= 1.5 * (4 * p.lanes) as f64, "{isa:?}: {f} flops per cycle from {p:?}");
            }
        }
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

/// The machine's f32 FMA peak for `threads` threads, measured: every thread
/// runs a loop of independent fused multiply-adds on the vector width of
/// an instruction set, and the flops they finish per second together are
/// the peak. Measured, not computed from lanes and pipes: a core may split
/// a wide operation in two (Zen 4 runs 512-bit FMAs as two 256-bit halves,
/// Zen 1 runs 256-bit ones as two 128-bit halves) or have one wide unit
/// instead of two, and a formula that assumes two full-width pipes then
/// overstates the peak by 2x.
#[derive(Debug, Clone, Serialize)]
pub struct FmaPeak {
    /// The loop's instruction set: "AVX-512", "AVX2" or "scalar".
    pub isa: &'static str,
    pub lanes: usize,
    pub threads: usize,
    /// GFLOP/s of all threads together (best of a few runs).
    pub gflops: f64,
    /// The clock of one core, measured now (x86_64 only).
    pub clock_ghz: Option<f64>,
    /// gflops / threads / clock: what one core finishes per cycle (x86_64
    /// only). Two full-width FMA pipes give 4 x lanes.
    pub flops_per_cycle: Option<f64>,
}

/// Measures the FMA peak of `isa` (the widest this CPU has for
/// `Isa::Portable`, the compiler's vectors being the ceiling there) on
/// `threads` threads running at once.
pub fn fma_peak(isa: Isa, threads: usize) -> FmaPeak {
    let threads = threads.max(1);
    let isa = if isa == Isa::Portable { Isa::detect() } else { isa };
    let FmaLoop { name, lanes, chains, run: loop_fn } = fma_loop(isa);
    isa.check_available();
    // Each call of the loop runs `iters` rounds of `chains` FMAs.
    let iters = 2_000_000u64;
    // Each thread times its own loop, and a run lasts from the first start
    // to the last end: timed from the spawning thread, a run whose loops
    // finished before that thread was scheduled again (a busy machine)
    // measured almost nothing and reported a peak 1,000x too high.
    let run = || -> f64 {
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        // SAFETY: the CPU runs `isa` (checked above).
                        unsafe { loop_fn(iters / 4) }; // ramp the clock up
                        barrier.wait();
                        let start = std::time::Instant::now();
                        std::hint::black_box(unsafe { loop_fn(iters) });
                        (start, std::time::Instant::now())
                    })
                })
                .collect();
            let spans: Vec<_> = handles.into_iter().map(|h| h.join().expect("FMA loop thread")).collect();
            let first = spans.iter().map(|s| s.0).min().expect("at least one thread");
            let last = spans.iter().map(|s| s.1).max().expect("at least one thread");
            last.duration_since(first).as_secs_f64()
        })
    };
    let best = (0..3).map(|_| run()).fold(f64::INFINITY, f64::min);
    let flops = (threads as u64 * iters * chains as u64 * lanes as u64 * 2) as f64;
    let gflops = flops / best / 1e9;
    let clock_ghz = measure_clock_ghz();
    FmaPeak { isa: name, lanes, threads, gflops, clock_ghz, flops_per_cycle: clock_ghz.map(|c| gflops / threads as f64 / c) }
}

/// One instruction set's FMA loop.
struct FmaLoop {
    name: &'static str,
    lanes: usize,
    /// Independent FMA chains per round: enough to cover the FMA latency on
    /// two pipes (4 to 5 cycles on the x86 cores of the last decade).
    chains: usize,
    /// Runs this many rounds; returns a value that depends on every FMA.
    /// Unsafe: the CPU must run the instruction set.
    run: unsafe fn(u64) -> f32,
}

fn fma_loop(isa: Isa) -> FmaLoop {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => FmaLoop { name: "AVX-512", lanes: 16, chains: 24, run: fma_avx512 },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => FmaLoop { name: "AVX2", lanes: 8, chains: 12, run: fma_avx2 },
        Isa::Portable => FmaLoop { name: "scalar", lanes: 1, chains: 12, run: fma_scalar },
    }
}

/// Twelve `vfmadd231ps` on ymm0-ymm11 per round, multiplier and addend in
/// ymm14 and ymm15 (a multiplier just under 1 keeps the values finite).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(n: u64) -> f32 {
    let bits: u32;
    // SAFETY: register-only arithmetic on the registers it names.
    unsafe {
        std::arch::asm!(
            "vxorps ymm0, ymm0, ymm0", "vmovaps ymm1, ymm0", "vmovaps ymm2, ymm0", "vmovaps ymm3, ymm0",
            "vmovaps ymm4, ymm0", "vmovaps ymm5, ymm0", "vmovaps ymm6, ymm0", "vmovaps ymm7, ymm0",
            "vmovaps ymm8, ymm0", "vmovaps ymm9, ymm0", "vmovaps ymm10, ymm0", "vmovaps ymm11, ymm0",
            "vmovd xmm14, {m:e}", "vbroadcastss ymm14, xmm14", "vmovd xmm15, {a:e}", "vbroadcastss ymm15, xmm15",
            "2:",
            "vfmadd231ps ymm0, ymm14, ymm15", "vfmadd231ps ymm1, ymm14, ymm15", "vfmadd231ps ymm2, ymm14, ymm15",
            "vfmadd231ps ymm3, ymm14, ymm15", "vfmadd231ps ymm4, ymm14, ymm15", "vfmadd231ps ymm5, ymm14, ymm15",
            "vfmadd231ps ymm6, ymm14, ymm15", "vfmadd231ps ymm7, ymm14, ymm15", "vfmadd231ps ymm8, ymm14, ymm15",
            "vfmadd231ps ymm9, ymm14, ymm15", "vfmadd231ps ymm10, ymm14, ymm15", "vfmadd231ps ymm11, ymm14, ymm15",
            "sub {n}, 1",
            "jnz 2b",
            "vaddps ymm0, ymm0, ymm11",
            "vmovd {bits:e}, xmm0",
            m = in(reg) 0.999f32.to_bits(),
            a = in(reg) 0.001f32.to_bits(),
            n = inout(reg) n.max(1) => _,
            bits = lateout(reg) bits,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _,
            out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm14") _, out("ymm15") _,
            options(nomem, nostack),
        );
    }
    f32::from_bits(bits)
}

/// Twenty-four `vfmadd231ps` on zmm0-zmm23 per round (Zen 4 and Intel
/// cores have an FMA latency of 4 cycles; 24 chains leave room for
/// splitting), multiplier and addend in zmm30 and zmm31.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_avx512(n: u64) -> f32 {
    let bits: u32;
    // SAFETY: register-only arithmetic on the registers it names.
    unsafe {
        std::arch::asm!(
            "vpxord zmm0, zmm0, zmm0", "vmovaps zmm1, zmm0", "vmovaps zmm2, zmm0", "vmovaps zmm3, zmm0",
            "vmovaps zmm4, zmm0", "vmovaps zmm5, zmm0", "vmovaps zmm6, zmm0", "vmovaps zmm7, zmm0",
            "vmovaps zmm8, zmm0", "vmovaps zmm9, zmm0", "vmovaps zmm10, zmm0", "vmovaps zmm11, zmm0",
            "vmovaps zmm12, zmm0", "vmovaps zmm13, zmm0", "vmovaps zmm14, zmm0", "vmovaps zmm15, zmm0",
            "vmovaps zmm16, zmm0", "vmovaps zmm17, zmm0", "vmovaps zmm18, zmm0", "vmovaps zmm19, zmm0",
            "vmovaps zmm20, zmm0", "vmovaps zmm21, zmm0", "vmovaps zmm22, zmm0", "vmovaps zmm23, zmm0",
            "vpbroadcastd zmm30, {m:e}", "vpbroadcastd zmm31, {a:e}",
            "2:",
            "vfmadd231ps zmm0, zmm30, zmm31", "vfmadd231ps zmm1, zmm30, zmm31", "vfmadd231ps zmm2, zmm30, zmm31",
            "vfmadd231ps zmm3, zmm30, zmm31", "vfmadd231ps zmm4, zmm30, zmm31", "vfmadd231ps zmm5, zmm30, zmm31",
            "vfmadd231ps zmm6, zmm30, zmm31", "vfmadd231ps zmm7, zmm30, zmm31", "vfmadd231ps zmm8, zmm30, zmm31",
            "vfmadd231ps zmm9, zmm30, zmm31", "vfmadd231ps zmm10, zmm30, zmm31", "vfmadd231ps zmm11, zmm30, zmm31",
            "vfmadd231ps zmm12, zmm30, zmm31", "vfmadd231ps zmm13, zmm30, zmm31", "vfmadd231ps zmm14, zmm30, zmm31",
            "vfmadd231ps zmm15, zmm30, zmm31", "vfmadd231ps zmm16, zmm30, zmm31", "vfmadd231ps zmm17, zmm30, zmm31",
            "vfmadd231ps zmm18, zmm30, zmm31", "vfmadd231ps zmm19, zmm30, zmm31", "vfmadd231ps zmm20, zmm30, zmm31",
            "vfmadd231ps zmm21, zmm30, zmm31", "vfmadd231ps zmm22, zmm30, zmm31", "vfmadd231ps zmm23, zmm30, zmm31",
            "sub {n}, 1",
            "jnz 2b",
            "vaddps zmm0, zmm0, zmm23",
            "vmovd {bits:e}, xmm0",
            m = in(reg) 0.999f32.to_bits(),
            a = in(reg) 0.001f32.to_bits(),
            n = inout(reg) n.max(1) => _,
            bits = lateout(reg) bits,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
            out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
            out("zmm18") _, out("zmm19") _, out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm30") _, out("zmm31") _,
            options(nomem, nostack),
        );
    }
    f32::from_bits(bits)
}

/// Twelve scalar multiply-add chains (targets without a vector loop here).
unsafe fn fma_scalar(n: u64) -> f32 {
    let mut acc = [0f32; 12];
    let (m, a) = (std::hint::black_box(0.999f32), std::hint::black_box(0.001f32));
    for _ in 0..n {
        for x in &mut acc {
            *x = *x * m + a;
        }
    }
    acc.iter().sum()
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
