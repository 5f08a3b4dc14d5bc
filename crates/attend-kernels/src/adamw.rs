//! Fused AdamW: one pass over each parameter updates the two moments and the
//! weight, with decoupled weight decay (Loshchilov & Hutter).

use crate::simd::Isa;
use rayon::prelude::*;

/// Hyperparameters of one AdamW step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step count, for bias correction.
    pub step: u64,
    /// Multiplies every gradient first (gradient clipping by global norm).
    pub grad_scale: f32,
    /// Classic L2 regularisation (Adam with `weight_decay` as in PyTorch's
    /// `Adam` and the GAT paper): `l2 * param` is added to the gradient
    /// before the moments, unlike the decoupled `weight_decay`.
    pub l2: f32,
}

/// Elements per parallel task (and per partial sum of squares: fixed, so
/// the sum is the same for any thread count).
pub const CHUNK: usize = 4096;

/// One step's constants: the settings and what follows from them.
struct Coefficients<'a> {
    s: &'a AdamWStep,
    /// Bias correction of the second moment.
    bc2: f32,
    /// Learning rate over the first moment's bias correction.
    step_size: f32,
    /// Decoupled weight decay as a factor.
    decay: f32,
}

impl<'a> Coefficients<'a> {
    fn of(s: &'a AdamWStep) -> Self {
        let bc1 = 1.0 - s.beta1.powi(s.step as i32);
        let bc2 = 1.0 - s.beta2.powi(s.step as i32);
        Coefficients { s, bc2, step_size: s.lr / bc1, decay: 1.0 - s.lr * s.weight_decay }
    }
}

/// The gradient parts of one chunk added in order into `buf`
/// (((a + b) + c) ..., as adding them one tensor at a time).
#[inline(always)]
fn summed<'a>(parts: &[&[f32]], range: std::ops::Range<usize>, buf: &'a mut [f32; CHUNK]) -> &'a [f32] {
    let out = &mut buf[..range.len()];
    out.copy_from_slice(&parts[0][range.clone()]);
    for part in &parts[1..] {
        for (o, &x) in out.iter_mut().zip(&part[range.clone()]) {
            *o += x;
        }
    }
    out
}

/// Runs `$body` with `$g` bound to an iterator over the chunk `$range` of
/// the summed gradient parts `$parts`: one part as it is, two added as
/// they are read (no extra pass), more added into a buffer first. Every
/// way adds in part order, so all give the same bits. (A macro: each arm
/// binds an iterator of a different type.)
macro_rules! with_gradient {
    ($parts:expr, $range:expr, |$g:ident| $body:expr) => {{
        let (parts, range): (&[&[f32]], std::ops::Range<usize>) = ($parts, $range);
        match parts {
            [] => {
                let $g = std::iter::empty::<f32>();
                $body
            }
            [a] => {
                let $g = a[range].iter().copied();
                $body
            }
            [a, b] => {
                let $g = a[range.clone()].iter().zip(&b[range]).map(|(&x, &y)| x + y);
                $body
            }
            _ => {
                let mut buf = [0f32; CHUNK];
                let $g = summed(parts, range, &mut buf).iter().copied();
                $body
            }
        }
    }};
}

/// AdamW on one chunk of `p`, `m`, `v` from its gradient `g`. Zipped (no
/// indexing), so the loop compiles to vector code for the instruction set
/// of the function it is inlined into. Rust never contracts `a * b + c`
/// into a fused multiply-add, so every path gives the same bits.
#[inline(always)]
fn update_from(p: &mut [f32], g: impl Iterator<Item = f32>, m: &mut [f32], v: &mut [f32], k: &Coefficients) {
    let s = k.s;
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * s.grad_scale + s.l2 * *p;
        *m = s.beta1 * *m + (1.0 - s.beta1) * g;
        *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
        let denom = (*v / k.bc2).sqrt() + s.eps;
        *p = *p * k.decay - k.step_size * *m / denom;
    }
}

