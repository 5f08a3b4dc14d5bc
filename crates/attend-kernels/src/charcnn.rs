//! The character CNN of a word, fused: character embeddings, a width-`k`
//! convolution (one GEMM over windows of `k` embeddings), bias, ReLU and the
//! max over the word's characters, forward beside backward.
//!
//! Unfused, the model builds `[spellings, max_chars, k * dim]` windows and
//! `[spellings, max_chars, filters]` activations, padding included, and runs
//! five element-wise passes over them. Here only real characters get a
//! window (a batch's words average about a third of its longest), the bias
//! rides in the GEMM's output, ReLU and max are one pass, and backward uses
//! that each (word, filter) output comes from one position: its gradients
//! are sparse row updates instead of two dense GEMMs.
//!
//! Same function as `relu(windows(x) W + b)` max-pooled over the first
//! `lengths[s]` positions, with positions outside a word reading zero
//! embeddings; a word of length 0 gives 0.

use crate::matmul::gemm_acc;
use rayon::prelude::*;

/// Sizes of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharCnnShape {
    /// Rows of the character table.
    pub chars: usize,
    pub char_dim: usize,
    pub filters: usize,
    /// Convolution width (odd).
    pub kernel: usize,
    /// Stride of a spelling in the id array.
    pub max_chars: usize,
}

impl CharCnnShape {
    fn window(&self) -> usize {
        self.kernel * self.char_dim
    }
}

/// No position won (every convolution output was <= 0, or the word is empty).
const NONE: u32 = u32::MAX;

/// What backward needs from forward.
#[derive(Debug, Clone)]
pub struct CharCnnForward {
    /// `[spellings, filters]`.
    pub out: Vec<f32>,
    /// `[positions, kernel * char_dim]`: the window of every real character.
    pub windows: Vec<f32>,
    /// `[spellings, filters]`: the winning position (a row of `windows`), or none.
    pub arg: Vec<u32>,
}

/// Gradients of the table `[chars, char_dim]`, the weight `[kernel *
/// char_dim, filters]` and the bias `[filters]`.
#[derive(Debug, Clone)]
pub struct CharCnnBackward {
    pub dtable: Vec<f32>,
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
}

fn check(s: CharCnnShape, table: &[f32], w: &[f32], ids: &[u32], lengths: &[usize]) {
    assert!(s.kernel % 2 == 1, "kernel width must be odd, got {}", s.kernel);
    assert_eq!(table.len(), s.chars * s.char_dim, "table must be [chars, char_dim]");
    assert_eq!(w.len(), s.window() * s.filters, "weight must be [kernel * char_dim, filters]");
    assert_eq!(ids.len(), lengths.len() * s.max_chars, "ids must be [spellings, max_chars]");
    assert!(lengths.iter().all(|&l| l <= s.max_chars), "a length exceeds max_chars");
    assert!(ids.iter().all(|&i| (i as usize) < s.chars), "a character id is outside the table");
}

/// First window row of each spelling, and the total.
fn offsets(lengths: &[usize]) -> (Vec<usize>, usize) {
    let mut off = Vec::with_capacity(lengths.len());
    let mut total = 0;
    for &l in lengths {
        off.push(total);
        total += l;
    }
    (off, total)
}

/// `buf` cut into one slice of `len * width` values per word, in order.
fn per_word<'a>(buf: &'a mut [f32], lengths: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut rows = Vec::with_capacity(lengths.len());
    let mut rest = buf;
    for &l in lengths {
        let (mine, tail) = rest.split_at_mut(l * width);
        rows.push(mine);
        rest = tail;
    }
    rows
}

