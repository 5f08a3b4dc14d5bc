//! Fused (flash-style) attention for dense, padded, causal and windowed
//! patterns: forward returns the output and each query's log-sum-exp,
//! backward returns dq, dk, dv. The N x N score matrix is never stored.
//!
//! How it works, per head:
//! - Queries are cut into blocks of [`BLOCK_Q`], keys into blocks of
//!   [`BLOCK_K`], and a query block visits only the key blocks that some of
//!   its queries can see (so a window of reach w costs about N x 2w, not N^2).
//! - A score block is computed transposed, `S^T = K_j (c Q_i)^T` with
//!   `c = scale * log2(e)`, so each lane of a vector is one query: the
//!   running max, the exponentials and the row sums of the online softmax
//!   are plain lane-wise vector operations, with no horizontal reductions.
//! - Every matrix product goes through one register-blocked micro-kernel
//!   ([`crate::simd`]), compiled for AVX-512 and for AVX2 + FMA, chosen by
//!   what the CPU has.
//! - Backward recomputes P from the saved log-sum-exp. It walks query blocks
//!   in order and adds into dk and dv of the same head, so no two threads ever
//!   write the same element and results are bitwise identical run to run and
//!   across thread counts.
//!
//! Extra memory is a few blocks per thread plus the log-sum-exp (one f32 per
//! query): O(N) per head. Head dims that are not a multiple of 16 are padded
//! with zeros on entry (a copy of q, k, v).
//!
//! A query that sees no key outputs 0, has log-sum-exp -inf and gets zero
//! gradients. Attention dropout is applied to the normalised weights with a
//! counter-based mask ([`AttentionDropout`]) that backward recomputes.

pub use crate::pattern::AttentionDropout;
use crate::pattern::{AttentionPattern, AttentionShape};
use crate::simd::{gemm, Isa, Portable, Simd, LANES, NR};
#[cfg(target_arch = "x86_64")]
use crate::simd::{Avx2, Avx512};
use rayon::prelude::*;

/// Queries per block (the lanes of a score block).
pub const BLOCK_Q: usize = 64;
/// Keys per block (the rows of a score block).
pub const BLOCK_K: usize = 96;
/// K + V bytes of one head above which the forward runs heads one after
/// another (each with all threads on its query blocks).
const SHARED_HEAD_BYTES: usize = 2 << 20;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN_2: f32 = std::f32::consts::LN_2;

/// One attention problem: shapes, score scale, pattern, dropout.
#[derive(Debug, Clone, Copy)]
pub struct AttentionParams<'a> {
    pub shape: AttentionShape,
    /// Scores are `q . k * scale` (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    pub pattern: &'a AttentionPattern,
    /// `None` (or p = 0) for no dropout, as in inference.
    pub dropout: Option<AttentionDropout>,
}

impl AttentionParams<'_> {
    fn check(&self, tensors: &[(&str, usize)]) {
        let len = self.shape.len();
        for (name, got) in tensors {
            assert_eq!(*got, len, "{name} has {got} elements, shape {:?} needs {len}", self.shape);
        }
        if let Err(e) = self.pattern.check(self.shape.batch) {
            panic!("{e}");
        }
        assert!(self.shape.seq < (1 << 24), "sequence of {} positions is too long for the fused kernel", self.shape.seq);
        if let Some(d) = self.dropout {
            assert!((0.0..1.0).contains(&d.p), "attention dropout {} is outside [0, 1)", d.p);
        }
    }

    fn active_dropout(&self) -> Option<AttentionDropout> {
        self.dropout.filter(|d| d.p > 0.0)
    }
}

/// Forward result: `out` `[batch, heads, seq, head_dim]` and the natural
/// log-sum-exp of each query's scaled scores `[batch, heads, seq]`.
pub struct FlashForward {
    pub out: Vec<f32>,
    pub lse: Vec<f32>,
}

