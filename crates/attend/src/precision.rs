//! The precision of inference's matrix products, for the whole process.
//!
//! Training always multiplies in f32. The tagger's predictions (tagging,
//! and scoring dev and test) may round the products' inputs to bfloat16 and
//! sum in f32 where the CPU multiplies bf16 pairs natively (AVX-512 BF16:
//! [`attend_kernels::bf16`]), which runs the dense layers and the character
//! CNN up to twice as fast. [`Precision::Auto`] (the default) does that
//! where the CPU can; attention itself, the norms and the softmax stay f32
//! in every case. The segmenter, sequence and graph models do not call
//! [`inference`] and stay f32 (the segmenter's sentence F1 moved by more
//! than the 0.05 points allowed; the others are not measured yet).

use std::sync::atomic::{AtomicU8, Ordering};

use attend_kernels::matmul::{self, Precision as Products};

/// What inference's matrix products run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 products where the CPU has AVX-512 BF16, f32 elsewhere.
    #[default]
    Auto,
    /// f32 products everywhere: the reference.
    F32,
    /// bf16 products; refused on a CPU without AVX-512 BF16.
    Bf16,
}

impl Precision {
    /// What this setting runs on this CPU.
    pub fn products(self) -> Products {
        match self {
            Precision::F32 => Products::F32,
            Precision::Bf16 => Products::Bf16,
            Precision::Auto if attend_kernels::bf16::available() => Products::Bf16,
            Precision::Auto => Products::F32,
        }
    }

    /// The setting's name: `auto`, `f32` or `bf16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The setting named `auto`, `f32` or `bf16`.
    pub fn parse(name: &str) -> crate::Result<Precision> {
        match name {
            "auto" => Ok(Precision::Auto),
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(crate::Error::Input(format!("no precision {other:?}: auto, f32 or bf16"))),
        }
    }

    /// `f32` or `bf16`: what [`products`](Self::products) resolves to.
    pub fn name(self) -> &'static str {
        match self.products() {
            Products::F32 => "f32",
            Products::Bf16 => "bf16",
        }
    }
}

/// The process's setting, as [`Precision`]'s discriminant.
static SETTING: AtomicU8 = AtomicU8::new(0);

/// Sets inference's precision for the whole process (every thread, from the
/// next prediction on).
///
/// # Errors
/// [`Precision::Bf16`] on a CPU without AVX-512 BF16.
pub fn set(precision: Precision) -> crate::Result<()> {
    if precision == Precision::Bf16 && !attend_kernels::bf16::available() {
        return Err(crate::Error::Input(
            "bf16 inference needs a CPU with AVX-512 BF16 (Zen 4 or later, Intel Cooper Lake or later); this one has none: use f32 or auto"
                .into(),
        ));
    }
    SETTING.store(precision as u8, Ordering::Relaxed);
    Ok(())
}

/// The process's setting.
pub fn get() -> Precision {
    match SETTING.load(Ordering::Relaxed) {
        0 => Precision::Auto,
        1 => Precision::F32,
        _ => Precision::Bf16,
    }
}

/// Runs an inference forward pass `f` on this thread at the process's
/// precision. Only for passes whose gradients nobody takes.
pub fn inference<R>(f: impl FnOnce() -> R) -> R {
    matmul::with_precision(get().products(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Precision::Auto, Precision::F32, Precision::Bf16] {
            assert_eq!(Precision::parse(p.as_str()).unwrap(), p);
        }
        assert!(Precision::parse("fp8").unwrap_err().to_string().contains("auto, f32 or bf16"));
    }

    #[test]
    fn settings_resolve_as_documented() {
        assert_eq!(Precision::F32.products(), Products::F32);
        assert_eq!(Precision::Bf16.products(), Products::Bf16);
        let has = attend_kernels::bf16::available();
        assert_eq!(Precision::Auto.products(), if has { Products::Bf16 } else { Products::F32 });
        // Tests share the process's setting, so this one only sets what
        // changes nothing: bf16 where auto already means bf16.
        if has {
            set(Precision::Bf16).unwrap();
            assert_eq!(get().products(), Products::Bf16);
            set(Precision::Auto).unwrap();
        } else {
            assert!(set(Precision::Bf16).is_err());
            assert_eq!(get(), Precision::Auto);
        }
        // inference() sets the products for its pass only
        assert_eq!(inference(matmul::precision), Precision::Auto.products());
        assert_eq!(matmul::precision(), Products::F32);
        assert_eq!(matmul::with_precision(Products::Bf16, matmul::precision), Products::Bf16);
    }
}
