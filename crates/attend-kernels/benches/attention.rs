//! `cargo bench -p attend-kernels --bench attention`
//!
//! Criterion timings of the fused attention kernels next to a plain square
//! GEMM (the `gemm` crate candle uses) of the same flops, in the same run.
//! Throughput is reported in flops ("elem/s" = FLOP/s), so the ratio of a
//! kernel's line to its `gemm` line is the fraction of the GEMM ceiling.
//! Flops count only visible query-key pairs: forward 4 * pairs * head_dim per
//! head, forward + backward 3.5 times that.
//!
//! Sizes default to 256, 1024, 4096; set `ATTEND_BENCH_SIZES=1024,16384` for
//! others. `attend bench attention` prints the same comparison as a table
//! (with peak memory) and as JSON.

use attend_kernels::reference::AttentionShape;
use attend_kernels::{flash_backward, flash_forward, AttentionParams, AttentionPattern};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const BATCH_HEADS: usize = 8;
const HEAD_DIM: usize = 64;

fn sizes() -> Vec<usize> {
    std::env::var("ATTEND_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![256, 1024, 4096])
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) >> 8) as f32 / (1 << 24) as f32 - 0.5).collect()
}

fn gemm_square(m: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // Safety: a, b and c are m x m row-major.
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
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        )
    }
}

fn attention(c: &mut Criterion) {
    let patterns = [
        ("dense", AttentionPattern::dense()),
        ("causal", AttentionPattern::dense().with_causal(true)),
        ("window256", AttentionPattern::dense().with_window(256, 256)),
    ];
    for (name, pattern) in &patterns {
        for backward in [false, true] {
            let pass = if backward { "forward+backward" } else { "forward" };
            let mut group = c.benchmark_group(format!("attention/{name}/{pass}"));
            group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
            for n in sizes() {
                let shape = AttentionShape { batch: 1, heads: BATCH_HEADS, seq: n, head_dim: HEAD_DIM };
                let (q, k, v, dout) = (values(shape.len(), 1), values(shape.len(), 2), values(shape.len(), 3), values(shape.len(), 4));
                let params = AttentionParams { shape, scale: 0.125, pattern, dropout: None };
                let pairs: usize = (0..n).map(|i| pattern.key_range(0, i, n).len()).sum();
                let flop = 4.0 * pairs as f64 * (HEAD_DIM * BATCH_HEADS) as f64 * if backward { 3.5 } else { 1.0 };
                group.throughput(Throughput::Elements(flop as u64));
                group.bench_function(BenchmarkId::new("fused", n), |bench| {
                    bench.iter(|| {
                        let f = flash_forward(&q, &k, &v, &params);
                        if backward {
                            black_box(flash_backward(&q, &k, &v, &f.out, &f.lse, &dout, &params).dq);
                        }
                        black_box(f.out)
                    })
                });
                // the GEMM ceiling: square m^3 with 2 m^3 ~ flop (capped at 2048)
                let m = (((flop / 2.0).cbrt() / 64.0).round() as usize * 64).clamp(64, 2048);
                let (a, b, mut out) = (values(m * m, 5), values(m * m, 6), vec![0f32; m * m]);
                group.throughput(Throughput::Elements(2 * (m as u64).pow(3)));
                group.bench_function(BenchmarkId::new(format!("gemm{m}"), n), |bench| bench.iter(|| gemm_square(m, &a, &b, &mut out)));
            }
            group.finish();
        }
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