/// Backward result, each `[batch, heads, seq, head_dim]`.
pub struct FlashBackward {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

/// Fused attention forward on the fastest instruction set of this CPU.
pub fn flash_forward(q: &[f32], k: &[f32], v: &[f32], params: &AttentionParams) -> FlashForward {
    flash_forward_on(Isa::detect(), q, k, v, params)
}

/// Fused attention backward, given the forward's `out` and `lse` and the
/// gradient `dout` of the output.
pub fn flash_backward(q: &[f32], k: &[f32], v: &[f32], out: &[f32], lse: &[f32], dout: &[f32], params: &AttentionParams) -> FlashBackward {
    flash_backward_on(Isa::detect(), q, k, v, out, lse, dout, params)
}

/// [`flash_forward`] on a chosen instruction set (which must be available).
pub fn flash_forward_on(isa: Isa, q: &[f32], k: &[f32], v: &[f32], params: &AttentionParams) -> FlashForward {
    isa.check_available();
    params.check(&[("q", q.len()), ("k", k.len()), ("v", v.len())]);
    let AttentionShape { batch, heads, seq: n, head_dim: d } = params.shape;
    let mut lse = vec![f32::NEG_INFINITY; batch * heads * n];
    if params.shape.is_empty() {
        return FlashForward { out: vec![0.0; params.shape.len()], lse };
    }
    if d % NR != 0 {
        let dp = d.next_multiple_of(NR);
        let padded = AttentionParams { shape: AttentionShape { head_dim: dp, ..params.shape }, ..*params };
        let f = flash_forward_on(isa, &pad(q, d, dp), &pad(k, d, dp), &pad(v, d, dp), &padded);
        return FlashForward { out: unpad(&f.out, dp, d), lse: f.lse };
    }
    let mut out = vec![0f32; params.shape.len()];
    let ctx = Ctx::new(params, q, k, v);
    let task: ForwardTask = match isa {
        Isa::Portable => forward_block::<Portable>,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => forward_block_avx2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => forward_block_avx512,
    };
    let head = |bh: usize, out: &mut [f32], lse: &mut [f32]| {
        out.par_chunks_mut(BLOCK_Q * d).zip(lse.par_chunks_mut(BLOCK_Q)).enumerate().for_each(|(qb, (out, lse))| {
            task(&ctx, bh, qb * BLOCK_Q, out, lse);
        });
    };
    // Threads that work on different heads each stream their own K and V.
    // Once those no longer fit in the shared cache together, all threads
    // take query blocks of one head at a time, so K and V are read once
    // from memory for all of them.
    if 2 * n * d * std::mem::size_of::<f32>() > SHARED_HEAD_BYTES {
        for (bh, (out, lse)) in out.chunks_mut(n * d).zip(lse.chunks_mut(n)).enumerate() {
            head(bh, out, lse);
        }
    } else {
        out.par_chunks_mut(n * d).zip(lse.par_chunks_mut(n)).enumerate().for_each(|(bh, (out, lse))| head(bh, out, lse));
    }
    FlashForward { out, lse }
}

/// [`flash_backward`] on a chosen instruction set (which must be available).
#[allow(clippy::too_many_arguments)]
pub fn flash_backward_on(
    isa: Isa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    params: &AttentionParams,
) -> FlashBackward {
    isa.check_available();
    params.check(&[("q", q.len()), ("k", k.len()), ("v", v.len()), ("out", out.len()), ("dout", dout.len())]);
    let AttentionShape { batch, heads, seq: n, head_dim: d } = params.shape;
    assert_eq!(lse.len(), batch * heads * n, "lse has {} elements for shape {:?}", lse.len(), params.shape);
    let len = params.shape.len();
    if params.shape.is_empty() {
        return FlashBackward { dq: vec![0.0; len], dk: vec![0.0; len], dv: vec![0.0; len] };
    }
    if d % NR != 0 {
        let dp = d.next_multiple_of(NR);
        let padded = AttentionParams { shape: AttentionShape { head_dim: dp, ..params.shape }, ..*params };
        let (q, k, v) = (pad(q, d, dp), pad(k, d, dp), pad(v, d, dp));
        let g = flash_backward_on(isa, &q, &k, &v, &pad(out, d, dp), lse, &pad(dout, d, dp), &padded);
        return FlashBackward { dq: unpad(&g.dq, dp, d), dk: unpad(&g.dk, dp, d), dv: unpad(&g.dv, dp, d) };
    }
    let (mut dq, mut dk, mut dv) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
    let ctx = Ctx::new(params, q, k, v);
    let grads = Grads { out, lse, dout };
    let task: BackwardTask = match isa {
        Isa::Portable => backward_head::<Portable>,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => backward_head_avx2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => backward_head_avx512,
    };
    dq.par_chunks_mut(n * d)
        .zip(dk.par_chunks_mut(n * d))
        .zip(dv.par_chunks_mut(n * d))
        .enumerate()
        .for_each(|(bh, ((dq, dk), dv))| task(&ctx, &grads, bh, dq, dk, dv));
    FlashBackward { dq, dk, dv }
}

/// Copies `[rows, d]` into `[rows, dp]` with zero columns on the right.
fn pad(x: &[f32], d: usize, dp: usize) -> Vec<f32> {
    let mut y = vec![0f32; x.len() / d * dp];
    for (src, dst) in x.chunks_exact(d).zip(y.chunks_exact_mut(dp)) {
        dst[..d].copy_from_slice(src);
    }
    y
}

fn unpad(x: &[f32], dp: usize, d: usize) -> Vec<f32> {
    x.chunks_exact(dp).flat_map(|row| &row[..d]).copied().collect()
}

/// What every block task reads.
struct Ctx<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    heads: usize,
    n: usize,
    d: usize,
    scale: f32,
    pattern: &'a AttentionPattern,
    dropout: Option<AttentionDropout>,
}

