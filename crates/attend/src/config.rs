//! Tagger config files: a `[model]` and a `[train]` table (TOML) with the
//! names of [`TaggerConfig`] and [`TrainConfig`]; anything left out takes
//! its default, unknown keys are errors.

use crate::models::TaggerConfig;
use crate::train::TrainConfig;
use serde::Deserialize;

/// Both tables of a tagger config.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TaggerSettings {
    pub model: TaggerConfig,
    pub train: TrainConfig,
}

impl TaggerSettings {
    /// Settings from a parsed TOML table, checked (sizes, ranges).
    pub fn from_table(table: toml::Table) -> Result<Self, String> {
        let s: TaggerSettings = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        s.model.validate()?;
        s.train.validate()?;
        Ok(s)
    }

    /// Settings from TOML text. Any text gives settings or an error, never a
    /// panic (fuzzed).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Self::from_table(text.parse::<toml::Table>().map_err(|e| e.to_string())?)
    }
}
