//! An ordinary account made for one test, for the rootless tests: a user with a home,
//! a subordinate uid/gid range (what `newuidmap`, `newgidmap` and rootless podman
//! need) and an `XDG_RUNTIME_DIR`, as a login on a systemd machine would have.
//! Commands run as that user with no capabilities and a clean environment. Drop kills
//! what the user still runs and removes the account, its ranges and its directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Size of the subordinate id range each test user gets (podman's default).
pub const SUBID_COUNT: u32 = 65536;

pub struct UnprivilegedUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR`: /run/user/UID, 0700, owned by the user.
    pub runtime_dir: PathBuf,
    /// First id of the user's subuid and subgid ranges (both [`SUBID_COUNT`] long).
    pub subid_start: u32,
}

impl UnprivilegedUser {
    /// Makes `stu<pid>x<n>` (short: useradd limits names to 32 characters). Panics with
    /// the tool's output when the host cannot make users (needs root and shadow's tools).
    pub fn new() -> UnprivilegedUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("stu{}x{n}", std::process::id());
        let _ = Command::new("userdel").args(["-r", &name]).output();
        run_ok(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", "--user-group", &name]));
        let uid = id_of(&name, "-u");
        let gid = id_of(&name, "-g");
        // A range of its own, far above the ids useradd hands out and unique per uid.
        let subid_start = 1_000_000 + (uid % 4096) * SUBID_COUNT;
        let range = format!("{subid_start}-{}", subid_start + SUBID_COUNT - 1);
        let user = UnprivilegedUser {
            home: PathBuf::from(format!("/home/{name}")),
            runtime_dir: PathBuf::from(format!("/run/user/{uid}")),
            name,
            uid,
            gid,
            subid_start,
        };
        run_ok(Command::new("usermod").args(["--add-subuids", &range, "--add-subgids", &range, &user.name]));
        std::fs::create_dir_all(&user.runtime_dir).unwrap();
        user.chown(&user.runtime_dir);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&user.runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        user
    }

    /// `program` as this user: real and effective ids and supplementary groups changed
    /// by setpriv (so no capability survives), a login's environment, cwd at home.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--init-groups", "--"])
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .current_dir(&self.home);
        cmd
    }

    /// Runs `program args` as this user and returns its output.
    pub fn output(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.command(program).args(args).output().expect("run setpriv")
    }

    /// Gives `path` and everything under it to this user (a bundle the user made).
    pub fn chown(&self, path: &Path) {
        run_ok(Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(path));
    }

    /// Pids of the live (not zombie) processes whose real uid is this user's.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
            let field = |name: &str| {
                status.lines().find_map(|l| l.strip_prefix(name)).and_then(|l| l.split_whitespace().next())
            };
            // A zombie is dead already: it only waits for its parent (often the test) to reap it.
            if field("Uid:") == Some(&self.uid.to_string()) && field("State:") != Some("Z") {
                pids.push(pid);
            }
        }
        pids
    }

    /// The host-side checks after a test: no process of the user's is left, and no
    /// mount under its home or runtime dir. (State dirs are the caller's to check:
    /// they depend on the runtime.)
    pub fn assert_nothing_left(&self) {
        let procs = self.processes();
        assert!(procs.is_empty(), "processes of {} left behind: {procs:?}", self.name);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for dir in [&self.home, &self.runtime_dir] {
            let d = dir.to_string_lossy();
            assert!(!mounts.lines().any(|l| l.contains(&*d)), "a mount under {d} was left behind");
        }
    }
}

impl Default for UnprivilegedUser {
    fn default() -> Self {
        Self::new()
    }
}

impl UnprivilegedUser {
    /// SIGKILLs this user's processes until none is left (bounded: about a second).
    /// Only this user's: the account was made by this test.
    fn kill_all(&self) {
        for _ in 0..50 {
            let procs = self.processes();
            if procs.is_empty() {
                return;
            }
            for pid in procs {
                // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for UnprivilegedUser {
    fn drop(&mut self) {
        self.kill_all();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for dir in [&self.home, &self.runtime_dir] {
            let d = dir.to_string_lossy().into_owned();
            let mut under: Vec<&str> =
                mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&*d)).collect();
            under.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in under {
                let _ = Command::new("umount").args(["-l", m]).output();
            }
        }
        let range = format!("{}-{}", self.subid_start, self.subid_start + SUBID_COUNT - 1);
        let _ = Command::new("usermod").args(["--del-subuids", &range, "--del-subgids", &range, &self.name]).output();
        // userdel refuses while the user runs anything, and a process may become the
        // user's after the kill above (a setpriv still switching ids): kill, retry.
        for _ in 0..50 {
            let out = Command::new("userdel").args(["-r", &self.name]).output();
            if out.is_ok_and(|o| o.status.success()) || id_of_opt(&self.name).is_none() {
                break;
            }
            self.kill_all();
        }
        let _ = std::fs::remove_dir_all(&self.home);
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// The uid of `name`, None when no such account exists.
fn id_of_opt(name: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn id_of(name: &str, flag: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("id {flag} {name}: {out:?}"))
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
}
