//! Defaults that adapt to the data: at fit time, the training set's shape
//! (how many sequences, how long, how many values per vector, how many
//! classes) decides every setting the user did not give. Each choice comes
//! back with the reason, to print and to record in the run's report; the
//! chosen values themselves are in the checkpoint's `config.json`.
//!
//! The rules (measured on the nine UEA/UCR development sets; the figures
//! are in `docs/sequences.md`):
//!
//! - **patch**: the smallest power of two that brings the median sequence
//!   to at most [`TARGET_INPUTS`] inputs of the encoder (dense attention
//!   costs the square of the inputs; a 1,460-step series becomes 92).
//! - **stem**: a convolutional stem of [`STEM_FEATURES`] features, so that
//!   each input carries the local shape of the signal, not one number
//!   (what lets attention work on univariate series); its window
//!   (`stem_kernel`) spans about a twelfth of the median length, odd,
//!   [`STEM_KERNEL`] to [`MAX_STEM_KERNEL`] vectors (wide enough for the
//!   shape of a leaf outline, narrow on short series).
//! - **sequence_norm**: for univariate series, each series is scaled by
//!   its own mean and deviation (its level and scale go in as inputs):
//!   the shape is what separates most univariate classes.
//! - **dev_fraction**: below [`SMALL_SET`] training sequences, none is
//!   held out (holding out 20% of 40 series leaves 8 to choose on and 32
//!   to learn from); training runs a fixed schedule and keeps the last
//!   epoch.
//! - **members**: below [`SMALL_SET`] training sequences, an ensemble of
//!   [`SMALL_SET_MEMBERS`] networks whose class probabilities are
//!   averaged: on small sets one network's accuracy swings by several
//!   points with its initial weights, and the average of a few swings less
//!   and is better than the typical one (InceptionTime averages five).
//!   Where each network's run is short (at most [`LARGE_ENSEMBLE_PASSES`]
//!   vectors: training sequences x median length x epochs), twice as many
//!   ([`LARGE_ENSEMBLE_MEMBERS`]): the time stays well inside the budget
//!   and the average swings less again. The members train side by side,
//!   in parallel with several threads. Decided after the epochs (on which
//!   it depends), reported in [`KEYS`] order.
//! - **conv_members**: in such an ensemble (with a stem and attention
//!   layers), one member in [`CONV_SHARE`] is convolutional: the stem
//!   with three layers and no attention. The two kinds fail on different
//!   development sets (the convolutional one wins on leaf outlines,
//!   attention on gestures), the mean of both beat either alone, and
//!   predictions give each kind an equal say.
//! - **conv_pool**: a convolutional network (such a member, or a model
//!   with no attention layers) keeps the maximum of each run of
//!   `conv_pool` vectors after its stem's first layer, the largest divisor
//!   of the patch up to [`CONV_POOL`]: its deeper layers run over that
//!   many times fewer steps (OSULeaf 2.7x faster) and the network alone
//!   was more accurate on all six sets tried (max beat mean pooling).
//! - **batch_tokens, epochs, warmup_steps**: batches of about an eighth of
//!   the set ([`MIN_BATCH`] to [`MAX_BATCH`] sequences), as many epochs as
//!   give about [`TARGET_STEPS`] optimizer steps (between [`MIN_EPOCHS`]
//!   and [`MAX_EPOCHS`]; fewer where the epochs would pass more than
//!   [`MAX_VECTOR_PASSES`] vectors through the networks: a time budget
//!   that binds on long series), a tenth of them warm-up, and a peak learning
//!   rate of [`LR`] (measured better than 0.001 on PLAID, ArrowHead and
//!   GunPoint, worse on OSULeaf).
//!
//! Data with a label per vector keeps the fixed defaults.

