//! config.md "POSIX process" rlimits: values applied, and the errors for types that
//! can't be mapped and limits that can't be set.

use super::{expect_error, Entry};
use crate::check::rlimit_is;
use crate::harness::{skip, Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("nofile", "config.md §POSIX process rlimits (MUST): the runtime MUST set the limit (RLIMIT_NOFILE)", |c| set(c, "RLIMIT_NOFILE", 512, 768)),
    ("nproc", "config.md §POSIX process rlimits (MUST): the runtime MUST set the limit (RLIMIT_NPROC)", |c| set(c, "RLIMIT_NPROC", 300, 400)),
    ("core", "config.md §POSIX process rlimits (MUST): the runtime MUST set the limit (RLIMIT_CORE)", |c| set(c, "RLIMIT_CORE", 1024, 2048)),
    ("cpu", "config.md §POSIX process rlimits (MUST): the runtime MUST set the limit (RLIMIT_CPU)", |c| set(c, "RLIMIT_CPU", 100, 200)),
    ("unknown_type_fails", "config.md §POSIX process rlimits type (MUST): the runtime MUST generate an error for values which cannot be mapped", unknown),
    ("soft_above_hard_fails", "config.md §POSIX process rlimits (MUST): a limit setrlimit(2) rejects MUST fail container creation", soft_above_hard),
    ("raise_hard_fails", "runtime.md §Create (MUST): a hard limit above the runtime's, without CAP_SYS_RESOURCE, MUST generate an error", raise_hard),
];

fn set(ctx: &mut Ctx, ty: &str, soft: u64, hard: u64) -> R {
    ctx.config["process"]["rlimits"].as_array_mut().unwrap().push(json!({ "type": ty, "soft": soft, "hard": hard }));
    let r = ctx.probe(&[])?;
    Ok(rlimit_is(&r, ty, soft, hard)?)
}

fn fails_with(ctx: &mut Ctx, lim: serde_json::Value, what: &str) -> R {
    ctx.config["process"]["rlimits"] = json!([lim]);
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    if o.ok() {
        return expect_error(&ctx.start(&id), what);
    }
    Ok(())
}

fn unknown(ctx: &mut Ctx) -> R {
    fails_with(ctx, json!({ "type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1 }), "an unknown rlimit type")
}

fn soft_above_hard(ctx: &mut Ctx) -> R {
    fails_with(ctx, json!({ "type": "RLIMIT_NOFILE", "soft": 200, "hard": 100 }), "RLIMIT_NOFILE soft above hard")
}

fn raise_hard(ctx: &mut Ctx) -> R {
    let own = crate::procfs::parse_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let eff = crate::procfs::caps_from_hex(own.get("CapEff").and_then(|v| v.as_str()).unwrap_or("0"));
    if eff.iter().any(|c| c == "CAP_SYS_RESOURCE") {
        return skip("the runner has CAP_SYS_RESOURCE, so any hard limit can be raised");
    }
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: l is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    let hard = l.rlim_max.saturating_mul(2).min(1 << 20);
    if hard <= l.rlim_max {
        return skip("RLIMIT_NOFILE hard limit is already at the kernel maximum");
    }
    fails_with(
        ctx,
        json!({ "type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard }),
        "raising the RLIMIT_NOFILE hard limit",
    )
}
