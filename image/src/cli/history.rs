use strata_image::history::HistoryRow;
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;
use strata_image::{history, image, Result};

#[derive(clap::Args)]
pub struct Args {
    image: String,
    #[arg(long)]
    platform: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let platform = a.platform.as_deref().map(PlatformSpec::parse).transpose()?.unwrap_or_else(PlatformSpec::host);
    let img = image::open(&Reference::parse(&a.image)?, &platform)?;
    let rows = history::history(&img);
    if a.json {
        return super::print_json(&rows);
    }
    let text = |s: &Option<String>| s.as_deref().unwrap_or("").replace(['\n', '\t'], " ");
    let width = |f: &dyn Fn(&HistoryRow) -> String, title: &str| {
        rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0).max(title.len())
    };
    let (aw, cw) = (width(&|r| text(&r.author), "AUTHOR"), width(&|r| text(&r.comment), "COMMENT"));
    println!("{:<20} {:<24} {:>10}  {:<aw$}  {:<cw$}  CREATED BY", "LAYER", "CREATED", "SIZE", "AUTHOR", "COMMENT");
    for r in rows.iter().rev() {
        let layer = match (&r.digest, r.empty_layer) {
            (_, true) => "<empty>".to_string(),
            (Some(d), _) => d.chars().take(19).collect(),
            (None, _) => r.diff_id.as_deref().unwrap_or("-").chars().take(19).collect(),
        };
        let size = r.size.map(human).unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<24} {:>10}  {:<aw$}  {:<cw$}  {}",
            layer,
            r.created.as_deref().unwrap_or("-"),
            size,
            text(&r.author),
            text(&r.comment),
            text(&r.created_by)
        );
    }
    Ok(())
}

/// Sizes as people read them: 1023 B, 1.5 KiB, 20.0 MiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