use super::config::SequenceSettings;
use crate::data::series::{SeriesSet, Target};
use crate::nn::sequence::EncoderKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Inputs of the encoder the median sequence is patched down to.
pub const TARGET_INPUTS: usize = 128;
/// Features of the adaptive convolutional stem.
pub const STEM_FEATURES: usize = 64;
/// Narrowest window of the adaptive stem.
pub const STEM_KERNEL: usize = 9;
/// Widest window of the adaptive stem.
pub const MAX_STEM_KERNEL: usize = 33;
/// The stem's window covers about this share (1 / STEM_SPAN) of the median length.
pub const STEM_SPAN: usize = 12;
/// Training sets with fewer sequences hold none out.
pub const SMALL_SET: usize = 1000;
/// Networks averaged on a small set.
pub const SMALL_SET_MEMBERS: usize = 3;
/// One member in this many of a small set's ensemble is convolutional.
pub const CONV_SHARE: usize = 3;
/// A convolutional network max-pools over at most this many vectors
/// after its first layer.
pub const CONV_POOL: usize = 4;
/// Optimizer steps a run aims at.
pub const TARGET_STEPS: usize = 6000;
pub const MIN_EPOCHS: usize = 30;
pub const MAX_EPOCHS: usize = 300;
/// Vectors (training sequences x their median length x epochs) a run may
/// pass through the networks: a time budget. The mixed ensemble of three
/// trained ACSF1 (100 series of 1,460 steps) at about 0.8 s an epoch on 2
/// cores of a Zen 4, its convolutional member over all 1,460 steps; this
/// held such a set to about 2.2 minutes. With that member's stem pooled
/// ([`CONV_POOL`]) an epoch takes about 0.37 s: the budget has room left,
/// but 300 epochs did not beat 171 on ACSF1 (90-91% both).
pub const MAX_VECTOR_PASSES: usize = 25_000_000;
/// Networks averaged on a small set whose networks each pass at most
/// [`LARGE_ENSEMBLE_PASSES`] vectors: twice as many cost twice the time of
/// a run that is short anyway (6 networks: PickupGestureWiimoteZ 51 s a
/// seed), and the average of six swings less again.
pub const LARGE_ENSEMBLE_MEMBERS: usize = 6;
/// A quarter of [`MAX_VECTOR_PASSES`]: six networks of this many vectors
/// each stay near the time of three at the full budget, even on short
/// series, whose vectors cost the most each (per-sequence overheads).
pub const LARGE_ENSEMBLE_PASSES: usize = MAX_VECTOR_PASSES / 4;
/// Peak learning rate of the adaptive schedule.
pub const LR: f32 = 0.003;
/// Sequences per batch, at least and at most.
pub const MIN_BATCH: usize = 4;
pub const MAX_BATCH: usize = 8;

/// The shape of a training set: what the adaptive defaults decide from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub sequences: usize,
    /// Values per vector (channels).
    pub dims: usize,
    pub min_length: usize,
    pub median_length: usize,
    pub max_length: usize,
    /// Classes (0 for numbers).
    pub classes: usize,
    pub target: Target,
}

impl Profile {
    pub fn of(set: &SeriesSet) -> Profile {
        let mut lengths: Vec<usize> = set.series.iter().map(|s| s.len).collect();
        lengths.sort_unstable();
        Profile {
            sequences: lengths.len(),
            dims: set.dims,
            min_length: lengths.first().copied().unwrap_or(0),
            median_length: lengths.get(lengths.len() / 2).copied().unwrap_or(0),
            max_length: lengths.last().copied().unwrap_or(0),
            classes: if set.target == Target::SequenceValue { 0 } else { set.classes.len() },
            target: set.target,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lengths = if self.min_length == self.max_length {
            format!("length {}", self.min_length)
        } else {
            format!("lengths {}-{} (median {})", self.min_length, self.max_length, self.median_length)
        };
        let values = if self.dims == 1 { "1 value".to_string() } else { format!("{} values", self.dims) };
        write!(f, "{} sequences, {lengths}, {values} per vector", self.sequences)?;
        if self.classes > 0 {
            write!(f, ", {} classes", self.classes)?;
        }
        Ok(())
    }
}

/// One setting decided from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The setting's name in a config file (`patch`, `epochs`, ...).
    pub key: String,
    pub value: serde_json::Value,
    pub why: String,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: {}", self.key, self.value, self.why)
    }
}

