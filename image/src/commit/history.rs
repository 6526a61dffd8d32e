//! `history`: an image's history entries matched to its layers.

use crate::image::ResolvedImage;
use serde::Serialize;

#[derive(Serialize, Debug, Clone)]
pub struct HistoryRow {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    pub empty_layer: bool,
    /// Layer blob digest and stored size, for entries that made a layer.
    pub digest: Option<String>,
    pub diff_id: Option<String>,
    pub size: Option<u64>,
}

pub fn history(img: &ResolvedImage) -> Vec<HistoryRow> {
    let mut layers = img.layers.iter();
    let mut rows: Vec<HistoryRow> = Vec::new();
    for h in img.config.history().clone().unwrap_or_default() {
        let empty = h.empty_layer().unwrap_or(false);
        let layer = if empty { None } else { layers.next() };
        rows.push(HistoryRow {
            created: h.created().clone(),
            created_by: h.created_by().clone(),
            comment: h.comment().clone(),
            author: h.author().clone(),
            empty_layer: empty,
            digest: layer.and_then(|l| l.digest.clone()),
            diff_id: layer.map(|l| l.diff_id.clone()),
            size: layer.and_then(|l| l.size),
        });
    }
    // Layers the history does not describe still get a row each.
    for l in layers {
        rows.push(HistoryRow {
            created: None,
            created_by: None,
            comment: None,
            author: None,
            empty_layer: false,
            digest: l.digest.clone(),
            diff_id: Some(l.diff_id.clone()),
            size: l.size,
        });
    }
    rows
}