/// The update of the chunk of `p` that starts at element `at` of the
/// summed gradient parts.
#[inline(always)]
fn update_chunk(p: &mut [f32], g: &[&[f32]], at: usize, m: &mut [f32], v: &mut [f32], k: &Coefficients) {
    with_gradient!(g, at..at + p.len(), |g| update_from(p, g, m, v, k))
}

/// Running sums of squares: enough independent f64 add chains that the
/// adds' latency does not bound the loop (one chain runs at a fraction of
/// the machine's speed).
const LANES: usize = 32;

/// `acc` plus the squares of `g` in f64, element `i` into running sum
/// `i % LANES`. Blocks of `LANES` passed by value keep the sums in
/// registers (a slice of them in memory made every add wait on a store).
#[inline(always)]
fn add_squares(acc: [f64; LANES], g: impl Iterator<Item = [f32; LANES]>) -> [f64; LANES] {
    g.fold(acc, |mut acc, x| {
        for i in 0..LANES {
            acc[i] += x[i] as f64 * x[i] as f64;
        }
        acc
    })
}

/// Sum of squares in f64 of the summed gradient parts over `range` (one
/// part read as it is, two added as read, more added into a buffer
/// first): element `i` goes into running sum `i % LANES` and the sums are
/// then added pairwise in a fixed order.
#[inline(always)]
fn squares_chunk(parts: &[&[f32]], range: std::ops::Range<usize>) -> f64 {
    let block = |x: &[f32]| -> [f32; LANES] { x.try_into().expect("a block of LANES") };
    // The last, short block with zeros after it.
    let padded = |tail: &[f32]| -> [f32; LANES] { std::array::from_fn(|i| tail.get(i).copied().unwrap_or(0.0)) };
    // (The tail is added on its own: a chained iterator does not vectorise.)
    let one = |g: &[f32]| {
        let blocks = g.chunks_exact(LANES);
        let tail = padded(blocks.remainder());
        add_squares(add_squares([0.0; LANES], blocks.map(block)), std::iter::once(tail))
    };
    let sum = |x: [f32; LANES], y: [f32; LANES]| -> [f32; LANES] { std::array::from_fn(|i| x[i] + y[i]) };
    let acc = match parts {
        [] => [0.0; LANES],
        [a] => one(&a[range]),
        [a, b] => {
            let (a, b) = (a[range.clone()].chunks_exact(LANES), b[range].chunks_exact(LANES));
            let tail = sum(padded(a.remainder()), padded(b.remainder()));
            let acc = add_squares([0.0; LANES], a.zip(b).map(|(x, y)| sum(block(x), block(y))));
            add_squares(acc, std::iter::once(tail))
        }
        _ => one(summed(parts, range, &mut [0f32; CHUNK])),
    };
    crate::pairwise_sum(acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn update_chunk_avx2(p: &mut [f32], g: &[&[f32]], at: usize, m: &mut [f32], v: &mut [f32], k: &Coefficients) {
    update_chunk(p, g, at, m, v, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
fn update_chunk_avx512(p: &mut [f32], g: &[&[f32]], at: usize, m: &mut [f32], v: &mut [f32], k: &Coefficients) {
    update_chunk(p, g, at, m, v, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn squares_chunk_avx2(g: &[&[f32]], range: std::ops::Range<usize>) -> f64 {
    squares_chunk(g, range)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
fn squares_chunk_avx512(g: &[&[f32]], range: std::ops::Range<usize>) -> f64 {
    squares_chunk(g, range)
}

/// [`update_chunk`] on the given instruction set.
#[inline(always)]
fn update_chunk_on(isa: Isa, p: &mut [f32], g: &[&[f32]], at: usize, m: &mut [f32], v: &mut [f32], k: &Coefficients) {
    match isa {
        Isa::Portable => update_chunk(p, g, at, m, v, k),
        // SAFETY: the callers checked (`check_available`) that this CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { update_chunk_avx2(p, g, at, m, v, k) },
        // SAFETY: the callers checked that this CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { update_chunk_avx512(p, g, at, m, v, k) },
    }
}

/// [`squares_chunk`] on the given instruction set.
#[inline(always)]
fn squares_chunk_on(isa: Isa, g: &[&[f32]], range: std::ops::Range<usize>) -> f64 {
    match isa {
        Isa::Portable => squares_chunk(g, range),
        // SAFETY: the callers checked that this CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { squares_chunk_avx2(g, range) },
        // SAFETY: the callers checked that this CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { squares_chunk_avx512(g, range) },
    }
}

/// `run(chunk index, param chunk, m chunk, v chunk)` over the chunks of
/// [`CHUNK`] elements, in parallel (one task when there is one chunk).
fn each_chunk(param: &mut [f32], m: &mut [f32], v: &mut [f32], run: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync) {
    if param.len() <= CHUNK {
        // One task: no trip through the pool.
        return run(0, param, m, v);
    }
    param
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .enumerate()
        .for_each(|(c, (p, (m, v)))| run(c, p, m, v));
}

/// The partial sums `run(chunk)` of `n` elements' chunks, added in chunk
/// order (the same value for any thread count).
fn chunk_sums(n: usize, run: impl Fn(usize) -> f64 + Sync) -> f64 {
    let chunks = n.div_ceil(CHUNK);
    if chunks <= 1 {
        return if n == 0 { 0.0 } else { run(0) };
    }
    let partials: Vec<f64> = (0..chunks).into_par_iter().map(&run).collect();
    partials.iter().sum()
}

/// Updates `param`, `m` and `v` in place from the gradient `grad`, given as
/// parts to add (in order; usually one), on the given instruction set
/// (every set gives the same bits).
pub fn adamw_update_on(isa: Isa, param: &mut [f32], grad: &[&[f32]], m: &mut [f32], v: &mut [f32], s: &AdamWStep) {
    let n = param.len();
    assert!(!grad.is_empty() && grad.iter().all(|g| g.len() == n) && m.len() == n && v.len() == n);
    isa.check_available();
    let k = Coefficients::of(s);
    each_chunk(param, m, v, |c, p, m, v| update_chunk_on(isa, p, grad, c * CHUNK, m, v, &k));
}

/// [`adamw_update_on`] on the fastest instruction set here.
pub fn adamw_update(param: &mut [f32], grad: &[&[f32]], m: &mut [f32], v: &mut [f32], s: &AdamWStep) {
    adamw_update_on(Isa::detect(), param, grad, m, v, s)
}

/// Sum of squares in f64 of a gradient given as parts to add (as in
/// [`adamw_update_on`]): partial sums over fixed chunks of [`CHUNK`]
/// added in order, so any thread count gives the same value.
pub fn sum_of_squares_on(isa: Isa, grad: &[&[f32]]) -> f64 {
    let n = grad.first().map_or(0, |g| g.len());
    assert!(grad.iter().all(|g| g.len() == n));
    isa.check_available();
    chunk_sums(n, |c| squares_chunk_on(isa, grad, c * CHUNK..((c + 1) * CHUNK).min(n)))
}

/// [`sum_of_squares_on`] on the fastest instruction set here.
pub fn sum_of_squares(grad: &[&[f32]]) -> f64 {
    sum_of_squares_on(Isa::detect(), grad)
}

/// The gradient of a table (`[rows, width]`, row-major) that is zero but
/// in some rows: an embedding's, whose batch looked up a few hundred of
/// its rows. `ids` are those rows in increasing order, each once, and
/// `values` their gradients, `width` each.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub ids: &'a [u32],
    pub values: &'a [f32],
    pub width: usize,
}

impl Rows<'_> {
    fn check(&self, n: usize) {
        assert!(self.width > 0 && n.is_multiple_of(self.width), "a table of {n} values has no rows of {}", self.width);
        assert_eq!(self.values.len(), self.ids.len() * self.width, "rows and values disagree");
        assert!(self.ids.windows(2).all(|w| w[0] < w[1]), "row ids must increase");
        assert!(self.ids.last().is_none_or(|&r| (r as usize + 1) * self.width <= n), "a row id past the table");
    }
}

/// The gradient of a table as rows: `grad` (`[ids.len(), width]`, the
/// gradient of each lookup) added per looked-up row, in the order of
/// `ids`, onto zero: the rows that [`Rows`] holds (increasing ids, each
/// once) and their values. The values are the ones a zeroed table with
/// each lookup's gradient added in turn would hold, bit for bit. Ids of
/// `u32::MAX` (an empty lookup) are skipped.
pub fn rows_of(ids: &[u32], grad: &[f32], width: usize) -> (Vec<u32>, Vec<f32>) {
    assert_eq!(grad.len(), ids.len() * width, "one gradient row per id");
    let mut order: Vec<u32> = (0..ids.len() as u32).filter(|&i| ids[i as usize] != u32::MAX).collect();
    // Stable: the lookups of one row stay in their order.
    order.sort_by_key(|&i| ids[i as usize]);
    let mut rows: Vec<u32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    for &i in &order {
        let id = ids[i as usize];
        if rows.last() != Some(&id) {
            rows.push(id);
            values.resize(values.len() + width, 0.0);
        }
        let at = values.len() - width;
        let row = &grad[i as usize * width..(i as usize + 1) * width];
        for (d, &s) in values[at..].iter_mut().zip(row) {
            *d += s;
        }
    }
    (rows, values)
}

/// The rows of `part` whose elements meet `range`, with their index in
/// the part.
fn rows_in<'p>(part: &'p Rows, range: &std::ops::Range<usize>) -> impl Iterator<Item = (usize, usize)> + 'p {
    let (w, end) = (part.width, range.end);
    let first = part.ids.partition_point(|&r| (r as usize + 1) * w <= range.start);
    part.ids[first..].iter().enumerate().map(move |(k, &r)| (first + k, r as usize)).take_while(move |&(_, r)| r * w < end)
}

/// The elements `range` of the sum of row gradients `parts` (added in part
/// order onto zero, as dense parts are added), built in `buf` when some
/// part has a row there; `None` (the chunk is zero) without touching
/// `buf` otherwise.
fn rows_chunk<'b>(parts: &[Rows], range: std::ops::Range<usize>, buf: &'b mut Option<[f32; CHUNK]>) -> Option<&'b [f32]> {
    if parts.iter().all(|part| rows_in(part, &range).next().is_none()) {
        return None;
    }
    let out = &mut buf.insert([0f32; CHUNK])[..range.len()];
    for part in parts {
        let w = part.width;
        for (k, r) in rows_in(part, &range) {
            let (start, end) = (r * w, (r + 1) * w);
            let (lo, hi) = (start.max(range.start), end.min(range.end));
            let src = &part.values[k * w + (lo - start)..k * w + (hi - start)];
            for (d, &s) in out[lo - range.start..hi - range.start].iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    Some(out)
}

/// A chunk of zeros: the gradient of a chunk no row touches.
static ZEROS: [f32; CHUNK] = [0.0; CHUNK];

/// [`adamw_update_on`] with the gradient given as rows of the table
/// `param` (parts to add in order, as there): the same bits as the dense
/// gradient with zeros elsewhere, without reading (or ever building) a
/// table of zeros. Every element is still updated (the moments of rows
/// without a gradient decay, and weight decay applies), as AdamW does.
pub fn adamw_update_rows_on(isa: Isa, param: &mut [f32], grad: &[Rows], m: &mut [f32], v: &mut [f32], s: &AdamWStep) {
    let n = param.len();
    assert!(m.len() == n && v.len() == n);
    grad.iter().for_each(|g| g.check(n));
    isa.check_available();
    let k = Coefficients::of(s);
    each_chunk(param, m, v, |c, p, m, v| {
        let mut buf = None;
        let g = rows_chunk(grad, c * CHUNK..c * CHUNK + p.len(), &mut buf).unwrap_or(&ZEROS[..p.len()]);
        update_chunk_on(isa, p, &[g], 0, m, v, &k)
    });
}

/// [`adamw_update_rows_on`] on the fastest instruction set here.
pub fn adamw_update_rows(param: &mut [f32], grad: &[Rows], m: &mut [f32], v: &mut [f32], s: &AdamWStep) {
    adamw_update_rows_on(Isa::detect(), param, grad, m, v, s)
}

/// [`sum_of_squares_on`] of a table of `n` values whose gradient is given
/// as rows: the same bits as of the dense gradient (a chunk without rows
/// adds exactly zero).
pub fn sum_of_squares_rows_on(isa: Isa, n: usize, grad: &[Rows]) -> f64 {
    grad.iter().for_each(|g| g.check(n));
    isa.check_available();
    chunk_sums(n, |c| {
        let mut buf = None;
        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
        let len = range.len();
        // A chunk of zeros adds exactly zero, as the dense chunk would.
        rows_chunk(grad, range, &mut buf).map_or(0.0, |g| squares_chunk_on(isa, &[g], 0..len))
    })
}

/// [`sum_of_squares_rows_on`] on the fastest instruction set here.
pub fn sum_of_squares_rows(n: usize, grad: &[Rows]) -> f64 {
    sum_of_squares_rows_on(Isa::detect(), n, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        let mut p = vec![1.0f32, -1.0, 0.5];
        let g = vec![0.3f32, -2.0, 0.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1, grad_scale: 1.0, l2: 0.0 };
        adamw_update(&mut p, &[&g], &mut m, &mut v, &s);
        // bias-corrected first step is lr * sign(g)
        assert!((p[0] - 0.9).abs() < 1e-5);
        assert!((p[1] + 0.9).abs() < 1e-5);
        assert_eq!(p[2], 0.5);
    }

    #[test]
    fn weight_decay_is_decoupled() {
        let mut p = vec![2.0f32];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.5, step: 1, grad_scale: 1.0, l2: 0.0 };
        adamw_update(&mut p, &[&[0.0]], &mut m, &mut v, &s);
        assert!((p[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
    }

    #[test]
    fn l2_acts_through_the_moments() {
        // zero gradient, l2 0.5 on p = 2: effective gradient 1, so the first
        // bias-corrected step moves by lr against it
        let mut p = vec![2.0f32];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        let s = AdamWStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1, grad_scale: 1.0, l2: 0.5 };
        adamw_update(&mut p, &[&[0.0]], &mut m, &mut v, &s);
        assert!((p[0] - 1.9).abs() < 1e-5);
        assert!((m[0] - 0.1).abs() < 1e-6);
    }

    #[test]
    fn every_instruction_set_and_any_split_into_parts_give_the_same_bits() {
        let n = 3 * CHUNK + 37;
        let part = |k: usize| -> Vec<f32> { (0..n).map(|i| ((i * (37 + k) % 101) as f32 - 50.0) * 1e-3).collect() };
        let (a, b, c) = (part(0), part(1), part(2));
        // The whole gradient as one tensor-at-a-time sum would make it.
        let whole: Vec<f32> = a.iter().zip(&b).zip(&c).map(|((a, b), c)| (a + b) + c).collect();
        let p0: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1).collect();
        let s = AdamWStep { lr: 0.01, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.01, step: 3, grad_scale: 0.7, l2: 1e-4 };
        let run = |isa: Isa, g: &[&[f32]]| {
            let (mut p, mut m, mut v) = (p0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
            for _ in 0..2 {
                adamw_update_on(isa, &mut p, g, &mut m, &mut v, &s);
            }
            (p, m, v, sum_of_squares_on(isa, g))
        };
        let want = run(Isa::Portable, &[&whole]);
        let plain: f64 = whole.iter().map(|&x| x as f64 * x as f64).sum();
        assert!((want.3 - plain).abs() <= 1e-12 * plain, "{} vs {plain}", want.3);
        assert_ne!(want.0, p0, "the weights moved");
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // Two parts (added as read) and three (added into a buffer) take
        // different paths from one.
        let ab: Vec<f32> = a.iter().zip(&b).map(|(a, b)| a + b).collect();
        for isa in Isa::available() {
            for got in [run(isa, &[&whole]), run(isa, &[&a, &b, &c]), run(isa, &[&ab, &c])] {
                assert_eq!(bits(&got.0), bits(&want.0), "{isa:?} weights");
                assert_eq!(bits(&got.1), bits(&want.1), "{isa:?} first moment");
                assert_eq!(bits(&got.2), bits(&want.2), "{isa:?} second moment");
                assert_eq!(got.3.to_bits(), want.3.to_bits(), "{isa:?} sum of squares");
            }
        }
        // Any thread count gives the same sum of squares.
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| sum_of_squares(&[&a, &b, &c]))
        };
        assert_eq!(on(1).to_bits(), on(3).to_bits());
        assert_eq!(sum_of_squares(&[]), 0.0);
    }

    #[test]
    fn rows_give_the_bits_of_the_dense_gradient_on_every_instruction_set() {
        // A width that does not divide CHUNK: rows straddle chunks.
        let (rows, width) = (3 * CHUNK / 100 + 7, 100);
        let n = rows * width;
        // Three lookups each, with repeats inside a part and across parts,
        // an empty lookup, and rows at both ends of the table.
        let lookups = |k: u32| -> Vec<u32> {
            let mut ids: Vec<u32> = (0..40u32).map(|i| (i * (7 + k) * 13) % rows as u32).collect();
            ids.extend([0, rows as u32 - 1, 40, 40, u32::MAX]);
            ids
        };
        let grads =
            |ids: &[u32], k: usize| -> Vec<f32> { (0..ids.len() * width).map(|i| ((i * (31 + k) % 97) as f32 - 48.0) * 1e-3).collect() };
        // The dense gradient as candle builds it: a zeroed table with each
        // lookup's row added in turn.
        let dense = |ids: &[u32], g: &[f32]| -> Vec<f32> {
            let mut t = vec![0f32; n];
            for (&id, row) in ids.iter().zip(g.chunks_exact(width)) {
                if id != u32::MAX {
                    for (d, &s) in t[id as usize * width..][..width].iter_mut().zip(row) {
                        *d += s;
                    }
                }
            }
            t
        };
        let parts: Vec<(Vec<u32>, Vec<f32>)> = (0..3)
            .map(|k| {
                let ids = lookups(k as u32);
                let g = grads(&ids, k);
                (ids, g)
            })
            .collect();
        let tables: Vec<Vec<f32>> = parts.iter().map(|(ids, g)| dense(ids, g)).collect();
        let sparse: Vec<(Vec<u32>, Vec<f32>)> = parts.iter().map(|(ids, g)| rows_of(ids, g, width)).collect();
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for ((ids, values), table) in sparse.iter().zip(&tables) {
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            let mut t = vec![0f32; n];
            for (&r, row) in ids.iter().zip(values.chunks_exact(width)) {
                t[r as usize * width..][..width].copy_from_slice(row);
            }
            assert_eq!(bits(&t), bits(table), "rows_of holds the dense table's rows");
        }
        let p0: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1).collect();
        let s = AdamWStep { lr: 0.01, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.01, step: 3, grad_scale: 0.7, l2: 1e-4 };
        for count in 1..=3 {
            let dense_parts: Vec<&[f32]> = tables[..count].iter().map(|t| t.as_slice()).collect();
            let row_parts: Vec<Rows> = sparse[..count].iter().map(|(ids, values)| Rows { ids, values, width }).collect();
            for isa in Isa::available() {
                let (mut p, mut m, mut v) = (p0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
                let (mut q, mut mq, mut vq) = (p0.clone(), vec![0.01f32; n], vec![0.02f32; n]);
                for _ in 0..2 {
                    adamw_update_on(isa, &mut p, &dense_parts, &mut m, &mut v, &s);
                    adamw_update_rows_on(isa, &mut q, &row_parts, &mut mq, &mut vq, &s);
                }
                assert_eq!(bits(&q), bits(&p), "{isa:?}, {count} parts: weights");
                assert_eq!(bits(&mq), bits(&m), "{isa:?}, {count} parts: first moment");
                assert_eq!(bits(&vq), bits(&v), "{isa:?}, {count} parts: second moment");
                let want = sum_of_squares_on(isa, &dense_parts);
                assert!(want > 0.0);
                assert_eq!(sum_of_squares_rows_on(isa, n, &row_parts).to_bits(), want.to_bits(), "{isa:?}, {count} parts: squares");
            }
        }
    }
}
