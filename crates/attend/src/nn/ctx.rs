//! The state a forward pass carries besides its input.

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a forward pass needs besides its input: training mode and the
/// seeded RNG for dropout (candle's own CPU RNG cannot be seeded).
pub struct Ctx {
    pub train: bool,
    pub rng: ChaCha8Rng,
    /// Where embedding tables leave their gradients as rows in backward
    /// (a training step sets it: [`crate::ops::embedding_rows`]); `None`:
    /// lookups differentiate as candle's `index_select`, into a dense
    /// table.
    pub rows: Option<std::sync::Arc<crate::ops::RowGrads>>,
}

impl Ctx {
    pub fn eval() -> Self {
        use rand::SeedableRng;
        Ctx { train: false, rng: ChaCha8Rng::seed_from_u64(0), rows: None }
    }

    /// Inverted dropout: zero each element with probability `p` in training,
    /// scale the rest by 1/(1-p); identity in evaluation.
    pub fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        if !self.train || p <= 0.0 {
            return Ok(x.clone());
        }
        crate::ops::dropout(x, p, self.rng.random::<u64>())
    }
}
