//! `list [-f table|json] [-q]`: runc's output byte for byte, since scripts parse it: a
//! table laid out as Go's tabwriter does (min width 12, padding 3), or one compact JSON
//! line with runc's fields in runc's order (`null` when there are no containers).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::container::{self, Store};
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Output format: table or json.
    #[arg(short = 'f', long, value_parser = ["table", "json"], default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// One container as runc's `list -f json` prints it (field order included).
#[derive(Serialize)]
struct Entry {
    #[serde(rename = "ociVersion")]
    oci_version: String,
    id: String,
    pid: i32,
    status: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<HashMap<String, String>>,
    owner: String,
}

/// An entry from a container's OCI state (or the placeholder of one that is being
/// created or whose state is unreadable).
fn entry(v: &serde_json::Value) -> Entry {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Entry {
        oci_version: text("ociVersion"),
        id: text("id"),
        pid: v["pid"].as_i64().unwrap_or(0) as i32,
        status: text("status"),
        bundle: PathBuf::from(text("bundle")),
        rootfs: PathBuf::from(text("rootfs")),
        created: go_time(&text("created")),
        annotations: serde_json::from_value(v["annotations"].clone()).ok(),
        owner: text("owner"),
    }
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    let ids = store.ids()?;
    if a.quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    let (states, warnings) = container::list(store)?;
    for w in warnings {
        eprintln!("strata: {w}");
    }
    let rows: Vec<Entry> = states.iter().map(entry).collect();
    if a.format == "json" {
        let s = if rows.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(&rows).map_err(|e| Error::os("encode JSON", std::io::Error::other(e)))?
        };
        println!("{s}");
        return Ok(());
    }
    let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for r in rows {
        table.push([r.id, r.pid.to_string(), r.status, r.bundle.display().to_string(), r.created, r.owner]);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(tabwriter(&table).as_bytes());
    Ok(())
}

/// Go's tabwriter with runc's settings (minwidth 12, padding 3, spaces): every column
/// but the last is as wide as its widest cell plus 3, and at least 12.
fn tabwriter<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    let mut s = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                s.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                s.push_str(cell);
            }
        }
        s.push('\n');
    }
    s
}

/// RFC 3339 as Go's RFC3339Nano writes it: trailing zeros of the fraction dropped.
fn go_time(t: &str) -> String {
    match t.split_once('.') {
        Some((secs, rest)) if rest.ends_with('Z') => {
            let frac = rest.trim_end_matches('Z').trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_laid_out_like_gos_tabwriter() {
        let id = "a".repeat(64);
        let rows = [["ID", "PID", "STATUS"].map(String::from), [id.clone(), "10465".into(), "running".into()]];
        let want = format!("ID{}PID         STATUS\n{id}   10465       running\n", " ".repeat(65));
        assert_eq!(tabwriter(&rows), want);
    }

    #[test]
    fn times_drop_trailing_zeros_like_go() {
        assert_eq!(go_time("2026-11-30T10:27:30.135709140Z"), "2026-11-30T10:27:30.13570914Z");
        assert_eq!(go_time("2026-11-30T10:27:30.000000000Z"), "2026-11-30T10:27:30Z");
        assert_eq!(go_time("2026-11-30T10:27:30.5Z"), "2026-11-30T10:27:30.5Z");
    }
}
