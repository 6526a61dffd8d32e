//! config.json hooks (config.md "POSIX-platform Hooks"): each hook gets the container
//! state on stdin, exactly its own `env`, its `args` (args[0] is argv[0]), and is
//! killed after `timeout` seconds. Who runs which kind, and where:
//!
//! - prestart, createRuntime: the runtime, in its own namespaces (it never joins the
//!   config's: the init does), once the init has made or joined the container's
//!   namespaces and made its mounts, but before pivot_root
//! - createContainer: the init, in the container's namespaces, with the rootfs as its
//!   working directory, before pivot_root
//! - startContainer: the init, after `start` released it and before the exec, under
//!   the container's seccomp filter (as runc)
//! - poststart: `start`, once the user process runs (failure: a logged warning)
//! - poststop: `delete`, once the container is gone (failure: a logged warning)

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// The hooks of this kind in `spec` (empty when none).
    pub fn of(self, spec: &Spec) -> &[Hook] {
        let Some(h) = spec.hooks().as_ref() else { return &[] };
        #[allow(deprecated)]
        let list = match self {
            Kind::Prestart => h.prestart(),
            Kind::CreateRuntime => h.create_runtime(),
            Kind::CreateContainer => h.create_container(),
            Kind::StartContainer => h.start_container(),
            Kind::Poststart => h.poststart(),
            Kind::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// The state document a hook reads on stdin.
pub fn state_json(spec: &Spec, id: &str, status: &str, pid: i32, bundle: &Path) -> String {
    let empty = HashMap::new();
    serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": spec.annotations().as_ref().unwrap_or(&empty),
    })
    .to_string()
}

/// Runs every hook of `kind` in order; the first failure is the error, naming the hook.
pub fn run(kind: Kind, spec: &Spec, state: &str) -> Result<()> {
    for (i, hook) in kind.of(spec).iter().enumerate() {
        run_one(hook, state).map_err(|msg| Error::field(format!("hooks.{}[{i}]", kind.name()), msg))?;
    }
    Ok(())
}

/// Runs every hook of `kind`, logging failures as warnings (poststart, poststop).
pub fn run_warn(kind: Kind, spec: &Spec, state: &str) {
    for (i, hook) in kind.of(spec).iter().enumerate() {
        if let Err(msg) = run_one(hook, state) {
            let line = format!("warning: hooks.{}[{i}]: {msg}", kind.name());
            crate::logging::warn(&line);
        }
    }
}

/// Checks, before anything is created, that the hooks the runtime itself will run exist.
pub fn validate(spec: &Spec) -> Result<()> {
    for kind in [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ] {
        for (i, hook) in kind.of(spec).iter().enumerate() {
            let field = || format!("hooks.{}[{i}].path", kind.name());
            let path = hook.path();
            if !path.is_absolute() {
                return Err(Error::field(field(), format!("{} is not an absolute path", path.display())));
            }
            // startContainer hooks resolve inside the container: their path can't be checked here.
            if kind != Kind::StartContainer && !path.exists() {
                return Err(Error::field(field(), format!("{}: no such file", path.display())));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::field(format!("hooks.{}[{i}].timeout", kind.name()), "must be positive"));
            }
        }
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &str) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args().as_deref() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", hook.path().display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that doesn't read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook.timeout().map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} failed: {status}", hook.path().display())),
            Ok(None) => {}
            Err(e) => return Err(format!("wait for {}: {e}", hook.path().display())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} timed out after {}s", hook.path().display(), hook.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
