//! The engine-facing command line, runc as the oracle: what containerd's go-runc and
//! podman's conmon read back (exit codes, the --log lines, `kill`/`ps`/`exec` on
//! stopped, paused and missing containers). Each test runs the same bundle and
//! commands under runc, then strata, and expects the same observation.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_integration::*;

fn run_detached(b: &Bundle, id: &str) {
    assert_ok(&b.strata(&["run", "-d", "-b", b.dir.to_str().unwrap(), id]), "run -d");
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

/// True once `pid` is gone (or a zombie), polling up to 5 s.
fn gone_soon(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits up to 5 s for a file the container writes.
fn read_soon(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// containerd's shim sends `kill --all ID 9` when a container's init exits: runc exits
/// 0 and kills what is left in the cgroup; plain `kill` says "container not running"
/// (a phrase containerd matches); `ps` lists what is left (nothing: a header / null).
#[test]
fn kill_all_and_ps_on_a_stopped_container() {
    differential("kill-stopped", |b, rt| {
        // No pid namespace: the init's death leaves its child running in the cgroup.
        b.config["linux"]["namespaces"] = json!([{ "type": "mount" }, { "type": "ipc" }, { "type": "uts" }]);
        b.config["root"]["readonly"] = json!(false);
        b.sh("sleep 1000 & echo $! > /child; exec sleep 2000");
        let id = b.id("ks");
        run_detached(b, &id);
        let child: i32 = read_soon(&b.dir.join("rootfs/child")).trim().parse().unwrap();
        let init = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
        unsafe { libc::kill(init, libc::SIGKILL) };
        b.wait_status(&id, "stopped");
        let plain = output_of(b.command(&["kill", &id, "9"]));
        let probe = output_of(b.command(&["kill", &id, "0"]));
        assert!(stderr(&plain).contains("container not running"), "{rt}: {}", stderr(&plain));
        let leftover_before = process_alive(child);
        let all = output_of(b.command(&["kill", "--all", &id, "9"]));
        let leftover_gone = gone_soon(child);
        let ps_json = output_of(b.command(&["ps", "-f", "json", &id]));
        let ps_table = output_of(b.command(&["ps", &id]));
        let delete = output_of(b.command(&["delete", &id]));
        json!({
            "kill": code(&plain), "kill 0": code(&probe), "leftover before": leftover_before,
            "kill --all": [code(&all), stderr(&all)], "leftover gone": leftover_gone,
            "ps json": [code(&ps_json), stdout(&ps_json)],
            "ps table": [code(&ps_table), stdout(&ps_table).lines().count(), stdout(&ps_table).starts_with("UID")],
            "delete": code(&delete),
        })
    });
}

/// `kill ID 0` is a liveness probe: 0 while running; an unknown id "does not exist".
#[test]
fn kill_signal_zero_and_unknown_ids() {
    differential("kill-zero", |b, rt| {
        b.args(&["sleep", "1000"]);
        let id = b.id("kz");
        run_detached(b, &id);
        let probe = output_of(b.command(&["kill", &id, "0"]));
        let probe_all = output_of(b.command(&["kill", "--all", &id, "0"]));
        let status = b.status(&id);
        let ghost = output_of(b.command(&["kill", "no-such-container-kz", "9"]));
        assert!(stderr(&ghost).contains("does not exist"), "{rt}: {}", stderr(&ghost));
        let bad = output_of(b.command(&["kill", &id, "NOPE"]));
        (code(&probe), code(&probe_all), status, code(&ghost), code(&bad))
    });
}

/// runc exits 255 when exec itself fails and 1 for a command line it can't parse, so
/// engines can tell either from the program's own status. runc's exact messages:
/// "exec failed: container does not exist", "exec failed: cannot exec in a paused
/// container (use --ignore-paused to override)".
#[test]
fn exec_exit_codes_match_runc() {
    differential("exec-codes", |b, rt| {
        b.args(&["sleep", "1000"]);
        let id = b.id("ec");
        run_detached(b, &id);
        let pidfile_dir = b.dir.join("no/such/dir");
        let process_json = b.dir.join("process.json");
        std::fs::write(&process_json, r#"{"args":["/bin/id","-u"],"cwd":"/"}"#).unwrap();
        let whole_process = b.dir.join("whole.json");
        std::fs::write(
            &whole_process,
            r#"{"args":["sh","-c","echo $FOO; pwd; id -u"],"cwd":"/","env":["FOO=file","PATH=/bin"]}"#,
        )
        .unwrap();
        let cases: Vec<Vec<String>> = vec![
            vec!["no-such-container-ec".into(), "true".into()],
            vec![id.clone()],
            vec!["--bogus".into(), id.clone(), "true".into()],
            vec!["--pid-file".into(), pidfile_dir.join("p").display().to_string(), id.clone(), "true".into()],
            vec!["--cwd".into(), "rel".into(), id.clone(), "true".into()],
            vec!["--cwd".into(), "/no/such/dir".into(), id.clone(), "true".into()],
            vec![id.clone(), "/no/such/program".into()],
            vec!["--user".into(), "root".into(), id.clone(), "true".into()],
            vec!["--cgroup".into(), "whaaat:/".into(), id.clone(), "true".into()],
            vec!["-p".into(), process_json.display().to_string(), id.clone()],
            // With -p the file is the whole process: runc ignores the other process flags.
            vec![
                "-p".into(),
                whole_process.display().to_string(),
                "-e".into(),
                "FOO=flag".into(),
                "--cwd".into(),
                "/tmp".into(),
                "-u".into(),
                "7".into(),
                id.clone(),
            ],
            vec![id.clone(), "sh".into(), "-c".into(), "exit 3".into()],
        ];
        let mut seen = Vec::new();
        for args in &cases {
            let mut full = vec!["exec"];
            full.extend(args.iter().map(String::as_str));
            let out = output_of(b.command(&full));
            if rt == "strata" && args[0] == "--cwd" && code(&out) == Some(255) {
                assert!(stderr(&out).contains("--cwd") && !stderr(&out).contains("config.json"), "{}", stderr(&out));
            }
            if rt == "strata" && args.get(1).map(String::as_str) == Some("/no/such/program") {
                assert!(stderr(&out).contains("command") && !stderr(&out).contains("config.json"), "{}", stderr(&out));
            }
            // runc prints its usage text on stdout, clap on stderr: only a program's output counts.
            let output = if out.status.success() || code(&out) == Some(3) { stdout(&out) } else { String::new() };
            seen.push((args.join(" ").replace(&id, "ID").replace(b.dir.to_str().unwrap(), "DIR"), code(&out), output));
        }
        assert_ok(&output_of(b.command(&["pause", &id])), "pause");
        let paused = output_of(b.command(&["exec", &id, "true"]));
        assert_ok(&output_of(b.command(&["resume", &id])), "resume");
        seen.push(("(paused) ID true".into(), code(&paused), stdout(&paused)));
        // Nothing was left running by the failed execs: only the init is in the cgroup.
        let ps = output_of(b.command(&["ps", "-f", "json", &id]));
        let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
        (seen, pids.len())
    });
}

/// A detached exec whose --pid-file can't be written is killed, not left running.
#[test]
fn exec_with_an_unwritable_pid_file_leaves_nothing_running() {
    differential("exec-pidfile", |b, _rt| {
        b.args(&["sleep", "1000"]);
        let id = b.id("ep");
        run_detached(b, &id);
        let bad = b.dir.join("no/such/dir/p");
        let out = output_of(b.command(&["exec", "-d", "--pid-file", bad.to_str().unwrap(), &id, "sleep", "999"]));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut count = 0;
        while Instant::now() < deadline {
            let ps = output_of(b.command(&["ps", "-f", "json", &id]));
            count = serde_json::from_slice::<Vec<i32>>(&ps.stdout).unwrap().len();
            if count == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (code(&out), count)
    });
}

/// Log lines as containerd reads them: with --log and --log-format json every error,
/// usage errors included, is one `{"level":"error","msg":...,"time":...}` line; text is
/// logrus's `time="..." level=error msg="..."`; an unopenable --log is an error.
#[test]
fn errors_and_usage_errors_reach_the_log_in_runcs_shape() {
    differential("log-shape", |b, rt| {
        let json_log = b.dir.join("log.json");
        let text_log = b.dir.join("log.txt");
        let jl = json_log.to_str().unwrap();
        let usage = output_of(b.command(&["--log", jl, "--log-format", "json", "exec", "--bogus", "x", "true"]));
        let missing = output_of(b.command(&["--log", jl, "--log-format", "json", "kill", "no-such-ctr-log", "9"]));
        let unknown = output_of(b.command(&["--log", jl, "--log-format", "json", "bogus-command"]));
        let lines: Vec<Value> = std::fs::read_to_string(&json_log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rt}: not JSON ({e}): {l}")))
            .collect();
        let shapes: Vec<(Vec<String>, Value)> =
            lines.iter().map(|v| (v.as_object().unwrap().keys().cloned().collect(), v["level"].clone())).collect();
        assert!(lines[0]["msg"].as_str().unwrap().contains("bogus"), "{rt}: {lines:?}");
        assert!(lines[1]["msg"].as_str().unwrap().contains("does not exist"), "{rt}: {lines:?}");
        let text = output_of(b.command(&["--log", text_log.to_str().unwrap(), "kill", "no-such-ctr-log", "9"]));
        let line = std::fs::read_to_string(&text_log).unwrap();
        let text_shape =
            line.starts_with("time=\"") && line.contains("\" level=error msg=\"") && line.lines().count() == 1;
        let unopenable = output_of(b.command(&["--log", b.dir.join("no/such/dir/log").to_str().unwrap(), "list"]));
        json!({
            "codes": [code(&usage), code(&missing), code(&unknown), code(&text), code(&unopenable)],
            "json lines": shapes, "text shape": text_shape,
        })
    });
}

/// Deletes (with --force) the listed containers of a bundle's runtime, even on panic.
struct Cleanup<'a>(&'a Bundle, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = output_of(self.0.command(&["delete", "--force", id]));
        }
    }
}

/// The `list` table split into (cell, column offset); pids and times (which differ from
/// run to run) become placeholders, and the OWNER offset (after the time) is left out.
fn table_shape(text: &str) -> Vec<Vec<(String, usize)>> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut cells = Vec::new();
        let mut start = None;
        for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
            match (c == ' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    cells.push((line[s..i].to_string(), s));
                    start = None;
                }
                _ => {}
            }
        }
        if n > 0 && cells.len() == 6 {
            cells[1].0 = "PID".into();
            cells[4].0 = "CREATED".into();
        }
        if let Some(owner) = cells.get_mut(5) {
            owner.1 = 0;
        }
        rows.push(cells);
    }
    rows
}