impl<'a> Ctx<'a> {
    fn new(params: &'a AttentionParams, q: &'a [f32], k: &'a [f32], v: &'a [f32]) -> Self {
        Ctx {
            q,
            k,
            v,
            heads: params.shape.heads,
            n: params.shape.seq,
            d: params.shape.head_dim,
            scale: params.scale,
            pattern: params.pattern,
            dropout: params.active_dropout(),
        }
    }
}

/// The forward's saved tensors and the incoming gradient.
struct Grads<'a> {
    out: &'a [f32],
    lse: &'a [f32],
    dout: &'a [f32],
}

type ForwardTask = fn(&Ctx, usize, usize, &mut [f32], &mut [f32]);
type BackwardTask = fn(&Ctx, &Grads, usize, &mut [f32], &mut [f32], &mut [f32]);

#[cfg(target_arch = "x86_64")]
fn forward_block_avx2(ctx: &Ctx, bh: usize, r0: usize, out: &mut [f32], lse: &mut [f32]) {
    #[target_feature(enable = "avx2,fma")]
    fn run(ctx: &Ctx, bh: usize, r0: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_block::<Avx2>(ctx, bh, r0, out, lse)
    }
    // Safety: this task is only chosen for Isa::Avx2Fma, which the entry
    // points check this CPU has (Isa::check_available).
    unsafe { run(ctx, bh, r0, out, lse) }
}

#[cfg(target_arch = "x86_64")]
fn backward_head_avx2(ctx: &Ctx, g: &Grads, bh: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    #[target_feature(enable = "avx2,fma")]
    fn run(ctx: &Ctx, g: &Grads, bh: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
        backward_head::<Avx2>(ctx, g, bh, dq, dk, dv)
    }
    // Safety: as in forward_block_avx2.
    unsafe { run(ctx, g, bh, dq, dk, dv) }
}

