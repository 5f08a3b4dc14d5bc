//! A tagger in a checkpoint: its config, `vocab.json` and weights
//! ([`Saveable`] for [`Tagger`]); `checkpoint::load::<Tagger>(dir)` loads one.

use super::config::TaggerConfig;
use super::Tagger;
use crate::checkpoint::{self, Checkpoint, Loaded, Saveable};
use crate::config::TrainConfig;
use crate::data::vocab::TaggerVocab;
use crate::error::Result;
use crate::nn::ParamStore;

/// A loaded tagger: the model, its vocabularies (`data`) and the settings
/// it was trained with.
pub type LoadedTagger = Loaded<Tagger>;

impl Saveable for Tagger {
    const KIND: &'static str = "tagger";
    const EXTRA_FILES: &'static [&'static str] = &["vocab.json"];
    type Config = TaggerConfig;
    type Train = TrainConfig;
    type Data = TaggerVocab;

    fn config(&self) -> &TaggerConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn build(config: &TaggerConfig) -> Result<Self> {
        Ok(Tagger::new(config.clone(), 0)?)
    }

    fn write_data(vocab: &TaggerVocab) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![checkpoint::json_file("vocab.json", vocab)?])
    }

    /// `vocab.json`, checked against the config's table sizes.
    fn read_data(ck: &Checkpoint<Self>) -> Result<TaggerVocab> {
        let vocab_path = ck.dir.join("vocab.json");
        let vocab: TaggerVocab = ck.read_json("vocab.json")?;
        for (in_config, (what, in_vocab)) in ck.config.model.sizes().into_iter().zip(vocab.sizes()) {
            if in_config != in_vocab {
                return Err(checkpoint::ck_err(&ck.dir, format!("config.json says {in_config} {what} but vocab.json has {in_vocab}")));
            }
        }
        if vocab.word_counts.len() != vocab.words.len() {
            return Err(checkpoint::ck_err(&vocab_path, "word_counts and words differ in length"));
        }
        let sizes: Vec<usize> = vocab.columns().iter().map(|&c| vocab.column(c).map_or(0, |v| v.len())).collect();
        for combo in vocab.combinations.iter().flatten() {
            if combo.len() != sizes.len() || combo.iter().zip(&sizes).any(|(&i, &n)| i as usize >= n) {
                return Err(checkpoint::ck_err(&vocab_path, format!("label combination {combo:?} does not fit the label tables")));
            }
        }
        Ok(vocab)
    }
}