/// `list` as scripts parse it: the table aligned like runc's (Go tabwriter: 64-char ids
/// widen the first column), and `-f json` one compact line with runc's fields in
/// runc's order; `null` and a bare header when there is nothing to list.
#[test]
fn list_output_has_runcs_byte_shape() {
    let mut b = Bundle::new("list");
    b.args(&["sleep", "1000"]);
    b.write_config();
    let long = format!("{:x<64}", format!("it-{}-list-", std::process::id()));
    let short = format!("it-{}-ls", std::process::id());
    let mut seen = Vec::new();
    for (rt, path) in [("runc", engines::runc().path), ("strata", strata_bin())] {
        b.runtime = path;
        b.root = b.dir.join(format!("state-{rt}"));
        let _cleanup = Cleanup(&b, vec![long.clone(), short.clone()]);
        let empty_table = stdout(&output_of(b.command(&["list"])));
        let empty_json = stdout(&output_of(b.command(&["list", "-f", "json"])));
        for id in [&long, &short] {
            assert_ok(&output_of(b.command(&["run", "-d", "-b", b.dir.to_str().unwrap(), id])), "run -d");
        }
        let table = stdout(&output_of(b.command(&["list"])));
        let json_text = stdout(&output_of(b.command(&["list", "-f", "json"])));
        let quiet = stdout(&output_of(b.command(&["list", "-q"])));
        let entries: Vec<Value> = serde_json::from_str(&json_text).unwrap();
        let keys: Vec<Vec<String>> = json_text
            .split("},{")
            .map(|e| e.split("\":").filter_map(|k| k.rsplit('"').next().map(str::to_string)).collect())
            .collect();
        let fields: Vec<Value> = entries
            .iter()
            .map(|e| json!([e["id"], e["status"], e["bundle"], e["rootfs"], e["owner"], e["pid"].as_i64() > Some(0)]))
            .collect();
        seen.push(json!({
            "empty": [empty_table, empty_json],
            "table": table_shape(&table),
            "json lines": json_text.lines().count(), "json keys": keys, "json fields": fields,
            "quiet": quiet,
        }));
    }
    assert_eq!(seen[1], seen[0], "strata (left) differs from runc (right)");
}

