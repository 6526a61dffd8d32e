//! Running a command with its stdio in files and a time limit. Files, not pipes: a
//! container started by the command inherits its stdio and would hold a pipe open, so
//! reading to EOF would wait for the container rather than the command.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A finished command.
#[derive(Debug, Default)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// One line for a failure message.
    pub fn brief(&self) -> String {
        let e = self.stderr.trim().lines().last().unwrap_or("").chars().take(200).collect::<String>();
        format!(
            "exit {:?}{}{}: {e}",
            self.code,
            self.signal.map(|s| format!(" signal {s}")).unwrap_or_default(),
            if self.timed_out { " (timed out)" } else { "" }
        )
    }
}

pub fn run_cmd(mut c: Command, work: &Path, n: u32) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let base = work.join(format!("out-{}-{n}", std::process::id()));
    let (o, e) = (base.with_extension("out"), base.with_extension("err"));
    let files = (std::fs::File::create(&o), std::fs::File::create(&e));
    let (Ok(fo), Ok(fe)) = files else {
        return Out { stderr: "cannot create output files".into(), ..Default::default() };
    };
    c.stdin(Stdio::null()).stdout(fo).stderr(fe);
    let mut out = Out::default();
    match c.spawn() {
        Ok(mut child) => {
            let st = wait_timeout(&mut child, Duration::from_secs(30));
            out.timed_out = st.is_none();
            let st = st.unwrap_or_else(|| {
                let _ = child.kill();
                child.wait().expect("wait")
            });
            out.code = st.code();
            out.signal = st.signal();
        }
        Err(err) => out.stderr = format!("spawn: {err}"),
    }
    out.stdout = std::fs::read_to_string(&o).unwrap_or_default();
    out.stderr += &std::fs::read_to_string(&e).unwrap_or_default();
    let _ = std::fs::remove_file(&o);
    let _ = std::fs::remove_file(&e);
    out
}

pub fn wait_timeout(child: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
