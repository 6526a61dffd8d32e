//! `ps [-f table|json] ID [-- PS-ARGS]`: runc's output. json is the list of pids;
//! table runs the host's `ps` (default `-ef`) and keeps the header and the container's
//! lines, found by the PID column.

use std::process::Command;

use crate::container::{self, Store};
use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Output format: table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// The container id.
    pub id: String,
    /// Arguments for the host's ps, after `--`; -ef when none.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    let pids = container::pids(store, &a.id)?;
    if a.format == "json" {
        // runc encodes an empty Go slice (a stopped container) as null.
        let s = if pids.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(&pids).map_err(|e| Error::os("encode JSON", std::io::Error::other(e)))?
        };
        println!("{s}");
        return Ok(());
    }
    let args = if a.ps_args.is_empty() { vec!["-ef".to_string()] } else { a.ps_args.clone() };
    let out = Command::new("ps").args(&args).output().ctx(|| "run ps")?;
    if !out.status.success() {
        return Err(Error::Refused(format!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(Error::Refused(format!("ps {}: no PID column in its output", args.join(" "))));
    };
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
