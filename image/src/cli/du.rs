use std::path::PathBuf;
use strata_image::store::Store;
use strata_image::{usage, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Bundles to measure: size (read-write layer) and virtual size (the whole view).
    bundles: Vec<PathBuf>,
    /// Measure this layer store instead: each layer, its users, what gc would free
    /// (bare: the default store, as unpack's).
    #[arg(long, num_args = 0..=1, default_missing_value = strata_image::store::default_store(), value_name = "STORE")]
    store: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(s) = &a.store {
        let u = usage::store_usage(&Store::open_existing(s)?)?;
        if a.json {
            return super::print_json(&u);
        }
        println!("{:<20} {:>12} {:>8}", "LAYER", "SIZE", "BUNDLES");
        for l in &u.layers {
            println!("{:<20} {:>12} {:>8}", &l.diff_id[..l.diff_id.len().min(19)], l.size, l.bundles);
        }
        println!("total {} bytes, reclaimable {} bytes", u.total, u.reclaimable);
        return Ok(());
    }
    let rows = a.bundles.iter().map(|b| usage::bundle_usage(b)).collect::<Result<Vec<_>>>()?;
    if a.json {
        return super::print_json(&rows);
    }
    println!("{:<40} {:<8} {:>12} {:>14}", "BUNDLE", "MODE", "SIZE", "VIRTUAL SIZE");
    for r in rows {
        println!("{:<40} {:<8} {:>12} {:>14}", r.bundle.display(), r.mode, r.size, r.virtual_size);
    }
    Ok(())
}
