//! `cargo bench -p attend-kernels --bench matmul`
//!
//! The default tagger's products at inference, one tagging batch of 2,048
//! words on one thread: the input projection, each layer's query/key/value,
//! output and feed-forward products, and the character CNN's convolution
//! (about 6,000 character positions). Each shape runs the f32 product (the
//! `gemm` crate) and, where the CPU has AVX-512 BF16, the bf16 one
//! ([`attend_kernels::bf16`]) in the same run; the ratio of their times is
//! the speed-up the bf16 path gives. Throughput is in multiply-adds.

use attend_kernels::bf16;
use attend_kernels::matmul::gemm_acc_f32;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

const SHAPES: [(&str, usize, usize, usize); 6] = [
    ("input 2048x320x256", 2048, 320, 256),
    ("qkv 2048x256x768", 2048, 256, 768),
    ("output 2048x256x256", 2048, 256, 256),
    ("ff1 2048x256x512", 2048, 256, 512),
    ("ff2 2048x512x256", 2048, 512, 256),
    ("char cnn 6144x144x192", 6144, 144, 192),
];

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) >> 8) as f32 / (1 << 24) as f32 - 0.5).collect()
}

fn products(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20).measurement_time(Duration::from_secs(2));
    if !bf16::available() {
        eprintln!("note: this CPU has no AVX-512 BF16; only the f32 products run");
    }
    for (name, m, k, n) in SHAPES {
        group.throughput(Throughput::Elements((m * k * n) as u64));
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let mut dst = vec![0f32; m * n];
        group.bench_function(BenchmarkId::new("f32", name), |bench| {
            bench.iter(|| gemm_acc_f32(&mut dst, &a, k, 1, &b, n, 1, m, k, n, false))
        });
        if bf16::available() {
            group.bench_function(BenchmarkId::new("bf16", name), |bench| {
                bench.iter(|| bf16::gemm_acc_bf16(&mut dst, &a, k, &b, n, m, k, n, false))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
