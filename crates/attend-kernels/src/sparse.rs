//! Sparse input rows times a dense weight matrix, with dropout on the
//! stored entries: the first layer of a model on bag-of-words features
//! (Cora's node features are 98.7% zeros) costs `nnz x out` instead of
//! `rows x cols x out`.
//!
//! Dropout drops stored entries only (a zero stays zero either way, so this
//! is the same distribution as dense dropout). Entry k (in row-major order)
//! is kept by [`crate::dropout::keep`] of `(seed, k)`; the mask is never
//! stored. The weight gradient gathers per weight row through a column
//! index, so it is deterministic for any thread count.

use crate::dropout::keep;
use crate::ROW_CHUNK;
use rayon::prelude::*;

/// Dropout on the stored entries: probability `p`, and one seed per mask
/// (several masks split the output columns into equal groups, e.g. one
/// mask per attention head).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseDropout {
    pub p: f32,
    pub seeds: Vec<u64>,
}

/// A `[rows, cols]` matrix in compressed sparse rows, with a column index.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    rows: usize,
    cols: usize,
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    /// Column index: `col_offsets[j]..col_offsets[j + 1]` into `col_rows` /
    /// `col_entries` (the row and the entry number of column j's values).
    col_offsets: Vec<usize>,
    col_rows: Vec<u32>,
    col_entries: Vec<u32>,
}