/// Calls `f(i, o, id)` for every position `i` of `word` and slot `o` of
/// its width-`kernel` window that falls inside the word, `id` the
/// character there (slots outside the word read zeros).
#[inline(always)]
fn window_slots(word: &[u32], kernel: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (len, half) = (word.len(), kernel / 2);
    for i in 0..len {
        for o in 0..kernel {
            let j = i + o;
            if j >= half && j - half < len {
                f(i, o, word[j - half] as usize);
            }
        }
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

/// Forward: `out[s, f] = max(0, max_{i < len_s} (window(s, i) W + b)[f])`.
pub fn char_cnn_forward(s: CharCnnShape, table: &[f32], w: &[f32], b: &[f32], ids: &[u32], lengths: &[usize]) -> CharCnnForward {
    check(s, table, w, ids, lengths);
    assert_eq!(b.len(), s.filters, "bias must be [filters]");
    let (c, f, win) = (s.char_dim, s.filters, s.window());
    let (off, positions) = offsets(lengths);
    let spellings = lengths.len();
    // Windows of real characters; neighbours outside the word stay zero.
    let mut windows = vec![0f32; positions * win];
    per_word(&mut windows, lengths, win).into_par_iter().enumerate().for_each(|(sp, mine)| {
        let word = &ids[sp * s.max_chars..sp * s.max_chars + lengths[sp]];
        window_slots(word, s.kernel, |i, o, id| {
            mine[i * win + o * c..i * win + (o + 1) * c].copy_from_slice(&table[id * c..(id + 1) * c]);
        });
    });
    // The convolution: bias first, then += windows W, in one GEMM.
    let mut y = vec![0f32; positions * f];
    y.par_chunks_mut(f).for_each(|row| row.copy_from_slice(b));
    gemm_acc(&mut y, &windows, win, 1, w, f, 1, positions, win, f, true);
    // ReLU and max over each word's positions (ties: the first), as
    // selects without branches so that the compiler vectorises them.
    let mut out = vec![0f32; spellings * f];
    let mut arg = vec![NONE; spellings * f];
    out.par_chunks_mut(f).zip(arg.par_chunks_mut(f)).enumerate().for_each(|(sp, (o, a))| {
        for i in 0..lengths[sp] {
            let p = off[sp] + i;
            let row = &y[p * f..(p + 1) * f];
            for ((o, a), &v) in o.iter_mut().zip(a.iter_mut()).zip(row) {
                let better = v > *o;
                *o = if better { v } else { *o };
                *a = if better { p as u32 } else { *a };
            }
        }
    });
    CharCnnForward { out, windows, arg }
}

/// Backward from `dout` `[spellings, filters]`.
pub fn char_cnn_backward(
    s: CharCnnShape,
    w: &[f32],
    ids: &[u32],
    lengths: &[usize],
    fwd: &CharCnnForward,
    dout: &[f32],
) -> CharCnnBackward {
    let (c, f, win) = (s.char_dim, s.filters, s.window());
    let spellings = lengths.len();
    assert_eq!(dout.len(), spellings * f, "dout must be [spellings, filters]");
    assert_eq!(w.len(), win * f, "weight must be [kernel * char_dim, filters]");
    let (off, positions) = offsets(lengths);
    assert_eq!(fwd.windows.len(), positions * win, "forward state does not match these lengths");
    // Bias: every output that came from a position passes its gradient.
    let mut db = vec![0f32; f];
    for sp in 0..spellings {
        for k in 0..f {
            if fwd.arg[sp * f + k] != NONE {
                db[k] += dout[sp * f + k];
            }
        }
    }
    // dW^T[f, :] = sum over words of dout[s, f] * window(winner(s, f)):
    // each filter's row is owned by one task, summed in word order.
    let mut dwt = vec![0f32; f * win];
    dwt.par_chunks_mut(win).enumerate().for_each(|(k, row)| {
        for sp in 0..spellings {
            let p = fwd.arg[sp * f + k];
            if p == NONE {
                continue;
            }
            let g = dout[sp * f + k];
            let x = &fwd.windows[p as usize * win..(p as usize + 1) * win];
            for (r, xv) in row.iter_mut().zip(x) {
                *r += g * xv;
            }
        }
    });
    let dw = transpose(&dwt, f, win);
    // Window gradients: dwin[p, :] += dout[s, f] * W[:, f] for each winner,
    // then each window slot back to the embedding it copied. A word's
    // positions belong to its task; the table gradient is summed in order.
    let wt = transpose(w, win, f);
    let mut dwin = vec![0f32; positions * win];
    per_word(&mut dwin, lengths, win).into_par_iter().enumerate().for_each(|(sp, mine)| {
        for k in 0..f {
            let p = fwd.arg[sp * f + k];
            if p == NONE {
                continue;
            }
            let g = dout[sp * f + k];
            let local = p as usize - off[sp];
            let row = &mut mine[local * win..(local + 1) * win];
            for (r, wv) in row.iter_mut().zip(&wt[k * win..(k + 1) * win]) {
                *r += g * wv;
            }
        }
    });
    let mut dtable = vec![0f32; s.chars * c];
    for (sp, &len) in lengths.iter().enumerate() {
        let word = &ids[sp * s.max_chars..sp * s.max_chars + len];
        window_slots(word, s.kernel, |i, o, id| {
            let p = off[sp] + i;
            let src = &dwin[p * win + o * c..p * win + (o + 1) * c];
            for (d, g) in dtable[id * c..(id + 1) * c].iter_mut().zip(src) {
                *d += g;
            }
        });
    }
    CharCnnBackward { dtable, dw, db }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_central_differences;

    /// Plain loops over every padded position: the definition.
    fn reference(s: CharCnnShape, table: &[f32], w: &[f32], b: &[f32], ids: &[u32], lengths: &[usize]) -> Vec<f32> {
        let (c, f, half) = (s.char_dim, s.filters, s.kernel / 2);
        let mut out = vec![0f32; lengths.len() * f];
        for (sp, &len) in lengths.iter().enumerate() {
            for i in 0..len {
                for k in 0..f {
                    let mut y = b[k];
                    for o in 0..s.kernel {
                        let j = i as isize + o as isize - half as isize;
                        if j < 0 || j as usize >= len {
                            continue;
                        }
                        let id = ids[sp * s.max_chars + j as usize] as usize;
                        for d in 0..c {
                            y += table[id * c + d] * w[(o * c + d) * f + k];
                        }
                    }
                    out[sp * f + k] = out[sp * f + k].max(y);
                }
            }
        }
        out
    }

    /// Shape, table, weight, bias, character ids, lengths.
    type Data = (CharCnnShape, Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>, Vec<usize>);

    fn data() -> Data {
        let s = CharCnnShape { chars: 7, char_dim: 3, filters: 5, kernel: 3, max_chars: 4 };
        let val = |i: usize, salt: usize| (((i * 2654435761 + salt * 97) % 1000) as f32 / 500.0 - 1.0) * 0.7;
        let table: Vec<f32> = (0..s.chars * s.char_dim).map(|i| val(i, 1)).collect();
        let w: Vec<f32> = (0..s.kernel * s.char_dim * s.filters).map(|i| val(i, 2)).collect();
        let b: Vec<f32> = (0..s.filters).map(|i| val(i, 3) * 0.1).collect();
        let lengths = vec![4, 1, 0, 3];
        let ids = vec![1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 0, 6, 6, 2, 0];
        (s, table, w, b, ids, lengths)
    }

    #[test]
    fn forward_matches_the_definition() {
        let (s, table, w, b, ids, lengths) = data();
        let fwd = char_cnn_forward(s, &table, &w, &b, &ids, &lengths);
        let want = reference(s, &table, &w, &b, &ids, &lengths);
        for (a, e) in fwd.out.iter().zip(&want) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        assert!(fwd.out[2 * s.filters..3 * s.filters].iter().all(|&v| v == 0.0), "an empty word gives 0");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (s, table, w, b, ids, lengths) = data();
        let dout: Vec<f32> = (0..lengths.len() * s.filters).map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0).collect();
        let loss = |t: &[f32], w: &[f32], b: &[f32]| -> f64 {
            reference(s, t, w, b, &ids, &lengths).iter().zip(&dout).map(|(y, g)| (*y as f64) * (*g as f64)).sum()
        };
        let fwd = char_cnn_forward(s, &table, &w, &b, &ids, &lengths);
        let g = char_cnn_backward(s, &w, &ids, &lengths, &fwd, &dout);
        let check =
            |name: &str, x: &[f32], grad: &[f32], f: &dyn Fn(&[f32]) -> f64| assert_central_differences(name, x, grad, 1e-3, 2e-3, f);
        check("table", &table, &g.dtable, &|t| loss(t, &w, &b));
        check("w", &w, &g.dw, &|x| loss(&table, x, &b));
        check("b", &b, &g.db, &|x| loss(&table, &w, x));
        assert!(g.dtable.iter().any(|&v| v != 0.0) && g.dw.iter().any(|&v| v != 0.0));
    }
}