/// `strata spec` writes the installed runc's default config.json byte for byte (field
/// order, tab indentation, no trailing newline), so scripts that patch it work
/// unchanged. Only ociVersion differs: runc stamps its vendored spec's "1.0.2-dev";
/// strata writes "1.0.2" (the fields are all 1.0; crun 1.8 refuses 1.2.x).
#[test]
fn spec_writes_runcs_default_config() {
    for flags in [&[][..], &["--rootless"][..]] {
        let mut texts = Vec::new();
        for rt in [engines::runc().path, strata_bin()] {
            let dir = std::env::temp_dir().join(format!("strata-it-spec-cli-{}-{}", std::process::id(), texts.len()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let out = output_of({
                let mut c = std::process::Command::new(&rt);
                c.arg("spec").args(flags).arg("-b").arg(&dir);
                c
            });
            let again = output_of({
                let mut c = std::process::Command::new(&rt);
                c.arg("spec").arg("-b").arg(&dir);
                c
            });
            let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
            std::fs::remove_dir_all(&dir).unwrap();
            texts.push((
                code(&out),
                code(&again),
                text.replacen("\"ociVersion\": \"1.0.2-dev\"", "\"ociVersion\": \"1.0.2\"", 1),
            ));
        }
        assert!(texts[0].2.starts_with("{\n\t\"ociVersion\": \"1.0.2\""), "{}", texts[0].2);
        assert_eq!(texts[1], texts[0], "spec {flags:?}: strata (left) differs from runc (right)");
    }
}

/// Help and version as people and scripts read them: bare `strata` prints the help (exit
/// 0, as runc), every command has --help with a description for every argument and
/// flag, global flags apart from a command's own, no doubled defaults; `--version`
/// starts like runc's (`NAME version X.Y.Z`, then a `spec: ` line).
#[test]
fn help_and_version() {
    let bin = strata_bin();
    let run = |args: &[&str]| {
        output_of({
            let mut c = std::process::Command::new(&bin);
            c.args(args);
            c
        })
    };
    let bare = run(&[]);
    assert_eq!(code(&bare), Some(0));
    assert!(stdout(&bare).contains("Usage: strata") && stdout(&bare).contains("Commands:"), "{}", stdout(&bare));
    let commands = [
        "create", "exec", "start", "run", "state", "list", "kill", "delete", "pause", "resume", "ps", "events",
        "update", "spec", "features",
    ];
    for cmd in commands {
        assert!(stdout(&bare).contains(&format!("\n  {cmd} ")), "{cmd} not in the help");
        for flag in ["--help", "-h"] {
            let out = run(&[cmd, flag]);
            assert_eq!(code(&out), Some(0), "{cmd} {flag}");
            let text = stdout(&out);
            assert!(!text.contains("(default") || !text.contains("[default"), "{cmd}: doubled default: {text}");
            // Every argument and flag line carries a description (clap puts it on the same
            // line, or on the next, indented further, when lines are long).
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let item = line.trim_start();
                if !(item.starts_with('-') || item.starts_with('<') || item.starts_with('[')) || !line.starts_with("  ")
                {
                    continue;
                }
                let same_line = item.split("  ").filter(|s| !s.trim().is_empty()).count() > 1;
                let next_line = lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
                assert!(same_line || next_line, "{cmd}: no description for {item:?}:\n{text}");
            }
            assert!(text.contains("Global options:"), "{cmd}: {text}");
            let own = text.split("Global options:").next().unwrap();
            assert!(
                !own.contains("--root <") && !own.contains("--log <"),
                "{cmd}: global flags mixed with its own: {text}"
            );
        }
    }
    let update = stdout(&run(&["update", "--help"]));
    assert!(update.split("Global options:").next().unwrap().contains("--memory"), "{update}");

    let ours = stdout(&run(&["--version"]));
    let theirs = stdout(&std::process::Command::new(engines::runc().path).arg("--version").output().unwrap());
    let first = |s: &str| s.lines().next().unwrap_or_default().split(' ').skip(1).take(1).collect::<Vec<_>>().join(" ");
    assert_eq!(first(&ours), first(&theirs), "{ours} / {theirs}");
    assert!(ours.starts_with(&format!("strata version {}\n", env!("CARGO_PKG_VERSION"))), "{ours}");
    for key in ["commit: ", "spec: "] {
        assert!(
            ours.lines().any(|l| l.starts_with(key)) && theirs.lines().any(|l| l.starts_with(key)),
            "{key}: {ours}"
        );
    }
    assert_eq!(stdout(&run(&["-v"])), ours);
}

/// `--debug run` with a terminal: the container's output reaches the caller's terminal
/// with nothing stray in it (no NUL byte), and the debug lines reach --log in logrus's
/// JSON shape, as runc's do.
#[test]
fn debug_run_with_a_terminal() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    differential("debug-tty", |b, rt| {
        b.config["process"]["terminal"] = json!(true);
        b.sh("echo hi; exit 3");
        b.write_config();
        let id = b.id("dt");
        let log = b.dir.join("debug.log");
        let (mut master, mut slave) = (0, 0);
        assert_eq!(
            unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) },
            0
        );
        let slave_file = unsafe { std::fs::File::from_raw_fd(slave) };
        let mut m = unsafe { std::fs::File::from_raw_fd(master) };
        let mut cmd = b.command(&[
            "--debug",
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
            "-b",
            b.dir.to_str().unwrap(),
            &id,
        ]);
        cmd.stdin(slave_file.try_clone().unwrap()).stdout(slave_file.try_clone().unwrap()).stderr(slave_file);
        let status = cmd.spawn().unwrap().wait().unwrap();
        unsafe { libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK) };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let lines: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rt}: not JSON ({e}): {l:?}")))
            .collect();
        let shapes_ok = lines.iter().all(|l| {
            l.as_object().unwrap().keys().take(3).eq(["level", "msg", "time"].iter()) || l.get("func").is_some()
        });
        let debug_lines = lines.iter().filter(|l| l["level"] == "debug").count();
        assert!(!out.contains(&0), "{rt}: a NUL byte reached the terminal: {text:?}");
        // runc's console copy sometimes loses the last output of a process that exits at
        // once: the output itself is only required of strata.
        if rt == "strata" {
            assert!(text.contains("hi\r\n"), "{text:?}");
        }
        (status.code(), shapes_ok, debug_lines > 0)
    });
}

