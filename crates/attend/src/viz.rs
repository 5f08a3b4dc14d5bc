//! Seeing the attention: the weights a tagger uses for one sentence (per
//! layer and head, recomputed on demand; the fused training and tagging path
//! never stores them) and PNG heatmaps of them.

use crate::data::batch::{encode, Batch};
use crate::data::conllu::Sentence;
use crate::data::vocab::TaggerVocab;
use crate::error::{Error, Result};
use crate::models::Tagger;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::path::Path;
use std::sync::OnceLock;

/// Attention of one sentence: `layers[l][h][i][j]` is how much word i looks
/// at word j in head h of layer l (each row sums to 1 over the words it may
/// see).
#[derive(Debug, Clone, Serialize)]
pub struct AttentionMaps {
    pub words: Vec<String>,
    /// Predicted UPOS per word.
    pub tags: Vec<String>,
    pub layers: Vec<Vec<Vec<Vec<f32>>>>,
}

impl AttentionMaps {
    /// Head-averaged weights of layer `l` (rows still sum to 1).
    pub fn mean(&self, l: usize) -> Vec<Vec<f32>> {
        let heads = &self.layers[l];
        let n = self.words.len();
        (0..n).map(|i| (0..n).map(|j| heads.iter().map(|h| h[i][j]).sum::<f32>() / heads.len() as f32).collect()).collect()
    }
}

/// The tagger's attention weights and tags for one sentence.
pub fn attention_maps(model: &Tagger, vocab: &TaggerVocab, sentence: &Sentence) -> Result<AttentionMaps> {
    let words: Vec<String> = sentence.words().map(|t| t.form.clone()).collect();
    if words.is_empty() {
        return Err(Error::Input("the sentence has no words".into()));
    }
    let data = encode(std::slice::from_ref(sentence), vocab, model.config.max_word_chars);
    let batch = Batch::new(&data, &[0]);
    let tags = model.predict_batch(&batch)?.remove(0).into_iter().map(|t| vocab.tags.name(t).to_string()).collect();
    let layers = model
        .attention_weights(&batch)?
        .into_iter()
        .map(|w| w.squeeze(0).and_then(|w| w.to_vec3::<f32>()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(AttentionMaps { words, tags, layers })
}

/// Registers a TrueType font for the labels once: `ATTEND_FONT`, or a
/// common system font.
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = std::env::var("ATTEND_FONT").into_iter().chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/System/Library/Fonts/Supplemental/Arial.ttf",
                "/Library/Fonts/Arial.ttf",
                "C:\\Windows\\Fonts\\arial.ttf",
            ]
            .map(String::from),
        );
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for the heatmap labels: set ATTEND_FONT=/path/to/font.ttf (on Debian: apt-get install fonts-dejavu-core)".into())
    })
    .clone()
    .map_err(Error::Input)
}

/// Colour of a weight in [0, 1]: white to deep blue.
fn shade(w: f32) -> RGBColor {
    let w = w.clamp(0.0, 1.0).sqrt(); // small weights stay visible
    let lerp = |a: f32, b: f32| (a + (b - a) * w).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

/// Cell size in pixels of a heatmap with `n` words.
fn cell(n: usize) -> u32 {
    (640 / n.max(1)).clamp(12, 40) as u32
}

/// Pixel size (width, height) of the heatmap [`heatmap_png`] draws for `words`.
pub fn heatmap_size(words: &[String]) -> (u32, u32) {
    let label = 8 * words.iter().map(|w| w.chars().count()).max().unwrap_or(1).min(24) as u32 + 16;
    let side = cell(words.len()) * words.len() as u32;
    (label + side + 20, label + side + 50)
}

/// Writes a heatmap: rows are the words that look (queries), columns the
/// words they look at (keys), darker is more weight; cells show the weight
/// when there is room.
pub fn heatmap_png(path: &Path, title: &str, words: &[String], weights: &[Vec<f32>]) -> Result<()> {
    ensure_font()?;
    let n = words.len();
    let (w, h) = heatmap_size(words);
    let c = cell(n) as i32;
    let label = (w - 20 - c as u32 * n as u32) as i32;
    let top = 40 + label;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(title.to_string(), (10, 10), ("sans-serif", 16).into_font().color(&BLACK)))?;
        let font = ("sans-serif", (c as f64 * 0.55).clamp(10.0, 14.0)).into_font();
        let short = |s: &String| if s.chars().count() > 24 { format!("{}…", s.chars().take(23).collect::<String>()) } else { s.clone() };
        for (i, word) in words.iter().enumerate() {
            let y = top + i as i32 * c + c / 2;
            let style = font.color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(short(word), (label - 6, y), style))?;
            let x = label + i as i32 * c + c / 2;
            let style = font.transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(short(word), (x, top - 6), style))?;
        }
        for (i, row) in weights.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x, y) = (label + j as i32 * c, top + i as i32 * c);
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], shade(v).filled()))?;
                if c >= 28 && v >= 0.005 {
                    let ink = if v > 0.35 { &WHITE } else { &BLACK };
                    let style = ("sans-serif", 10).into_font().color(ink).pos(Pos::new(HPos::Center, VPos::Center));
                    root.draw(&Text::new(format!("{:.2}", v).trim_start_matches('0').to_string(), (x + c / 2, y + c / 2), style))?;
                }
            }
        }
        root.draw(&Rectangle::new([(label, top), (label + c * n as i32, top + c * n as i32)], BLACK.stroke_width(1)))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}

/// Writes one heatmap per layer and head (`layerL-headH.png`), one per
/// layer averaged over heads (`layerL-mean.png`) and `attention.json`, into
/// `dir`. Returns the files written.
pub fn write_heatmaps(maps: &AttentionMaps, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    let labels: Vec<String> = maps.words.iter().zip(&maps.tags).map(|(w, t)| format!("{w} {t}")).collect();
    for (l, heads) in maps.layers.iter().enumerate() {
        for (h, weights) in heads.iter().enumerate() {
            let path = dir.join(format!("layer{}-head{}.png", l + 1, h + 1));
            heatmap_png(&path, &format!("layer {} head {}: row word looks at column word", l + 1, h + 1), &labels, weights)?;
            files.push(path);
        }
        let path = dir.join(format!("layer{}-mean.png", l + 1));
        heatmap_png(&path, &format!("layer {}, mean of {} heads", l + 1, heads.len()), &labels, &maps.mean(l))?;
        files.push(path);
    }
    let path = dir.join("attention.json");
    let text = serde_json::to_string(maps).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    files.push(path);
    Ok(files)
}
