//! `cargo bench -p attend-kernels --bench adamw`
//!
//! The optimizer's pass over the default tagger's 3,260,136 parameters:
//! the gradient's sum of squares (for clipping) and the fused AdamW update,
//! from one gradient (one thread's step) and from two parts added as they
//! are read (a two-thread data-parallel step), on one thread and on two.
//! Beside them, in the same run, "memory only": a pass that moves the
//! bytes a one-part update moves (reads the weights, both moments and the
//! gradient, writes the first three back) with an add for all its work;
//! the update's line over it is how close the update runs to the memory's
//! speed. Throughput is in parameters per second.
//!
//! The group "word table" is the tagger's word embedding (18,000 x 128) with
//! the gradient of a step cut into 1, 2, 4 or 8 pieces (one per thread),
//! each piece having looked up 520 distinct words: the update from dense
//! tables (each piece's gradient a whole table, zeros but in its rows; what
//! every piece built and the update read before) against the update from
//! the rows themselves ([`adamw_update_rows`]), and what building one dense
//! table cost each piece.

use attend_kernels::adamw::{adamw_update, adamw_update_rows, rows_of, sum_of_squares, sum_of_squares_rows, AdamWStep, Rows, CHUNK};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const PARAMETERS: usize = 3_260_136;

fn values(seed: u32) -> Vec<f32> {
    (0..PARAMETERS as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) >> 8) as f32 / (1 << 24) as f32 - 0.5)
        .collect()
}

fn optimizer(c: &mut Criterion) {
    let mut group = c.benchmark_group("optimizer");
    group.throughput(Throughput::Elements(PARAMETERS as u64)).sample_size(20).measurement_time(Duration::from_secs(3));
    let (g1, g2) = (values(1), values(2));
    let (mut p, mut m, mut v) = (values(3), vec![0.0f32; PARAMETERS], vec![0.0f32; PARAMETERS]);
    let step = AdamWStep { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.01, step: 3, grad_scale: 0.5, l2: 0.0 };
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
        for parts in [1, 2] {
            let grad: Vec<&[f32]> = [&g1[..], &g2[..]][..parts].to_vec();
            let id = format!("{threads} threads, {parts} parts");
            group.bench_function(BenchmarkId::new("sum of squares", &id), |b| b.iter(|| pool.install(|| black_box(sum_of_squares(&grad)))));
            group.bench_function(BenchmarkId::new("adamw", &id), |b| {
                b.iter(|| pool.install(|| adamw_update(&mut p, &grad, &mut m, &mut v, &step)))
            });
        }
        group.bench_function(BenchmarkId::new("memory only", format!("{threads} threads")), |b| {
            use rayon::prelude::*;
            let (mut p, mut m, mut v) = (p.clone(), m.clone(), v.clone());
            b.iter(|| {
                pool.install(|| {
                    let chunks =
                        p.par_chunks_mut(CHUNK).zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK))).zip(g1.par_chunks(CHUNK));
                    chunks.for_each(|((p, (m, v)), g)| {
                        for (((p, m), v), g) in p.iter_mut().zip(m).zip(v).zip(g) {
                            (*p, *m, *v) = (*p + g, *m + g, *v + g);
                        }
                    })
                })
            })
        });
    }
    group.finish();
}

fn word_table(c: &mut Criterion) {
    const WORDS: usize = 18_000;
    const WIDTH: usize = 128;
    const LOOKED_UP: usize = 520;
    let n = WORDS * WIDTH;
    let mut group = c.benchmark_group("word table");
    group.throughput(Throughput::Elements(n as u64)).sample_size(20).measurement_time(Duration::from_secs(3));
    // Piece k's lookups: frequent words (low ids, shared by every piece)
    // and a spread of rarer ones, 1,000 lookups with repeats.
    let piece = |k: u32| -> (Vec<u32>, Vec<f32>) {
        let ids: Vec<u32> = (0..1000u32)
            .map(|i| if i % 3 != 0 { i % 200 } else { 200 + (i.wrapping_mul(2_654_435_761) ^ k.wrapping_mul(97)) % (WORDS as u32 - 200) })
            .collect();
        let grad: Vec<f32> = (0..ids.len() * WIDTH).map(|i| ((i * 31 + k as usize) % 97) as f32 * 1e-3 - 0.05).collect();
        rows_of(&ids, &grad, WIDTH)
    };
    let dense = |(ids, values): &(Vec<u32>, Vec<f32>)| -> Vec<f32> {
        let mut t = vec![0f32; n];
        for (&r, row) in ids.iter().zip(values.chunks_exact(WIDTH)) {
            t[r as usize * WIDTH..][..WIDTH].copy_from_slice(row);
        }
        t
    };
    let pieces: Vec<(Vec<u32>, Vec<f32>)> = (0..8).map(piece).collect();
    assert!(pieces.iter().all(|(ids, _)| ids.len() > LOOKED_UP - 100 && ids.len() < LOOKED_UP + 100));
    let tables: Vec<Vec<f32>> = pieces.iter().map(dense).collect();
    let (mut p, mut m, mut v) = (values(3)[..n].to_vec(), vec![0.0f32; n], vec![0.0f32; n]);
    let step = AdamWStep { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.01, step: 3, grad_scale: 0.5, l2: 0.0 };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a pool");
    group.bench_function("building one piece's dense table", |b| b.iter(|| black_box(dense(&pieces[0]))));
    for parts in [1, 2, 4, 8] {
        let grad: Vec<&[f32]> = tables[..parts].iter().map(|t| t.as_slice()).collect();
        let rows: Vec<Rows> = pieces[..parts].iter().map(|(ids, values)| Rows { ids, values, width: WIDTH }).collect();
        let id = format!("{parts} pieces");
        group.bench_function(BenchmarkId::new("dense: squares + adamw", &id), |b| {
            b.iter(|| {
                pool.install(|| {
                    black_box(sum_of_squares(&grad));
                    adamw_update(&mut p, &grad, &mut m, &mut v, &step)
                })
            })
        });
        group.bench_function(BenchmarkId::new("rows: squares + adamw", &id), |b| {
            b.iter(|| {
                pool.install(|| {
                    black_box(sum_of_squares_rows(n, &rows));
                    adamw_update_rows(&mut p, &rows, &mut m, &mut v, &step)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, optimizer, word_table);
criterion_main!(benches);