/// The settings keys this module may choose, in the order it decides them.
pub const KEYS: &[&str] = &[
    "patch",
    "stem",
    "stem_kernel",
    "sequence_norm",
    "members",
    "conv_members",
    "conv_pool",
    "dev_fraction",
    "batch_tokens",
    "epochs",
    "warmup_steps",
    "lr",
];

/// Fills every adaptive setting of `settings` that is not in `given`
/// (names as in a config file; what the user set explicitly always
/// wins) from the training set's `profile`, and says what it chose and
/// why. `dev_file`: the dev data is a file of its own (nothing is held out).
pub fn adapt(settings: &mut SequenceSettings, given: &BTreeSet<String>, profile: &Profile, dev_file: bool) -> Vec<Choice> {
    let mut choices = Vec::new();
    if !profile.target.per_sequence() || profile.sequences == 0 {
        return choices;
    }
    let free = |key: &str| !given.contains(key);
    let mut choose = |key: &str, value: serde_json::Value, why: String| choices.push(Choice { key: key.into(), value, why });
    let (m, t) = (&mut settings.model, &mut settings.train);
    let median = profile.median_length.max(1);

    if free("patch") {
        m.patch = (median.div_ceil(TARGET_INPUTS)).next_power_of_two();
        let why = if m.patch == 1 {
            format!("median length {median} <= {TARGET_INPUTS}: one input per vector")
        } else {
            format!("median length {median}: patches of {} vectors give {} inputs (<= {TARGET_INPUTS})", m.patch, median.div_ceil(m.patch))
        };
        choose("patch", m.patch.into(), why);
    }
    if free("stem") {
        m.stem = STEM_FEATURES;
        choose("stem", m.stem.into(), "each input sees the local shape of the signal (a convolution), not one vector".into());
        if free("stem_kernel") {
            // An odd width near a twelfth of the median length, 9 to 33.
            m.stem_kernel = ((median / STEM_SPAN) | 1).clamp(STEM_KERNEL, MAX_STEM_KERNEL);
            let why = format!("windows of about a {STEM_SPAN}th of the median length ({STEM_KERNEL} to {MAX_STEM_KERNEL} vectors)");
            choose("stem_kernel", m.stem_kernel.into(), why);
        }
    }
    if free("sequence_norm") {
        m.sequence_norm = profile.dims == 1;
        let why = if m.sequence_norm {
            "univariate: each series scaled by its own mean and deviation (shape separates; level and scale are inputs)"
        } else {
            "multivariate: channels keep the training set's scale"
        };
        choose("sequence_norm", m.sequence_norm.into(), why.into());
    }
    if free("dev_fraction") && !dev_file && profile.sequences < SMALL_SET {
        t.dev_fraction = 0.0;
        choose(
            "dev_fraction",
            0.0.into(),
            format!("{} sequences (< {SMALL_SET}): none held out; a fixed schedule, the last epoch kept", profile.sequences),
        );
    }
    // The sequences the optimizer learns from, and the inputs of a typical one.
    let learning = if t.dev_fraction > 0.0 && !dev_file {
        (profile.sequences as f32 * (1.0 - t.dev_fraction)).round() as usize
    } else {
        profile.sequences
    }
    .max(1);
    let inputs = median.div_ceil(m.patch) + usize::from(m.summary());
    let batch = (learning / 8).clamp(MIN_BATCH, MAX_BATCH).min(learning);
    let t = &mut settings.train;
    if free("batch_tokens") {
        t.batch_tokens = batch * inputs;
        choose("batch_tokens", t.batch_tokens.into(), format!("about {batch} sequences of {inputs} inputs per batch"));
    }
    let per_epoch = learning.div_ceil((t.batch_tokens / inputs).max(1));
    if free("epochs") {
        let by_steps = TARGET_STEPS.div_ceil(per_epoch).clamp(MIN_EPOCHS, MAX_EPOCHS);
        let by_time = (MAX_VECTOR_PASSES / (learning * median)).max(MIN_EPOCHS);
        t.epochs = by_steps.min(by_time);
        let why = if by_time < by_steps {
            format!(
                "about {per_epoch} steps per epoch: {} steps (fewer than {}: {learning} sequences of about {median} vectors, at most {}M vectors in all)",
                t.epochs * per_epoch,
                by_steps * per_epoch,
                MAX_VECTOR_PASSES / 1_000_000
            )
        } else {
            format!("about {per_epoch} steps per epoch: {} steps", t.epochs * per_epoch)
        };
        choose("epochs", t.epochs.into(), why);
    }
    if free("warmup_steps") {
        t.warmup_steps = (t.epochs * per_epoch / 10).max(1);
        choose("warmup_steps", t.warmup_steps.into(), "a tenth of the steps".into());
    }
    if free("lr") {
        t.lr = LR;
        // The f32's shortest decimal (0.003, not 0.0030000000260770321).
        let shown: f64 = LR.to_string().parse().unwrap_or(f64::from(LR));
        choose("lr", shown.into(), format!("peak learning rate for batches of at most {MAX_BATCH} sequences"));
    }
    // Decided last (they depend on the epochs), reported in KEYS order.
    let passes = learning * median * settings.train.epochs;
    let m = &mut settings.model;
    let small = profile.sequences < SMALL_SET;
    if free("members") {
        let room = passes <= LARGE_ENSEMBLE_PASSES;
        m.members = match (small, room) {
            (true, true) => LARGE_ENSEMBLE_MEMBERS,
            (true, false) => SMALL_SET_MEMBERS,
            (false, _) => 1,
        };
        let why = if small {
            format!(
                "{} sequences (< {SMALL_SET}): the average of {} networks varies less than one; {} ({:.2}M vectors per network, {} {:.2}M)",
                profile.sequences,
                m.members,
                if room { "twice as many fit the time" } else { "a long run" },
                passes as f64 / 1e6,
                if room { "<=" } else { ">" },
                LARGE_ENSEMBLE_PASSES as f64 / 1e6,
            )
        } else {
            format!("{} sequences: one network", profile.sequences)
        };
        choose("members", m.members.into(), why);
    }
    if free("conv_members") {
        let attention = m.encoder.kind == EncoderKind::Attention && m.encoder.layers > 0;
        let mixed = small && m.stem > 0 && attention && m.members >= CONV_SHARE;
        m.conv_members = if mixed { m.members / CONV_SHARE } else { 0 };
        let why = if mixed {
            format!(
                "{} of the {} networks convolutional (a 3-layer stem, no attention); each kind has half the say in predictions",
                m.conv_members, m.members
            )
        } else if !small {
            format!("{} sequences: attention only", profile.sequences)
        } else {
            format!("attention only (mixed ensembles need a stem, attention layers and at least {CONV_SHARE} members)")
        };
        choose("conv_members", m.conv_members.into(), why);
    }
    let convolutional = m.stem > 0 && (m.conv_members > 0 || m.encoder.layers == 0);
    if free("conv_pool") && convolutional {
        // The largest divisor of the patch up to CONV_POOL.
        m.conv_pool = (1..=CONV_POOL.min(m.patch)).rev().find(|k| m.patch.is_multiple_of(*k)).unwrap_or(1);
        let why = if m.conv_pool > 1 {
            format!(
                "the convolutional networks keep the maximum of each {} vectors after their first layer (their deeper layers run over {} times fewer steps; the maximum keeps peaks a mean would blur)",
                m.conv_pool, m.conv_pool
            )
        } else {
            "patch 1: the convolutional networks' deeper layers run over every vector".to_string()
        };
        choose("conv_pool", m.conv_pool.into(), why);
    }
    choices.sort_by_key(|c| KEYS.iter().position(|k| *k == c.key));
    choices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::series::{Label, Series};

    fn profile(sequences: usize, dims: usize, lengths: (usize, usize, usize), classes: usize) -> Profile {
        let (min_length, median_length, max_length) = lengths;
        Profile { sequences, dims, min_length, median_length, max_length, classes, target: Target::SequenceClass }
    }

    fn chosen(p: &Profile, given: &[&str]) -> (SequenceSettings, Vec<String>) {
        let mut s = SequenceSettings::default();
        let given = given.iter().map(|k| k.to_string()).collect();
        let choices = adapt(&mut s, &given, p, false);
        (s, choices.into_iter().map(|c| c.key).collect())
    }

    #[test]
    fn a_short_univariate_set_gets_a_stem_its_own_scale_and_no_held_out_data() {
        let (s, keys) = chosen(&profile(50, 1, (24, 24, 24), 2), &[]);
        assert_eq!(keys, KEYS, "every adaptive setting is chosen, in order");
        assert_eq!((s.model.patch, s.model.stem, s.model.stem_kernel, s.model.sequence_norm), (1, STEM_FEATURES, STEM_KERNEL, true));
        let (wider, _) = chosen(&profile(50, 1, (251, 251, 251), 2), &[]);
        assert_eq!(wider.model.stem_kernel, 21, "251 / 12 = 20, made odd");
        assert_eq!((s.train.dev_fraction, s.model.members), (0.0, LARGE_ENSEMBLE_MEMBERS), "a small set of short runs: six networks");
        assert_eq!((s.model.conv_members, s.model.conv_pool), (2, 1), "two of its six networks convolutional; patch 1: no pooling");
        // 50 / 8 = 6 sequences of 24 inputs; 9 steps per epoch; 6,000 steps would be 667 epochs.
        assert_eq!((s.train.batch_tokens, s.train.epochs, s.train.warmup_steps, s.train.lr), (6 * 24, MAX_EPOCHS, 270, LR));
    }

    #[test]
    fn a_multivariate_set_keeps_the_training_scale_and_batches_of_at_most_8() {
        let (s, _) = chosen(&profile(270, 12, (7, 20, 29), 9), &[]);
        assert_eq!((s.model.patch, s.model.sequence_norm, s.model.stem), (1, false, STEM_FEATURES));
        assert_eq!((s.train.batch_tokens, s.train.epochs), (8 * 20, 177), "270 / 8 -> 34 steps per epoch");
    }

    #[test]
    fn a_long_set_is_patched_to_at_most_128_inputs() {
        let (s, _) = chosen(&profile(100, 1, (1460, 1460, 1460), 10), &[]);
        assert_eq!(s.model.patch, 16, "1460 / 16 = 92 inputs; 8 would leave 183");
        assert_eq!(s.train.epochs, MAX_VECTOR_PASSES / (100 * 1460), "146,000 vectors an epoch: 171 epochs, not 300");
        assert_eq!((s.model.members, s.model.conv_members), (SMALL_SET_MEMBERS, 1), "a long run: three networks");
        assert_eq!(s.model.conv_pool, CONV_POOL, "patch 16: the convolutional network pools over 4");
        assert_eq!(chosen(&profile(100, 1, (200, 200, 200), 10), &[]).0.train.epochs, MAX_EPOCHS, "short series: the budget does not bind");
        assert_eq!(chosen(&profile(900, 1, (9000, 9000, 9000), 10), &[]).0.train.epochs, MIN_EPOCHS, "never below the fewest epochs");
        assert_eq!(s.model.stem_kernel, MAX_STEM_KERNEL, "a twelfth of 1460 is 121: the widest window");
        assert_eq!(s.train.batch_tokens, 8 * 92);
        let (s, _) = chosen(&profile(100, 1, (128, 128, 128), 10), &[]);
        assert_eq!(s.model.patch, 1, "128 inputs fit");
        let (s, _) = chosen(&profile(100, 1, (129, 129, 129), 10), &[]);
        assert_eq!((s.model.patch, s.model.conv_pool), (2, 2), "pooled over the whole patch");
    }

    #[test]
    fn unequal_lengths_are_patched_for_the_median_one() {
        let lengths = [100, 150, 400, 500, 1344];
        let set = SeriesSet {
            path: "u.ts".into(),
            name: None,
            dims: 1,
            target: Target::SequenceClass,
            classes: vec!["a".into(), "b".into()],
            series: lengths
                .iter()
                .enumerate()
                .map(|(i, &len)| Series { values: vec![0.0; len], len, label: Label::Class(i as u32 % 2), line: i + 1 })
                .collect(),
        };
        let p = Profile::of(&set);
        assert_eq!((p.sequences, p.min_length, p.median_length, p.max_length, p.classes), (5, 100, 400, 1344, 2));
        assert_eq!(p.to_string(), "5 sequences, lengths 100-1344 (median 400), 1 value per vector, 2 classes");
        let (s, _) = chosen(&p, &[]);
        assert_eq!((s.model.patch, s.model.stem_kernel), (4, 33), "400 / 4 = 100 inputs; 400 / 12 = 33");
        assert_eq!(
            (s.train.batch_tokens, s.train.epochs),
            (4 * 100, 300),
            "5 sequences: batches of 4, 2 steps per epoch, at most 300 epochs"
        );
    }

    #[test]
    fn a_large_set_holds_out_dev_data_and_runs_fewer_epochs() {
        let (s, keys) = chosen(&profile(5000, 3, (50, 50, 50), 20), &[]);
        assert!(!keys.contains(&"dev_fraction".to_string()) && !keys.contains(&"conv_pool".to_string()), "{keys:?}");
        assert_eq!((s.train.dev_fraction, s.model.members, s.model.conv_members), (0.2, 1, 0), "a large set: one attention network");
        // One convolutional network (no attention layers) pools; a user's pool wins.
        let (one, _) = chosen(&profile(5000, 1, (400, 400, 400), 2), &[]);
        assert_eq!((one.model.patch, one.model.conv_pool), (4, 1), "attention: no pooling");
        let conv = |given: &[&str], f: &dyn Fn(&mut SequenceSettings)| {
            let mut s = SequenceSettings::default();
            f(&mut s);
            adapt(&mut s, &given.iter().map(|k| k.to_string()).collect(), &profile(5000, 1, (400, 400, 400), 2), false);
            s.model.conv_pool
        };
        assert_eq!(conv(&["layers"], &|s| s.model.encoder.layers = 0), CONV_POOL);
        assert_eq!(conv(&["layers", "conv_pool"], &|s| s.model.encoder.layers = 0), 1, "the user's pool wins");
        assert_eq!(
            conv(&["layers", "patch"], &|s| {
                s.model.encoder.layers = 0;
                s.model.patch = 6
            }),
            3,
            "the largest divisor up to 4"
        );
        // 4,000 learning sequences in batches of 8: 500 steps per epoch, 12 epochs at least 30.
        assert_eq!((s.train.batch_tokens, s.train.epochs), (8 * 50, MIN_EPOCHS));
    }

    #[test]
    fn short_runs_get_six_networks_long_ones_three() {
        let members = |sequences: usize, length: usize, given: &[&str], f: &dyn Fn(&mut SequenceSettings)| {
            let mut s = SequenceSettings::default();
            f(&mut s);
            let why =
                adapt(&mut s, &given.iter().map(|k| k.to_string()).collect(), &profile(sequences, 1, (length, length, length), 5), false)
                    .into_iter()
                    .find(|c| c.key == "members")
                    .map(|c| c.why);
            (s.model.members, s.model.conv_members, why)
        };
        // 100 sequences in batches of 8: 13 steps an epoch, 300 epochs.
        // 100 x 208 x 300 = 6.24M vectors per network: six fit; 209 steps: 6.27M, three.
        let (m, c, why) = members(100, 208, &[], &|_| {});
        assert_eq!((m, c), (6, 2));
        let why = why.unwrap();
        assert!(why.contains("6.24M vectors per network, <= 6.25M"), "{why}");
        assert_eq!(members(100, 209, &[], &|_| {}).0, 3);
        // The epochs the user gives count: 100 epochs of 600 steps is 6M.
        assert_eq!(members(100, 600, &["epochs"], &|s| s.train.epochs = 100).0, 6);
        assert_eq!(members(5000, 20, &[], &|_| {}).0, 1, "a large set: one network");
    }

    #[test]
    fn a_mixed_ensemble_needs_a_stem_attention_and_three_members() {
        let small = profile(50, 1, (100, 100, 100), 2);
        let conv = |given: &[&str], f: &dyn Fn(&mut SequenceSettings)| {
            let mut s = SequenceSettings::default();
            f(&mut s);
            adapt(&mut s, &given.iter().map(|k| k.to_string()).collect(), &small, false);
            (s.model.members, s.model.conv_members)
        };
        assert_eq!(conv(&["members"], &|s| s.model.members = 6), (6, 2), "a third of a larger ensemble");
        assert_eq!(conv(&["members"], &|s| s.model.members = 2), (2, 0), "fewer than three: attention only");
        assert_eq!(conv(&["stem"], &|s| s.model.stem = 0), (6, 0), "no stem: attention only");
        assert_eq!(
            conv(&["layers"], &|s| s.model.encoder.layers = 0),
            (6, 0),
            "no attention layers: every member is convolutional already"
        );
        assert_eq!(conv(&["encoder"], &|s| s.model.encoder.kind = EncoderKind::Rnn), (6, 0), "a BiLSTM: not mixed");
        assert_eq!(conv(&["conv_members"], &|s| s.model.conv_members = 3), (6, 3), "the user's count wins");
    }

    #[test]
    fn what_the_user_gave_is_left_alone() {
        let given = ["patch", "epochs", "sequence_norm", "stem", "members"];
        let (s, keys) = chosen(&profile(50, 1, (1000, 1000, 1000), 2), &given);
        let fixed = SequenceSettings::default();
        assert_eq!((s.model.patch, s.train.epochs, s.model.sequence_norm, s.model.stem), (1, fixed.train.epochs, false, 0));
        assert_eq!(s.model.members, 1);
        assert!(!keys.iter().any(|k| given.contains(&k.as_str()) || k == "stem_kernel"), "{keys:?}");
        assert_eq!(s.train.batch_tokens, 6 * 1000, "batches follow the user's patch");
        // A dev file: nothing to hold out, so dev_fraction is not chosen.
        let mut s = SequenceSettings::default();
        let keys: Vec<String> =
            adapt(&mut s, &BTreeSet::new(), &profile(50, 1, (24, 24, 24), 2), true).into_iter().map(|c| c.key).collect();
        assert!(!keys.contains(&"dev_fraction".to_string()) && s.train.dev_fraction == 0.2);
    }

    #[test]
    fn labels_per_vector_keep_the_fixed_defaults() {
        let p = Profile { target: Target::VectorClass, ..profile(50, 1, (500, 500, 500), 2) };
        let (s, keys) = chosen(&p, &[]);
        assert!(keys.is_empty());
        assert_eq!(serde_json::to_value(&s.model).unwrap(), serde_json::to_value(SequenceSettings::default().model).unwrap());
    }
}
