//! Neural network building blocks on candle, trained through our fused ops.

pub mod attention;
pub mod char_encoder;
pub mod ctx;
pub mod encoder;
pub mod head;
pub mod params;
pub mod position;
pub mod rnn;
pub mod sequence;
pub mod word_features;

pub use attention::{AttentionKernel, MultiHeadSelfAttention};
pub use ctx::Ctx;
pub use encoder::{Encoder, EncoderLayer};
pub use params::{Embedding, Init, LayerNorm, Linear, ParamStore};
pub use position::{PositionEncoding, Rotary};
pub use sequence::{EncoderConfig, EncoderKind, SequenceEncoder};