impl SparseRows {
    /// The non-zeros of a dense row-major `[rows, cols]` matrix.
    pub fn from_dense(x: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(x.len(), rows * cols, "dense matrix has {} elements, not {rows} x {cols}", x.len());
        let mut offsets = Vec::with_capacity(rows + 1);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        offsets.push(0);
        for row in x.chunks_exact(cols.max(1)).take(rows) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j as u32);
                    values.push(v);
                }
            }
            offsets.push(indices.len());
        }
        if cols == 0 {
            offsets.resize(rows + 1, 0);
        }
        assert!(indices.len() < u32::MAX as usize, "{} stored entries exceed the u32 index", indices.len());
        let mut col_offsets = vec![0usize; cols + 1];
        for &j in &indices {
            col_offsets[j as usize + 1] += 1;
        }
        for j in 0..cols {
            col_offsets[j + 1] += col_offsets[j];
        }
        let mut fill = col_offsets.clone();
        let (mut col_rows, mut col_entries) = (vec![0u32; indices.len()], vec![0u32; indices.len()]);
        for i in 0..rows {
            for k in offsets[i]..offsets[i + 1] {
                let slot = &mut fill[indices[k] as usize];
                col_rows[*slot] = i as u32;
                col_entries[*slot] = k as u32;
                *slot += 1;
            }
        }
        SparseRows { rows, cols, offsets, indices, values, col_offsets, col_rows, col_entries }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Value of entry k after dropout with mask `m` (unchanged without dropout).
    #[inline(always)]
    fn value(&self, k: usize, dropout: Option<&SparseDropout>, m: usize) -> f32 {
        match dropout {
            Some(d) if d.p > 0.0 => {
                if keep(d.seeds[m], k, d.p) {
                    self.values[k] / (1.0 - d.p)
                } else {
                    0.0
                }
            }
            _ => self.values[k],
        }
    }

    /// Masks of a dropout spec (1 without dropout), checked against `n`.
    fn masks(dropout: Option<&SparseDropout>, n: usize) -> usize {
        let masks = dropout.map_or(1, |d| d.seeds.len().max(1));
        assert!(n.is_multiple_of(masks), "{n} output columns do not split into {masks} dropout masks");
        masks
    }

    /// `dropout(X) W` for `w` `[cols, n]`: `[rows, n]`. With `m` masks,
    /// output columns `k n/m .. (k+1) n/m` see mask k.
    pub fn matmul(&self, w: &[f32], n: usize, dropout: Option<&SparseDropout>) -> Vec<f32> {
        assert_eq!(w.len(), self.cols * n, "weight has {} elements, not {} x {n}", w.len(), self.cols);
        let mut y = vec![0f32; self.rows * n];
        if n == 0 {
            return y;
        }
        let masks = Self::masks(dropout, n);
        let width = n / masks;
        y.par_chunks_mut(ROW_CHUNK * n).enumerate().for_each(|(chunk, y)| {
            for (r, y) in y.chunks_exact_mut(n).enumerate() {
                let i = chunk * ROW_CHUNK + r;
                for k in self.offsets[i]..self.offsets[i + 1] {
                    let wj = &w[self.indices[k] as usize * n..][..n];
                    for m in 0..masks {
                        let x = self.value(k, dropout, m);
                        if x != 0.0 {
                            let cols = m * width..(m + 1) * width;
                            y[cols.clone()].iter_mut().zip(&wj[cols]).for_each(|(y, w)| *y += x * w);
                        }
                    }
                }
            }
        });
        y
    }

    /// Gradient of [`SparseRows::matmul`] with respect to `w`:
    /// `dropout(X)^T dy`, `[cols, n]`, for `dy` `[rows, n]`.
    pub fn matmul_weight_grad(&self, dy: &[f32], n: usize, dropout: Option<&SparseDropout>) -> Vec<f32> {
        assert_eq!(dy.len(), self.rows * n, "dy has {} elements, not {} x {n}", dy.len(), self.rows);
        let mut dw = vec![0f32; self.cols * n];
        if n == 0 {
            return dw;
        }
        let masks = Self::masks(dropout, n);
        let width = n / masks;
        dw.par_chunks_mut(ROW_CHUNK * n).enumerate().for_each(|(chunk, dw)| {
            for (r, dw) in dw.chunks_exact_mut(n).enumerate() {
                let j = chunk * ROW_CHUNK + r;
                for t in self.col_offsets[j]..self.col_offsets[j + 1] {
                    let g = &dy[self.col_rows[t] as usize * n..][..n];
                    for m in 0..masks {
                        let x = self.value(self.col_entries[t] as usize, dropout, m);
                        if x != 0.0 {
                            let cols = m * width..(m + 1) * width;
                            dw[cols.clone()].iter_mut().zip(&g[cols]).for_each(|(d, g)| *d += x * g);
                        }
                    }
                }
            }
        });
        dw
    }

    /// The dense matrix after dropout with mask `m` (the reference for tests).
    pub fn to_dense(&self, dropout: Option<&SparseDropout>, m: usize) -> Vec<f32> {
        let mut x = vec![0f32; self.rows * self.cols];
        for i in 0..self.rows {
            for k in self.offsets[i]..self.offsets[i + 1] {
                x[i * self.cols + self.indices[k] as usize] = self.value(k, dropout, m);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_products_match_dense_with_and_without_dropout() {
        let (rows, cols, n) = (150, 37, 6);
        let x: Vec<f32> = (0..rows * cols).map(|i| if (i * 7919) % 13 < 2 { ((i % 17) as f32 - 8.0) * 0.25 } else { 0.0 }).collect();
        let w: Vec<f32> = (0..cols * n).map(|i| ((i * 31) % 11) as f32 * 0.1 - 0.5).collect();
        let dy: Vec<f32> = (0..rows * n).map(|i| ((i * 17) % 7) as f32 * 0.2 - 0.6).collect();
        let s = SparseRows::from_dense(&x, rows, cols);
        assert_eq!(s.nnz(), x.iter().filter(|v| **v != 0.0).count());
        assert_eq!(s.to_dense(None, 0), x);
        let one = SparseDropout { p: 0.5, seeds: vec![9] };
        let three = SparseDropout { p: 0.5, seeds: vec![9, 10, 11] };
        for dropout in [None, Some(&one), Some(&three)] {
            let masks = dropout.map_or(1, |d| d.seeds.len());
            let dense: Vec<Vec<f32>> = (0..masks).map(|m| s.to_dense(dropout, m)).collect();
            if dropout.is_some() {
                let kept = dense[0].iter().filter(|v| **v != 0.0).count() as f32 / s.nnz() as f32;
                assert!((0.35..0.65).contains(&kept), "kept {kept}");
                if masks > 1 {
                    assert_ne!(dense[0], dense[1], "masks must differ");
                }
            }
            let y = s.matmul(&w, n, dropout);
            let dw = s.matmul_weight_grad(&dy, n, dropout);
            let width = n / masks;
            for c in 0..n {
                let xd = &dense[c / width];
                for i in 0..rows {
                    let want: f32 = (0..cols).map(|j| xd[i * cols + j] * w[j * n + c]).sum();
                    assert!((y[i * n + c] - want).abs() < 1e-5, "y[{i},{c}]");
                }
                for j in 0..cols {
                    let want: f32 = (0..rows).map(|i| xd[i * cols + j] * dy[i * n + c]).sum();
                    assert!((dw[j * n + c] - want).abs() < 1e-4, "dw[{j},{c}]");
                }
            }
        }
    }
}