/// With --debug, each step strata takes is in the log: what create was asked, the
/// namespaces, mounts and cgroup it made, start, exec, kill and delete.
#[test]
fn debug_lines_name_each_step() {
    let mut b = Bundle::new("debug-steps");
    b.args(&["sleep", "1000"]);
    let id = b.id("ds");
    let log = b.dir.join("debug.log");
    let l = log.to_str().unwrap().to_string();
    let dir = b.dir.to_str().unwrap().to_string();
    b.write_config();
    for args in [
        vec!["create", "-b", &dir, &id],
        vec!["start", &id],
        vec!["exec", &id, "true"],
        vec!["kill", &id, "KILL"],
        vec!["delete", "--force", &id],
    ] {
        let mut full = vec!["--debug", "--log", &l];
        full.extend(args);
        assert_ok(&output_of(b.command(&full)), &full.join(" "));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for needle in ["create ", "namespaces [", " mounts", "cgroup [", "start ", "exec ", "kill ", "delete "] {
        assert!(text.contains(needle), "no {needle:?} debug line: {text}");
    }
    assert!(text.lines().all(|l| l.starts_with("time=\"") && l.contains(" level=")), "{text}");
    // Each step carries its timing: the time since the command began.
    let timed = |l: &&str| l.contains("level=debug") && l.contains("ms)\"");
    assert!(text.lines().filter(|l| l.contains("level=debug")).all(|l| timed(&l)), "{text}");
    // Without --debug, no debug line.
    let quiet = b.dir.join("quiet.log");
    let out = output_of(b.command(&["--log", quiet.to_str().unwrap(), "list"]));
    assert_ok(&out, "list");
    assert_eq!(std::fs::read_to_string(&quiet).unwrap_or_default(), "");
}

/// The --log file is the runtime's: its descriptor never reaches the container's
/// process (close-on-exec), with or without --debug.
#[test]
fn the_log_descriptor_does_not_reach_the_container() {
    differential("log-fd", |b, _rt| {
        b.sh("ls -l /proc/self/fd/ | grep -c log.txt; true");
        b.write_config();
        let log = b.dir.join("log.txt");
        let mut seen = Vec::new();
        for debug in [false, true] {
            let id = b.id("lf");
            let mut args = vec!["--log", log.to_str().unwrap(), "run", "-b", b.dir.to_str().unwrap(), &id];
            if debug {
                args.insert(0, "--debug");
            }
            let out = output_of(b.command(&args));
            seen.push((code(&out), stdout(&out)));
        }
        seen
    });
}
