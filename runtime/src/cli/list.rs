use std::io::Write;

use crate::container::{self, Store};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(short = 'f', long, value_parser = ["table", "json"], default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    let ids = store.ids()?;
    if a.quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    let (rows, warnings) = container::list(store)?;
    for w in warnings {
        eprintln!("strata: {w}");
    }
    if a.format == "json" {
        return super::print_json(&rows);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:<12} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let _ = writeln!(
            out,
            "{:<12} {:<8} {:<10} {:<40} {:<32} {}",
            s("id"),
            r["pid"].as_i64().unwrap_or(0),
            s("status"),
            s("bundle"),
            s("created"),
            s("owner")
        );
    }
    Ok(())
}