#[cfg(target_arch = "x86_64")]
fn forward_block_avx512(ctx: &Ctx, bh: usize, r0: usize, out: &mut [f32], lse: &mut [f32]) {
    #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
    fn run(ctx: &Ctx, bh: usize, r0: usize, out: &mut [f32], lse: &mut [f32]) {
        forward_block::<Avx512>(ctx, bh, r0, out, lse)
    }
    // Safety: this task is only chosen for Isa::Avx512, which the entry
    // points check this CPU has (Isa::check_available).
    unsafe { run(ctx, bh, r0, out, lse) }
}

#[cfg(target_arch = "x86_64")]
fn backward_head_avx512(ctx: &Ctx, g: &Grads, bh: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
    fn run(ctx: &Ctx, g: &Grads, bh: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
        backward_head::<Avx512>(ctx, g, bh, dq, dk, dv)
    }
    // Safety: as in forward_block_avx512.
    unsafe { run(ctx, g, bh, dq, dk, dv) }
}

/// The visible key ranges of one query block, as f32 lanes for masking.
struct BlockRanges {
    /// Query lanes, `rows` rounded up to 16.
    width: usize,
    starts: Vec<f32>,
    ends: Vec<f32>,
    /// Union of the visible ranges.
    lo: usize,
    hi: usize,
    /// Every query sees all of `[max_start, min_end)`.
    max_start: usize,
    min_end: usize,
}

impl BlockRanges {
    fn new(ctx: &Ctx, batch: usize, r0: usize, rows: usize) -> Self {
        let width = rows.next_multiple_of(NR);
        // padding lanes see nothing
        let mut starts = vec![f32::INFINITY; width];
        let mut ends = vec![f32::NEG_INFINITY; width];
        let (mut lo, mut hi, mut max_start, mut min_end) = (usize::MAX, 0, 0, usize::MAX);
        for r in 0..rows {
            let keys = ctx.pattern.key_range(batch, r0 + r, ctx.n);
            starts[r] = keys.start as f32;
            ends[r] = keys.end as f32;
            max_start = max_start.max(keys.start);
            min_end = min_end.min(keys.end);
            if !keys.is_empty() {
                lo = lo.min(keys.start);
                hi = hi.max(keys.end);
            }
        }
        BlockRanges { width, starts, ends, lo, hi, max_start, min_end }
    }

    fn is_empty(&self) -> bool {
        self.lo >= self.hi
    }

    /// Key blocks to visit: `BLOCK_K` keys at a time from `lo`.
    fn key_blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (self.lo..self.hi).step_by(BLOCK_K).map(|j0| (j0, (j0 + BLOCK_K).min(self.hi)))
    }

    /// Whether every query of the block sees every key of `j0..j1`.
    fn covers(&self, j0: usize, j1: usize) -> bool {
        self.max_start <= j0 && self.min_end >= j1
    }
}

/// `t[p * width + r] = x[r * d + p] * mul` for the block's rows (padding
/// lanes 0): a block of q or dout transposed so that queries are lanes.
fn transpose_rows(x: &[f32], rows: usize, d: usize, width: usize, mul: f32, t: &mut Vec<f32>) {
    t.clear();
    t.resize(d * width, 0.0);
    for r in 0..rows {
        for (p, &val) in x[r * d..(r + 1) * d].iter().enumerate() {
            t[p * width + r] = val * mul;
        }
    }
}

