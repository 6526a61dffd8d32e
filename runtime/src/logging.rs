//! `--log FILE` / `--log-format text|json` / `--debug`. Engines read the log: containerd
//! takes the last JSON line with level "error" as the runtime's error message. Lines
//! have runc's (logrus's) shape: `{"level":"error","msg":"...","time":"..."}` or
//! `time="..." level=error msg="..."`.
//!
//! The file is opened once, by [`init`], before anything is cloned; every later line
//! (the CLI's, and the container init's, which shares this memory until it execs) is
//! one `write(2)` on that O_APPEND descriptor, so concurrent writers never interleave
//! within a line and nothing reopens the path from inside a container.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    /// None: lines go to stderr.
    file: Option<File>,
    format: Format,
    debug: bool,
    /// When logging began (just after the command line was parsed): debug lines carry
    /// the time since.
    started: std::time::Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Opens the --log file (append, create, close-on-exec) and sets the format. An
/// unopenable path is an error, as in runc: an engine must not lose the runtime's errors.
pub fn init(file: Option<&Path>, format: Format, debug: bool) -> Result<()> {
    let file = match file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::os(format!("--log {}: open", path.display()), e))?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, format, debug, started: std::time::Instant::now() });
    Ok(())
}

/// True with --debug. Check it before formatting a debug line (see [`crate::debug!`]).
pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// True when lines go to a --log file rather than stderr.
pub fn to_file() -> bool {
    LOGGER.get().is_some_and(|l| l.file.is_some())
}

/// The open --log descriptor, for code that must keep it across a fork or clone.
pub fn log_fd() -> Option<BorrowedFd<'static>> {
    LOGGER.get().and_then(|l| l.file.as_ref()).map(|f| f.as_fd())
}

/// A debug line, with the time since the command began (`+1.234ms`): the step timings
/// an engine's debug mode shows.
pub fn debug(msg: &str) {
    if let Some(l) = LOGGER.get().filter(|l| l.debug) {
        let ms = l.started.elapsed().as_secs_f64() * 1000.0;
        write("debug", &format!("{msg} (+{ms:.3}ms)"));
    }
}

/// A warning: to the --log file, and to stderr when there is none.
pub fn warn(msg: &str) {
    write("warning", msg);
}

/// An error line: to the --log file, or to stderr when there is none.
pub fn error(msg: &str) {
    write("error", msg);
}

/// Formats and logs a debug line only with --debug: `strata::debug!("cgroup {}", p)`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::logging::debug_enabled() {
            $crate::logging::debug(&format!($($arg)*));
        }
    };
}

fn write(level: &str, msg: &str) {
    let Some(l) = LOGGER.get() else { return };
    let line = format_line(l.format, level, msg, std::time::SystemTime::now());
    // One write per line: O_APPEND keeps lines of concurrent writers whole.
    let _ = match &l.file {
        Some(f) => (&*f).write_all(line.as_bytes()),
        None => std::io::stderr().lock().write_all(line.as_bytes()),
    };
}

/// One log line as logrus writes it (runc's times are RFC 3339 in seconds, UTC).
fn format_line(format: Format, level: &str, msg: &str, now: std::time::SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(now).to_string();
    match format {
        Format::Json => format!("{}\n", serde_json::json!({ "level": level, "msg": msg, "time": time })),
        Format::Text => format!("time=\"{time}\" level={level} msg={}\n", go_quote(msg)),
    }
}

/// Go's %q for the common cases: backslash, quote and control characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_runcs_shape() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            format_line(Format::Json, "error", "container \"a\" does not exist", t),
            "{\"level\":\"error\",\"msg\":\"container \\\"a\\\" does not exist\",\"time\":\"2023-11-14T22:13:20Z\"}\n"
        );
        assert_eq!(
            format_line(Format::Text, "debug", "a\tb\n", t),
            "time=\"2023-11-14T22:13:20Z\" level=debug msg=\"a\\tb\\n\"\n"
        );
    }
}
