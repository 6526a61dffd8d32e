//! One filesystem-changing step: a working container, i.e. an overlay of the
//! image's layers (from the store) plus an empty read-write layer, mounted at
//! `<dir>/rootfs`. RUN executes a process in it through strata's library;
//! COPY/ADD write into it. The read-write layer then becomes the step's layer.
//! Dropping a session deletes its container, unmounts and removes its dir,
//! whatever failed before.

use crate::bundle;
use crate::error::{Error, Result};
use crate::overlay;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use strata::container::{self as rt, CreateOptions};

pub struct Session {
    pub dir: PathBuf,
    container: Option<(PathBuf, String)>,
}

impl Session {
    /// Mounts `lowers` (topmost first) plus a fresh upper at `dir/rootfs`.
    pub fn mount(dir: PathBuf, lowers: &[PathBuf]) -> Result<Session> {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let s = Session { dir, container: None };
        for d in [s.rootfs(), s.upper(), bundle::work_dir(&s.dir)] {
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        crate::store::set_mode(&s.upper(), 0o755)?;
        overlay::mount_overlay(lowers, &s.upper(), &bundle::work_dir(&s.dir), &s.rootfs())?;
        Ok(s)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn upper(&self) -> PathBuf {
        bundle::upper_dir(&self.dir)
    }

    /// Unmounts the union view; the upper dir stays for the layer to be read.
    pub fn unmount(&self) -> Result<()> {
        overlay::unmount(&self.rootfs())
    }

    /// Runs the bundle (config.json written by the caller) as container `id`
    /// under the state root `state`, stdio passed through; returns the exit
    /// code (128+N when killed by signal N). SIGINT/SIGTERM/SIGHUP meanwhile
    /// kill the container and fail the step.
    pub fn run(&mut self, state: &Path, id: &str, spec: &serde_json::Value) -> Result<i32> {
        let text = serde_json::to_vec_pretty(spec).map_err(|e| Error::json("config.json", e))?;
        crate::layout::write_atomic(&self.dir.join("config.json"), &text)?;
        let store = rt::Store::new(state);
        let rterr = |e: strata::Error| Error::Invalid(format!("container {id}: {e}"));
        // A build step reads no input, as under docker and buildah: the container's
        // stdin (inherited from this process) is /dev/null; ours comes back after.
        let saved_stdin = nix::unistd::dup(std::io::stdin()).ok();
        let null = fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
        nix::unistd::dup2_stdin(&null).map_err(|e| Error::sys("dup2", "/dev/null", e))?;
        drop(null);
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGCHLD] {
            set.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(|e| Error::sys("sigprocmask", "/", e))?;
        // The init forks into its pid namespace: it is our grandchild, reaped by us as a subreaper.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        let result = (|| {
            let opts = CreateOptions { bundle: self.dir.clone(), ..Default::default() };
            let st = rt::create(&store, id, &opts).map_err(rterr)?;
            self.container = Some((state.to_path_buf(), id.to_string()));
            rt::start(&store, id).map_err(rterr)?;
            wait(st.pid, &set)
        })();
        if let Some(fd) = saved_stdin {
            let _ = nix::unistd::dup2_stdin(&fd);
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        if let Some((root, id)) = self.container.take() {
            rt::delete(&rt::Store::new(root), &id, true).map_err(rterr)?;
        }
        result
    }
}

/// Waits for `init`, killing it on a terminating signal.
fn wait(init: i32, set: &SigSet) -> Result<i32> {
    let pid = Pid::from_raw(init);
    let mut interrupted = None;
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => {
                    return interrupted
                        .map_or(Ok(code), |s: Signal| Err(Error::Invalid(format!("interrupted by {s}"))));
                }
                Ok(WaitStatus::Signaled(p, s, _)) if p == pid => {
                    return interrupted
                        .map_or(Ok(128 + s as i32), |s: Signal| Err(Error::Invalid(format!("interrupted by {s}"))));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(s) => {
                interrupted = Some(s);
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((root, id)) = self.container.take() {
            let _ = rt::delete(&rt::Store::new(root), &id, true);
        }
        let _ = overlay::unmount(&self.rootfs());
        if !overlay::is_mounted(&self.rootfs()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
