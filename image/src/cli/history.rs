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
        return crate::strata_image_cli::print_json(&rows);
    }
    println!("{:<20} {:<24} {:>12}  CREATED BY", "LAYER", "CREATED", "SIZE");
    for r in rows.iter().rev() {
        let layer = match (&r.digest, r.empty_layer) {
            (_, true) => "<empty>".to_string(),
            (Some(d), _) => d.chars().take(19).collect(),
            (None, _) => r.diff_id.as_deref().unwrap_or("-").chars().take(19).collect(),
        };
        let size = r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<20} {:<24} {:>12}  {}", layer, r.created.as_deref().unwrap_or("-"), size, r.created_by.as_deref().unwrap_or(""));
    }
    Ok(())
}
