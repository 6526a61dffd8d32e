use std::path::PathBuf;
use strata_image::layout::Layout;
use strata_image::Result;

#[derive(clap::Args)]
pub struct Args {
    layout: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let tags = Layout::open(&a.layout)?.tags()?;
    if a.json {
        let v: Vec<_> = tags.iter().map(|(t, d)| serde_json::json!({"tag": t, "digest": d.digest().to_string(), "mediaType": d.media_type().to_string()})).collect();
        return super::print_json(&v);
    }
    for (t, d) in tags {
        println!("{t}\t{}", d.digest());
    }
    Ok(())
}
