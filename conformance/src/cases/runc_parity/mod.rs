//! runc's observable behaviour where engines depend on it or the spec is loose, ported
//! from the differential integration tests (integration/tests/runc_cli.rs, init_order.rs,
//! cgroup_fidelity.rs, mounts_fidelity.rs, console.rs, inside.rs): the command-line
//! contract (kill --all, kill 0, exec exit codes, ps, list, state), the device cgroup's
//! reading of access strings, cgroup cleanup and frozen cgroups, namespaces joined by
//! path and what hooks see, seccomp ordering, /dev and bind corner cases, the pty owner.

mod cgroups;
mod cli;
mod setup;

use super::namespaces::need_ns;
use super::{drop_ns, expect_error, set_ns, Entry};
use crate::ensure;
use crate::harness::{not_ok, run_cmd, skip, Ctx, Fail, Out, R};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub const CASES: &[Entry] = &[
    ("kill_all_stopped_kills_leftovers", "runc(8) CLI contract: `kill --all ID KILL` on a stopped container exits 0 and kills what is left in its cgroup; plain `kill` of it fails (runtime.md §Kill MUST)", cli::kill_all_stopped),
    ("kill_zero_running", "runc(8) CLI contract: `kill ID 0` (and `kill --all ID 0`) on a running container exits 0 and changes nothing (a liveness probe)", cli::kill_zero),
    ("exec_pid_file_unwritable_leaves_nothing", "runc(8) CLI contract: `exec -d --pid-file` that can't write the file fails and leaves no process behind in the container", cli::exec_pidfile),
    ("exec_status_passes_through", "runc(8) CLI contract: `exec` exits with the program's own status", cli::exec_status),
    ("exec_missing_container_255", "runc(8) CLI contract: `exec` that fails in the runtime (no such container) exits 255", cli::exec_missing),
    ("exec_paused_255", "runc(8) CLI contract: `exec` in a paused container is refused with exit 255", cli::exec_paused),
    ("exec_process_file_default_user", "runc(8) CLI contract: `exec -p` of a process without `user` runs as 0:0 (config.md §POSIX process user, Go zero value), not as config.json's user", cli::exec_default_user),
    ("ps_stopped_ok", "runc(8) CLI contract: `ps` of a stopped container exits 0 (nothing left to list)", cli::ps_stopped),
    ("list_json_compact", "runc(8) CLI contract: `list -f json` is one compact JSON line with runc's fields (ociVersion id pid status bundle rootfs created owner)", cli::list_json),
    ("state_runc_fields", "runtime.md §State (REQUIRED ociVersion id status pid bundle) and runc(8) state: rootfs, created (RFC 3339), owner (runc 1.1: \"\")", cli::state_fields),
    ("devices_access_is_a_set", "config-linux.md §Allowed Device List access (MUST apply): access is a set of r, w, m; \"rrr\" allows read only (runc reading)", |c| cgroups::device_case(c, "rrr")),
    ("devices_deny_all_keeps_listed_node", "config-linux.md §Allowed Device List (MUST apply in order): a deny-all keeps a linux.devices node unopenable for write (runc reading)", |c| cgroups::device_case(c, "deny")),
    ("devices_unknown_access_letters_ignored", "config-linux.md §Allowed Device List access: letters other than r, w, m are ignored, \"rwa\" is read and write (runc reading)", |c| cgroups::device_case(c, "rwa")),
    ("devices_default_without_rules", "config-linux.md §Allowed Device List with §Default Devices: without linux.resources.devices only the default devices are allowed (runc reading: the cgroup starts deny-all)", |c| cgroups::device_case(c, "none")),
    ("devices_deny_exception_on_allow_all", "config-linux.md §Allowed Device List (MUST apply in order): allow-all then deny b 7:0 w denies write, keeps read", |c| cgroups::device_case(c, "allow-all")),
    ("devices_wildcard_hole_refused", "config-linux.md §Allowed Device List: a deny inside an earlier wildcard allow (b *:* then b 7:0 w) is refused, not silently ignored (runc)", |c| cgroups::device_case(c, "hole")),
    ("delete_force_removes_sub_cgroups", "runtime.md §Delete (MUST delete the resources created during create) / runc(8) delete --force: sub-cgroups the container made go with it", cgroups::sub_cgroups),
    ("delete_force_shared_cgroup_keeps_other", "runc(8) CLI contract: `delete --force` of one of two containers sharing a cgroupsPath leaves the other running", cgroups::shared_cgroup),
    ("frozen_cgroup_refused", "runtime.md §Create (MUST generate an error when unable to create the environment): a frozen cgroupsPath is refused within 10 s, not hung in (runc: \"container's cgroup unexpectedly frozen\")", |c| cgroups::frozen(c, false)),
    ("frozen_parent_refused", "runtime.md §Create (MUST generate an error when unable to create the environment): a cgroupsPath under a frozen parent (born cgroups::frozen) is refused within 10 s", |c| cgroups::frozen(c, true)),
    ("absent_mount_inherited", "config-linux.md §Namespaces (MUST): a type not in the array MUST be inherited from the runtime (mount; run inside a private mount namespace made by the case)", setup::no_mount_ns),
    ("hostname_in_joined_uts", "config.md §Hostname with config-linux.md §Namespaces path: hostname is set in a uts namespace joined by path", setup::hostname_joined),
    ("join_pid_path_holds_container", "config-linux.md §Namespaces path (MUST): the process is placed in a pid namespace joined by path (another container's), not as its pid 1", setup::join_pid),
    ("new_user_after_joined_network", "config-linux.md §Namespaces and §User namespace mappings: a new user namespace with a network namespace joined by path; the join happens first", setup::userns_after_join),
    ("hooks_keep_runtime_ns_when_joining", "config.md §prestart, §createRuntime Hooks (MUST be called in the runtime namespace): they see the runtime's net and uts while the container joins others by path", setup::hooks_runtime_ns),
    ("create_container_hook_cwd_is_rootfs", "config.md §createContainer Hooks (called in the container namespace, before pivot_root); runc(8): their working directory is the rootfs", setup::cc_cwd),
    ("start_container_hook_under_seccomp", "config.md §startContainer Hooks (MUST be executed in the container namespace) with config-linux.md §Seccomp: runc runs them under the container's filter", setup::sc_seccomp),
    ("seccomp_before_caps_drop", "config-linux.md §Seccomp with noNewPrivileges false: a runc-style allow-list without close_range etc. still runs the container", setup::seccomp_allow_list),
    ("readonly_dev_with_devpts", "config.md §Mounts (MUST mount in order, options apply): a read-only /dev with devpts, shm and mqueue below it works", setup::ro_dev),
    ("userns_bind_unreachable_source", "config.md §Mounts bind with config-linux.md §User namespace mappings: a bind source the container's root can't reach (0700, host root's) still mounts", setup::userns_bind),
    ("cwd_only_root_can_enter", "config.md §Process cwd (REQUIRED) and user: a cwd only root may enter is entered before the switch to process.user (runc)", setup::cwd_root_only),
    ("console_owned_by_user", "config.md §Process terminal, user with runc(8) --console-socket: the pty handed over belongs to process.user's uid", setup::console_owner),
];

fn sleeper(ctx: &mut Ctx) {
    ctx.args(&["sleep", "1000"]);
}

/// create and start, both required to succeed.
fn started(ctx: &mut Ctx, id: &str) -> R {
    ctx.create_ok(id)?;
    let o = ctx.start(id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    Ok(())
}

fn pid_of(ctx: &Ctx, id: &str) -> Result<i32, Fail> {
    let s = ctx.state(id)?;
    s["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32).ok_or_else(|| Fail::NotOk(format!("state has no pid: {s}")))
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

fn gone_soon(pid: i32) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits up to 5 s for a file the container writes (a whole line).
fn read_soon(p: &Path) -> Result<String, Fail> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return Ok(s);
            }
        }
        if Instant::now() > end {
            return not_ok(format!("{} never written", p.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` with the current config, which must succeed; its stdout.
fn run_ok(ctx: &mut Ctx) -> Result<String, Fail> {
    let id = ctx.id();
    let o = ctx.run(&id);
    ensure!(o.ok(), "run failed: {}", o.brief());
    Ok(o.stdout)
}

fn cgroups_path(ctx: &Ctx) -> String {
    ctx.config["linux"]["cgroupsPath"].as_str().unwrap_or("").to_string()
}
