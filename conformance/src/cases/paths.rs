//! config-linux.md "Masked Paths" and "Readonly Paths".

use super::Entry;
use crate::check::{mount_has, op_errno};
use crate::ensure;
use crate::harness::{Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("masked_file", "config-linux.md §Masked Paths (MUST): masked paths cannot be read (a file)", masked_file),
    ("masked_dir", "config-linux.md §Masked Paths (MUST): masked paths cannot be read (a directory)", masked_dir),
    (
        "masked_proc_file",
        "config-linux.md §Masked Paths (MUST): a masked /proc file (timer_list) reads nothing",
        masked_proc,
    ),
    ("readonly_dir", "config-linux.md §Readonly Paths (MUST): readonly paths cannot be written", readonly_dir),
    (
        "readonly_proc_sys",
        "config-linux.md §Readonly Paths (MUST): /proc/sys listed readonly is mounted read-only",
        readonly_proc_sys,
    ),
];

fn masked_file(ctx: &mut Ctx) -> R {
    std::fs::write(ctx.rootfs("/secret"), "secret").unwrap();
    ctx.config["linux"]["maskedPaths"] = json!(["/secret"]);
    let r = ctx.probe(&["--file", "/secret"])?;
    let v = &r["ops"]["file:/secret"];
    ensure!(v["ok"] != "secret", "/secret is readable: {v}");
    Ok(())
}

fn masked_dir(ctx: &mut Ctx) -> R {
    std::fs::create_dir_all(ctx.rootfs("/secrets")).unwrap();
    std::fs::write(ctx.rootfs("/secrets/key"), "secret").unwrap();
    ctx.config["linux"]["maskedPaths"] = json!(["/secrets"]);
    let r = ctx.probe(&["--file", "/secrets/key", "--ls", "/secrets"])?;
    ensure!(r["ops"]["file:/secrets/key"]["ok"] != "secret", "/secrets/key is readable");
    let ls = &r["ops"]["ls:/secrets"]["ok"];
    ensure!(!ls.as_array().is_some_and(|a| a.iter().any(|e| e == "key")), "/secrets lists {ls}");
    Ok(())
}

fn masked_proc(ctx: &mut Ctx) -> R {
    ctx.config["linux"]["maskedPaths"] = json!(["/proc/timer_list"]);
    let r = ctx.probe(&["--file", "/proc/timer_list"])?;
    let v = &r["ops"]["file:/proc/timer_list"];
    ensure!(
        v["ok"].as_str().is_none_or(|s| s.is_empty()),
        "/proc/timer_list reads {} bytes",
        v["ok"].as_str().map(str::len).unwrap_or(0)
    );
    Ok(())
}

fn readonly_dir(ctx: &mut Ctx) -> R {
    std::fs::create_dir_all(ctx.rootfs("/rodir")).unwrap();
    ctx.config["linux"]["readonlyPaths"] = json!(["/rodir"]);
    let r = ctx.probe(&["--write", "/rodir/x", "--write", "/tmp/x"])?;
    ensure!(
        op_errno(&r, "write:/rodir/x")? == Some(libc::EROFS as i64),
        "write in /rodir: {}",
        r["ops"]["write:/rodir/x"]
    );
    ensure!(op_errno(&r, "write:/tmp/x")?.is_none(), "the rest of the rootfs became read-only too");
    Ok(())
}

fn readonly_proc_sys(ctx: &mut Ctx) -> R {
    Ok(mount_has(&ctx.probe(&[])?, "/proc/sys", &["ro"])?)
}
