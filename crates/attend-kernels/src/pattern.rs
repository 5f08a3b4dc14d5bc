//! What an attention problem is, before any kernel runs it: its shape,
//! which keys each query may see, and which weights dropout removes (both
//! the fused kernels and the reference compute exactly these).
//!
//! Every pattern attend supports (dense, key padding, causal, a sliding
//! window with separate left and right reach, and their combinations) gives
//! each query one contiguous range of visible keys, so a pattern is described
//! by [`AttentionPattern::key_range`]. Graph patterns (CSR) live elsewhere.

use crate::simd::fmix32;
use std::ops::Range;

/// A dense, padded, causal and/or windowed attention pattern.
///
/// ```
/// use attend_kernels::AttentionPattern;
/// // two sequences of lengths 3 and 1, padded to 4; window of 1 left, 0 right
/// let p = AttentionPattern::dense().with_key_lengths(vec![3, 1]).with_window(1, 0);
/// assert_eq!(p.key_range(0, 2, 4), 1..3);
/// assert_eq!(p.key_range(1, 2, 4), 1..1); // query past the end of a short sequence sees nothing
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttentionPattern {
    /// Valid keys per sequence in the batch; keys at or past it are padding.
    /// `None` means every key is valid.
    pub key_lengths: Option<Vec<usize>>,
    /// A query at position i sees keys up to i only.
    pub causal: bool,
    /// `(left, right)`: query i sees keys in `i-left ..= i+right`.
    pub window: Option<(usize, usize)>,
}

impl AttentionPattern {
    /// Every query sees every key.
    pub fn dense() -> Self {
        Self::default()
    }

    /// Mark keys at or past `key_lengths[b]` in sequence `b` as padding.
    pub fn with_key_lengths(mut self, key_lengths: Vec<usize>) -> Self {
        self.key_lengths = Some(key_lengths);
        self
    }

    /// Restrict each query to the keys at or before it.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// Restrict query i to keys `i-left ..= i+right` (truncated attention).
    pub fn with_window(mut self, left: usize, right: usize) -> Self {
        self.window = Some((left, right));
        self
    }

    /// The keys query `query` of sequence `batch` may see, out of `seq_k`.
    /// An empty range means the query sees nothing and outputs 0.
    #[inline]
    pub fn key_range(&self, batch: usize, query: usize, seq_k: usize) -> Range<usize> {
        let len = match &self.key_lengths {
            Some(lengths) => lengths[batch].min(seq_k),
            None => seq_k,
        };
        let mut hi = len;
        let mut lo = 0;
        if self.causal {
            hi = hi.min(query + 1);
        }
        if let Some((left, right)) = self.window {
            lo = query.saturating_sub(left);
            hi = hi.min(query.saturating_add(right).saturating_add(1));
        }
        if lo >= hi {
            // Keep the range canonical so callers can test `is_empty`.
            return lo..lo;
        }
        lo..hi
    }

    /// Checks that the pattern fits a batch of `batch` sequences.
    pub fn check(&self, batch: usize) -> Result<(), String> {
        if let Some(lengths) = &self.key_lengths {
            if lengths.len() != batch {
                return Err(format!("pattern has {} key lengths for a batch of {batch}", lengths.len()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_combine_padding_causal_and_window() {
        let p = AttentionPattern::dense();
        assert_eq!(p.key_range(0, 5, 8), 0..8);
        let p = AttentionPattern::dense().with_key_lengths(vec![5]);
        assert_eq!(p.key_range(0, 7, 8), 0..5);
        let p = p.with_causal(true);
        assert_eq!(p.key_range(0, 2, 8), 0..3);
        assert_eq!(p.key_range(0, 7, 8), 0..5);
        let p = AttentionPattern::dense().with_window(2, 1);
        assert_eq!(p.key_range(0, 0, 8), 0..2);
        assert_eq!(p.key_range(0, 4, 8), 2..6);
        assert_eq!(p.key_range(0, 7, 8), 5..8);
        let p = AttentionPattern::dense().with_key_lengths(vec![0]);
        assert!(p.key_range(0, 0, 4).is_empty());
    }
}

/// Shape of a `[batch, heads, seq, head_dim]` attention problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn len(&self) -> usize {
        self.batch * self.heads * self.seq * self.head_dim
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Dropout on the normalised attention weights: weight (query i, key j) of
/// head `bh` is kept, times `1 / (1 - p)`, when a hash of
/// `(seed, bh, i, j)` clears `p`. Nothing is stored; backward recomputes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    /// Probability of dropping a weight, in `[0, 1)`.
    pub p: f32,
    pub seed: u64,
}

impl AttentionDropout {
    pub(crate) fn threshold(&self) -> u32 {
        (self.p as f64 * (1u64 << 24) as f64).round() as u32
    }

    pub(crate) fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    pub(crate) fn head_key(&self, bh: usize) -> u32 {
        let hi = fmix32((self.seed >> 32) as u32 ^ (bh as u32).wrapping_mul(0x9e37_79b9));
        fmix32(self.seed as u32 ^ hi)
    }

    pub(crate) fn row_key(head_key: u32, key: usize) -> u32 {
        fmix32(head_key ^ (key as u32).wrapping_mul(0x85eb_ca77))
    }

    pub(crate) fn lane_salt(query: usize) -> u32 {
        (query as u32).wrapping_mul(0xc2b2_ae3d) ^ 0x27d4_eb2f
    }

    /// Whether weight (`query`, `key`) of head `bh` (= batch * heads + head)
    /// survives. The fused kernels use exactly this mask.
    pub fn keep(&self, bh: usize, query: usize, key: usize) -> bool {
        let h = fmix32(Self::row_key(self.head_key(bh), key) ^ Self::lane_salt(query));
        (h >> 8) >= self.threshold()
    }

    /// The multiplier of a kept weight, `1 / (1 - p)`.
    pub fn kept_scale(&self) -> f32 {
        self.scale()
    }
}
