use std::path::PathBuf;
use strata_image::layout::Layout;
use strata_image::store::Store;
use strata_image::{gc, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Layer store: remove the layers no registered bundle uses (bare: the default store, as unpack's).
    #[arg(long, num_args = 0..=1, default_missing_value = strata_image::store::default_store(), value_name = "STORE")]
    store: Option<PathBuf>,
    /// Image layout: remove the blobs no tag reaches.
    #[arg(long)]
    layout: Option<PathBuf>,
    /// Report what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.store.is_none() && a.layout.is_none() {
        return Err(Error::Invalid("gc: name a --store, a --layout, or both".into()));
    }
    let mut out = serde_json::Map::new();
    let (remove, keep) = if a.dry_run { ("would remove", "would keep") } else { ("removed", "kept") };
    if let Some(s) = &a.store {
        let r = gc::gc_store(&Store::open_existing(s)?, a.dry_run)?;
        if !a.json {
            println!(
                "store {}: {remove} {} layers ({} bytes), {keep} {}",
                s.display(),
                r.removed.len(),
                r.freed,
                r.kept
            );
            print_staging(remove, &r);
        }
        out.insert("store".into(), serde_json::to_value(r).map_err(|e| Error::json("output", e))?);
    }
    if let Some(l) = &a.layout {
        let r = gc::gc_layout(&Layout::open(l)?, a.dry_run)?;
        if !a.json {
            println!(
                "layout {}: {remove} {} blobs ({} bytes), {keep} {}",
                l.display(),
                r.removed.len(),
                r.freed,
                r.kept
            );
            print_staging(remove, &r);
        }
        out.insert("layout".into(), serde_json::to_value(r).map_err(|e| Error::json("output", e))?);
    }
    if a.json {
        super::print_json(&out)?;
    }
    Ok(())
}

fn print_staging(verb: &str, r: &gc::GcReport) {
    for p in &r.staging {
        println!("{verb} {} (left by an interrupted strata-image)", p.display());
    }
}
