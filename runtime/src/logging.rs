//! `--log FILE` / `--log-format text|json` / `--debug`. Engines read the log: containerd
//! takes the last JSON line with level "error" as the runtime's error message. Writes
//! are appended whole-line so concurrent strata processes can share one file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config { file, format, debug });
}

pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        write("debug", msg);
    }
}

/// A warning: to the --log file, and to stderr when there is none.
pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn error(msg: &str) {
    write("error", msg);
}

fn write(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now());
    let line = match cfg.format {
        Format::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time.to_string() });
            format!("{v}\n")
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    };
    match &cfg.file {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = f.write_all(line.as_bytes());
            }
        }
        // Without --log, debug lines and warnings go to stderr as plain lines (errors
        // are printed by the CLI itself).
        None if level != "error" => {
            let _ = writeln!(std::io::stderr(), "strata: {level}: {msg}");
        }
        None => {}
    }
}
