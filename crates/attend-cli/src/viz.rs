//! Seeing the attention: PNG heatmaps of the weights a model uses for one
//! sentence or sequence (per layer and head), and for graph models the
//! weights a node gives its neighbours, drawn as a star and a table. The
//! weights themselves come from the library (`attend::api::attention`).

pub use attend::api::attention::{attention_maps, node_attention, AttentionMaps, Neighbour, NodeAttention};
use attend::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans, built into the binary so pictures need no system font
/// (licence: `assets/DejaVuSans-LICENSE.txt`).
const EMBEDDED_FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the font for the labels once: the TrueType file named by
/// `ATTEND_FONT` when set, else the embedded DejaVu Sans.
pub(crate) fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let (bytes, origin): (&'static [u8], String) = match std::env::var_os("ATTEND_FONT") {
            Some(path) => {
                let bytes = std::fs::read(&path).map_err(|e| format!("ATTEND_FONT={}: {e}", path.to_string_lossy()))?;
                (Box::leak(bytes.into_boxed_slice()), format!("ATTEND_FONT={}", path.to_string_lossy()))
            }
            None => (EMBEDDED_FONT, "the embedded font".into()),
        };
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{origin} is not a TrueType font attend can read"))
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

/// Distinct colours for classes (Tableau 10).
fn class_colour(c: u32) -> RGBColor {
    const C: [(u8, u8, u8); 10] = [
        (78, 121, 167),
        (242, 142, 43),
        (225, 87, 89),
        (118, 183, 178),
        (89, 161, 79),
        (237, 201, 72),
        (176, 122, 161),
        (255, 157, 167),
        (156, 117, 95),
        (186, 176, 172),
    ];
    let (r, g, b) = C[c as usize % C.len()];
    RGBColor(r, g, b)
}

/// Most neighbours a node view draws (the heaviest ones; the JSON has all).
const VIEW_NEIGHBOURS: usize = 24;

/// Writes the node view of layer `l`: on the left the node in the middle
/// and its neighbours around it, each edge as thick and dark as its mean
/// weight, nodes coloured by predicted class; on the right the weights per
/// head as a table (rows: neighbours, columns: heads and their mean).
pub fn node_view_png(path: &Path, view: &NodeAttention, l: usize) -> Result<()> {
    ensure_font()?;
    let list = &view.layers[l];
    let shown = &list[..list.len().min(VIEW_NEIGHBOURS)];
    let heads = shown.first().map_or(1, |n| n.weights.len());
    let c = 26i32;
    let (star, label_w) = (520i32, 150i32);
    let table_w = label_w + c * (heads as i32 + 1) + 20;
    let h = (star + 60).max(80 + c * shown.len() as i32 + 40);
    let w = star + table_w;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let who = |node: usize, label: Option<u32>, predicted: u32| match label {
            Some(t) => format!("{node} (class {t}, predicted {predicted})"),
            None => format!("{node} (predicted {predicted})"),
        };
        let title = format!("layer {}: the weights node {} gives its neighbours", l + 1, who(view.node, view.label, view.predicted));
        root.draw(&Text::new(title, (10, 10), ("sans-serif", 16).into_font().color(&BLACK)))?;
        let more = list.len() - shown.len();
        let note = format!(
            "{} neighbours{}; edge width and darkness = mean weight over heads; colour = predicted class",
            list.len(),
            if more > 0 { format!(", the {} heaviest shown", shown.len()) } else { String::new() }
        );
        root.draw(&Text::new(note, (10, 32), ("sans-serif", 12).into_font().color(&RGBColor(90, 100, 112))))?;
        // The star.
        let (cx, cy, r) = (star / 2, 60 + (star - 40) / 2, (star - 40) / 2 - 70);
        let at = |k: usize| {
            let a = std::f64::consts::TAU * k as f64 / shown.len().max(1) as f64 - std::f64::consts::FRAC_PI_2;
            ((cx as f64 + r as f64 * a.cos()) as i32, (cy as f64 + r as f64 * a.sin()) as i32, a)
        };
        for (k, nb) in shown.iter().enumerate() {
            let (x, y, _) = at(k);
            let width = 1 + (12.0 * nb.mean).round() as u32;
            root.draw(&PathElement::new(vec![(cx, cy), (x, y)], shade(nb.mean).stroke_width(width)))?;
        }
        for (k, nb) in shown.iter().enumerate() {
            let (x, y, a) = at(k);
            root.draw(&Circle::new((x, y), 9, class_colour(nb.predicted).filled()))?;
            root.draw(&Circle::new((x, y), 9, BLACK.stroke_width(1)))?;
            let (hp, dx) = if a.cos() >= 0.0 { (HPos::Left, 14) } else { (HPos::Right, -14) };
            let text = format!("{}{} {:.2}", nb.node, if nb.node == view.node { " (self)" } else { "" }, nb.mean);
            let style = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(hp, VPos::Center));
            root.draw(&Text::new(text, (x + dx, y), style))?;
        }
        root.draw(&Circle::new((cx, cy), 14, class_colour(view.predicted).filled()))?;
        root.draw(&Circle::new((cx, cy), 14, BLACK.stroke_width(2)))?;
        let style = ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
        let name = view.node.to_string();
        let half = 4 * name.len() as i32 + 3;
        root.draw(&Rectangle::new([(cx - half, cy - 34), (cx + half, cy - 17)], WHITE.filled()))?;
        root.draw(&Text::new(name, (cx, cy - 18), style))?;
        // The table: neighbours x heads.
        let (tx, ty) = (star + label_w, 80);
        let font = ("sans-serif", 11).into_font();
        for k in 0..=heads {
            let name = if k == heads { "mean".to_string() } else { format!("h{}", k + 1) };
            let style = font.color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(name, (tx + k as i32 * c + c / 2, ty - 4), style))?;
        }
        for (row, nb) in shown.iter().enumerate() {
            let y = ty + row as i32 * c;
            let label = match nb.label {
                Some(t) => format!("{} (class {t})", nb.node),
                None => nb.node.to_string(),
            };
            let style = font.color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(label, (tx - 6, y + c / 2), style))?;
            for (k, &v) in nb.weights.iter().chain(std::iter::once(&nb.mean)).enumerate() {
                let x = tx + k as i32 * c;
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], shade(v).filled()))?;
                let ink = if v > 0.35 { &WHITE } else { &BLACK };
                let style = ("sans-serif", 9).into_font().color(ink).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(format!("{:.2}", v).trim_start_matches('0').to_string(), (x + c / 2, y + c / 2), style))?;
            }
        }
        if !shown.is_empty() {
            let bottom = ty + c * shown.len() as i32;
            root.draw(&Rectangle::new([(tx, ty), (tx + c * heads as i32, bottom)], BLACK.stroke_width(1)))?;
            root.draw(&Rectangle::new([(tx + c * heads as i32, ty), (tx + c * (heads as i32 + 1), bottom)], BLACK.stroke_width(1)))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}

/// Writes `node-N-layerL.png` for every layer and `node-N.json` into `dir`.
pub fn write_node_views(view: &NodeAttention, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for l in 0..view.layers.len() {
        let path = dir.join(format!("node-{}-layer{}.png", view.node, l + 1));
        node_view_png(&path, view, l)?;
        files.push(path);
    }
    let path = dir.join(format!("node-{}.json", view.node));
    let text = serde_json::to_string(view).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    files.push(path);
    Ok(files)
}
