//! config-linux.md "Seccomp": the filter is installed and its actions take effect.

use super::Entry;
use crate::check::op_errno;
use crate::ensure;
use crate::harness::{skip, Ctx, R};
use serde_json::{json, Value};

pub const CASES: &[Entry] = &[
    ("mode_filter", "config-linux.md §Seccomp: a configured filter is installed (Seccomp: 2)", mode_filter),
    (
        "errno_action",
        "config-linux.md §Seccomp syscalls action SCMP_ACT_ERRNO: the syscall fails with EPERM by default",
        errno_default,
    ),
    ("errno_ret", "config-linux.md §Seccomp syscalls errnoRet: the errno returned for SCMP_ACT_ERRNO", errno_ret),
    ("kill_action", "config-linux.md §Seccomp syscalls action SCMP_ACT_KILL: the process is killed by SIGSYS", kill),
    (
        "invalid_action_fails",
        "config-linux.md §Seccomp defaultAction (MUST): an action that is not valid MUST generate an error",
        invalid,
    ),
];

fn need(ctx: &Ctx) -> R {
    if ctx.env.features.as_ref().and_then(|f| f.pointer("/linux/seccomp/enabled")) == Some(&json!(false)) {
        return skip("runtime features says seccomp is not enabled");
    }
    Ok(())
}

fn filter(action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({ "names": ["mkdir", "mkdirat"], "action": action });
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule] })
}

fn mode_filter(ctx: &mut Ctx) -> R {
    need(ctx)?;
    ctx.config["linux"]["seccomp"] = filter("SCMP_ACT_ERRNO", None);
    let r = ctx.probe(&[])?;
    ensure!(r["status"]["Seccomp"] == "2", "Seccomp is {}", r["status"]["Seccomp"]);
    Ok(())
}

fn errno_default(ctx: &mut Ctx) -> R {
    need(ctx)?;
    ctx.config["linux"]["seccomp"] = filter("SCMP_ACT_ERRNO", None);
    let r = ctx.probe(&["--mkdir", "/tmp/d"])?;
    ensure!(op_errno(&r, "mkdir:/tmp/d")? == Some(libc::EPERM as i64), "mkdir: {}", r["ops"]["mkdir:/tmp/d"]);
    Ok(())
}

fn errno_ret(ctx: &mut Ctx) -> R {
    need(ctx)?;
    ctx.config["linux"]["seccomp"] = filter("SCMP_ACT_ERRNO", Some(libc::EXDEV as u32));
    let r = ctx.probe(&["--mkdir", "/tmp/d"])?;
    ensure!(op_errno(&r, "mkdir:/tmp/d")? == Some(libc::EXDEV as i64), "mkdir: {}", r["ops"]["mkdir:/tmp/d"]);
    Ok(())
}

fn kill(ctx: &mut Ctx) -> R {
    need(ctx)?;
    ctx.config["linux"]["seccomp"] = filter("SCMP_ACT_KILL", None);
    ctx.args(&["/strata-probe", "--mkdir", "/tmp/d"]);
    let id = ctx.id();
    let o = ctx.run(&id);
    // runc-style `run` exits 128 + the signal that killed the process.
    ensure!(
        o.code == Some(128 + libc::SIGSYS) && !o.stdout.contains("\"ops\""),
        "run: {} stdout {:?}",
        o.brief(),
        o.stdout.chars().take(80).collect::<String>()
    );
    Ok(())
}

fn invalid(ctx: &mut Ctx) -> R {
    need(ctx)?;
    ctx.config["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_NO_SUCH_ACTION" });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    ensure!(!(o.ok() && ctx.start(&id).ok()), "an invalid seccomp action was accepted");
    Ok(())
}
