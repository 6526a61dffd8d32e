//! `events [--stats] [--interval D] ID`: JSON lines as runc prints them.

use std::io::Write;
use std::time::Duration;

use crate::container::events::{self, Event};
use crate::container::Store;
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to report stats (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// The container id.
    pub id: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    if a.interval.is_zero() {
        return Err(Error::Refused("--interval must be more than 0".into()));
    }
    let mut emit = |e: &Event| -> Result<()> {
        let s = serde_json::to_string(e).map_err(|e| Error::os("encode JSON", std::io::Error::other(e)))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{s}").and_then(|_| out.flush()).map_err(|e| Error::os("write events", e))
    };
    if a.stats {
        let data = events::stats_once(store, &a.id)?;
        return emit(&Event { kind: "stats", id: &a.id, data: Some(data) });
    }
    events::watch(store, &a.id, a.interval, &mut emit)
}