/// Grows `v` to at least `len` values (contents unspecified) and returns them.
fn at_least(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// A forward task's large buffers, kept per thread so that short tasks (many
/// small heads, as in a tagger's batch) do not allocate and zero them each time.
#[derive(Default)]
struct ForwardScratch {
    qt: Vec<f32>,
    acc: Vec<f32>,
    st: Vec<f32>,
}

thread_local! {
    static FORWARD_SCRATCH: std::cell::RefCell<ForwardScratch> = std::cell::RefCell::default();
}

/// Forward for query rows `r0 .. r0 + lse.len()` of head `bh`.
#[inline(always)]
fn forward_block<S: Simd>(ctx: &Ctx, bh: usize, r0: usize, out: &mut [f32], lse: &mut [f32]) {
    let (n, d) = (ctx.n, ctx.d);
    let rows = lse.len();
    let base = bh * n * d;
    let ranges = BlockRanges::new(ctx, bh / ctx.heads, r0, rows);
    if ranges.is_empty() {
        out.fill(0.0);
        lse.fill(f32::NEG_INFINITY);
        return;
    }
    let w = ranges.width;
    let mut scratch = FORWARD_SCRATCH.with_borrow_mut(std::mem::take);
    transpose_rows(&ctx.q[base + r0 * d..], rows, d, w, ctx.scale * LOG2_E, &mut scratch.qt);
    let qt = &scratch.qt;
    // Running max starts at the lowest finite value, not -inf, so a query
    // whose keys are all masked so far never computes -inf - (-inf).
    let mut m = vec![f32::MIN; w];
    let mut l = vec![0f32; w];
    let mut alpha = vec![0f32; w];
    scratch.acc.clear();
    scratch.acc.resize(rows * d, 0.0);
    let acc = &mut scratch.acc;
    let st = at_least(&mut scratch.st, BLOCK_K * w);
    let dropout = ctx.dropout.map(|dr| (dr, dr.head_key(bh), dr.threshold(), dr.scale()));
    let salts: Vec<u32> = (0..w).map(|r| AttentionDropout::lane_salt(r0 + r)).collect();
    let mut row_keys = vec![0u32; BLOCK_K];
    for (j0, j1) in ranges.key_blocks() {
        let bc = j1 - j0;
        // S^T = K_j (c Q)^T: [bc, w], scores in log2 units
        // Safety: K rows j0..j1 of this head exist; qt is d x w; st is >= bc x w.
        unsafe { gemm::<S>(bc, w, d, ctx.k[base + j0 * d..].as_ptr(), d, 1, qt.as_ptr(), w, st.as_mut_ptr(), w, false) };
        let masked = !ranges.covers(j0, j1);
        if let Some((_, head_key, _, _)) = dropout {
            for (c, key) in row_keys[..bc].iter_mut().enumerate() {
                *key = AttentionDropout::row_key(head_key, j0 + c);
            }
        }
        // One vector (16 lanes, one cache line of a row) at a time; on AVX2
        // its two registers are independent running sums, which keep the
        // exponentials' pipeline full.
        for x in (0..w).step_by(LANES) {
            // Safety: x + LANES <= w (w is a multiple of 16), every st row has w lanes.
            unsafe {
                let start = S::load(ranges.starts[x..].as_ptr());
                let end = S::load(ranges.ends[x..].as_ptr());
                let block_max = if masked {
                    let mut block_max = S::splat(f32::NEG_INFINITY);
                    for c in 0..bc {
                        let p = st.as_mut_ptr().add(c * w + x);
                        let s = S::keep_range(S::load(p), (j0 + c) as f32, start, end);
                        S::store(p, s);
                        block_max = S::max(block_max, s);
                    }
                    block_max
                } else {
                    // up to four running maxima, so that the pass is not one
                    // chain of dependent max latencies (max is exact in any order)
                    let row = |c: usize| S::load(st.as_ptr().add(c * w + x));
                    let mut maxima = [S::splat(f32::NEG_INFINITY); 4];
                    let chains = S::MAX_CHAINS;
                    let mut c = 0;
                    while c + chains <= bc {
                        for (u, mx) in maxima[..chains].iter_mut().enumerate() {
                            *mx = S::max(*mx, row(c + u));
                        }
                        c += chains;
                    }
                    for c in c..bc {
                        maxima[0] = S::max(maxima[0], row(c));
                    }
                    S::max(S::max(maxima[0], maxima[1]), S::max(maxima[2], maxima[3]))
                };
                let m_old = S::load(m[x..].as_ptr());
                let m_new = S::max(m_old, block_max);
                let mut sum = S::splat(0.0);
                for (c, &row_key) in row_keys[..bc].iter().enumerate() {
                    let ptr = st.as_mut_ptr().add(c * w + x);
                    let mut p = S::exp2(S::sub(S::load(ptr), m_new));
                    sum = S::add(sum, p);
                    if let Some((_, _, threshold, scale)) = dropout {
                        p = S::dropout(p, row_key, salts[x..].as_ptr(), threshold, scale);
                    }
                    S::store(ptr, p);
                }
                S::store(m[x..].as_mut_ptr(), m_new);
                let a = S::exp2(S::sub(m_old, m_new));
                S::store(alpha[x..].as_mut_ptr(), a);
                let l_old = S::load(l[x..].as_ptr());
                S::store(l[x..].as_mut_ptr(), S::fma(l_old, a, sum));
            }
        }
        for (row, &a) in acc.chunks_exact_mut(d).zip(&alpha) {
            if a != 1.0 {
                row.iter_mut().for_each(|o| *o *= a);
            }
        }
        // O += P V_j, with P read from S^T (a_rs = 1, a_ks = w)
        // Safety: V rows j0..j1 of this head exist; acc is rows x d.
        unsafe { gemm::<S>(rows, d, bc, st.as_ptr(), 1, w, ctx.v[base + j0 * d..].as_ptr(), d, acc.as_mut_ptr(), d, true) };
    }
    for r in 0..rows {
        let row = &mut out[r * d..(r + 1) * d];
        if l[r] > 0.0 {
            let inv = 1.0 / l[r];
            for (o, &a) in row.iter_mut().zip(&acc[r * d..(r + 1) * d]) {
                *o = a * inv;
            }
            lse[r] = (m[r] + l[r].log2()) * LN_2;
        } else {
            row.fill(0.0);
            lse[r] = f32::NEG_INFINITY;
        }
    }
    FORWARD_SCRATCH.with_borrow_mut(|s| *s = scratch);
}

/// Backward for all of head `bh`: `dq`, `dk`, `dv` are this head's
/// `[seq, head_dim]` slices, `dk` and `dv` zero on entry.
#[inline(always)]
fn backward_head<S: Simd>(ctx: &Ctx, g: &Grads, bh: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let (n, d) = (ctx.n, ctx.d);
    let base = bh * n * d;
    let dropout = ctx.dropout.map(|dr| (dr.head_key(bh), dr.threshold(), dr.scale()));
    let mut st = vec![0f32; BLOCK_K * BLOCK_Q.next_multiple_of(NR)];
    let mut dpt = vec![0f32; st.len()];
    let mut row_keys = vec![0u32; BLOCK_K];
    let (mut qt, mut dot) = (Vec::new(), Vec::new());
    let mut dq_acc = Vec::new();
    for r0 in (0..n).step_by(BLOCK_Q) {
        let rows = BLOCK_Q.min(n - r0);
        let ranges = BlockRanges::new(ctx, bh / ctx.heads, r0, rows);
        if ranges.is_empty() {
            continue; // dq rows stay 0
        }
        let w = ranges.width;
        let (q_rows, do_rows) = (&ctx.q[base + r0 * d..], &g.dout[base + r0 * d..]);
        transpose_rows(q_rows, rows, d, w, ctx.scale * LOG2_E, &mut qt);
        // dO^T and delta carry the score scale, so dP^T comes out scaled
        // and dS = P (dP - delta) is already the gradient of the unscaled
        // scores (one register and one multiply fewer in the loop below)
        transpose_rows(do_rows, rows, d, w, ctx.scale, &mut dot);
        // lse in log2 units; +inf for queries that see nothing, so P = 0
        let mut lse2 = vec![f32::INFINITY; w];
        let mut delta = vec![0f32; w];
        for r in 0..rows {
            let lse = g.lse[bh * n + r0 + r];
            if lse.is_finite() {
                lse2[r] = lse * LOG2_E;
            }
            let at = base + (r0 + r) * d;
            delta[r] = g.dout[at..at + d].iter().zip(&g.out[at..at + d]).map(|(a, b)| a * b).sum::<f32>() * ctx.scale;
        }
        let salts: Vec<u32> = (0..w).map(|r| AttentionDropout::lane_salt(r0 + r)).collect();
        dq_acc.clear();
        dq_acc.resize(rows * d, 0.0);
        for (j0, j1) in ranges.key_blocks() {
            let bc = j1 - j0;
            let (k_rows, v_rows) = (ctx.k[base + j0 * d..].as_ptr(), ctx.v[base + j0 * d..].as_ptr());
            // Safety: K and V rows j0..j1 exist; qt and dot are d x w; st and dpt hold bc x w.
            unsafe {
                gemm::<S>(bc, w, d, k_rows, d, 1, qt.as_ptr(), w, st.as_mut_ptr(), w, false); //   S^T
                gemm::<S>(bc, w, d, v_rows, d, 1, dot.as_ptr(), w, dpt.as_mut_ptr(), w, false);
                // dP^T
            }
            let masked = !ranges.covers(j0, j1);
            if let Some((head_key, _, _)) = dropout {
                for (c, key) in row_keys[..bc].iter_mut().enumerate() {
                    *key = AttentionDropout::row_key(head_key, j0 + c);
                }
            }
            for x in (0..w).step_by(LANES) {
                // Safety: x + LANES <= w. Few values live across the loop
                // (the range bounds are reloaded from L1 where masked), so
                // AVX2's sixteen registers hold the loop without spills.
                unsafe {
                    let lse_x = S::load(lse2[x..].as_ptr());
                    let delta_x = S::load(delta[x..].as_ptr());
                    for (c, &row_key) in row_keys[..bc].iter().enumerate() {
                        let (ps, pd) = (st.as_mut_ptr().add(c * w + x), dpt.as_mut_ptr().add(c * w + x));
                        let mut s = S::load(ps);
                        if masked {
                            let (start, end) = (S::load(ranges.starts[x..].as_ptr()), S::load(ranges.ends[x..].as_ptr()));
                            s = S::keep_range(s, (j0 + c) as f32, start, end);
                        }
                        let p = S::exp2(S::sub(s, lse_x));
                        let mut dp = S::load(pd);
                        let mut p_out = p;
                        if let Some((_, threshold, keep_scale)) = dropout {
                            let salt = salts[x..].as_ptr();
                            p_out = S::dropout(p, row_key, salt, threshold, keep_scale);
                            dp = S::dropout(dp, row_key, salt, threshold, keep_scale);
                        }
                        // dS = P (dP - delta), scaled as noted above
                        S::store(pd, S::mul(p, S::sub(dp, delta_x)));
                        S::store(ps, p_out); // the P that multiplied V
                    }
                }
            }
            // Safety: dout, q and k rows exist; dk, dv hold this head; dq_acc is rows x d.
            unsafe {
                // dV_j += P^T dO_i ; dK_j += dS^T Q_i ; dQ_i += dS K_j
                gemm::<S>(bc, d, rows, st.as_ptr(), w, 1, do_rows.as_ptr(), d, dv[j0 * d..].as_mut_ptr(), d, true);
                gemm::<S>(bc, d, rows, dpt.as_ptr(), w, 1, q_rows.as_ptr(), d, dk[j0 * d..].as_mut_ptr(), d, true);
                gemm::<S>(rows, d, bc, dpt.as_ptr(), 1, w, k_rows, d, dq_acc.as_mut_ptr(), d, true);
            }
        }
        dq[r0 * d..(r0 + rows) * d].copy_from_slice(&dq_acc);
    }
}
