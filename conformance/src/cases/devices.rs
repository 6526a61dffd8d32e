//! config-linux.md "Devices" and "Default Devices", runtime-linux.md "Dev symbolic
//! links": the nodes the runtime must supply and the ones config.json asks for.

use super::Entry;
use crate::ensure;
use crate::harness::{Ctx, R};
use serde_json::{json, Value};

pub const CASES: &[Entry] = &[
    (
        "default_devices",
        "config-linux.md §Default Devices (MUST): /dev/null, zero, full, random, urandom, tty are supplied",
        defaults,
    ),
    ("default_ptmx", "config-linux.md §Default Devices (MUST): /dev/ptmx, a bind or symlink to /dev/pts/ptmx", ptmx),
    (
        "dev_symlinks",
        "runtime-linux.md §Dev symbolic links (MUST): /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr",
        symlinks,
    ),
    ("default_null_usable", "config-linux.md §Default Devices (MUST): the supplied /dev/null is usable", null_usable),
    ("char_device_created", "config-linux.md §Devices (MUST): type c, major, minor as listed", |c| node(c, "c", 1, 3)),
    ("block_device_created", "config-linux.md §Devices (MUST): type b, major, minor as listed", |c| {
        node(c, "b", 7, 0)
    }),
    ("fifo_created", "config-linux.md §Devices (MUST): type p creates a FIFO", fifo),
    (
        "device_mode_and_owner",
        "config-linux.md §Devices fileMode, uid, gid (MUST): the node has the given mode and owner",
        mode_owner,
    ),
];

fn stat<'a>(r: &'a Value, p: &str) -> &'a Value {
    &r["ops"][format!("stat:{p}")]
}

fn defaults(ctx: &mut Ctx) -> R {
    let want = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];
    let r = ctx.probe(&[])?;
    for (n, ma, mi) in want {
        let s = &r["dev"][format!("/dev/{n}")];
        ensure!(s["type"] == "c" && s["major"] == ma && s["minor"] == mi, "/dev/{n} is {s}, want c {ma}:{mi}");
    }
    Ok(())
}

fn ptmx(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&["--stat", "/dev/ptmx", "--open", "/dev/ptmx"])?;
    let s = stat(&r, "/dev/ptmx");
    let ok = (s["type"] == "l" && s["link"].as_str().is_some_and(|l| l.ends_with("pts/ptmx")))
        || (s["type"] == "c" && s["major"] == 5 && s["minor"] == 2);
    ensure!(ok, "/dev/ptmx is {s}");
    ensure!(r["ops"]["open:/dev/ptmx"]["ok"] == true, "opening /dev/ptmx: {}", r["ops"]["open:/dev/ptmx"]);
    Ok(())
}

fn symlinks(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&[])?;
    for (n, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let s = &r["dev"][format!("/dev/{n}")];
        ensure!(s["type"] == "l" && s["link"] == t, "/dev/{n} is {s}, want a symlink to {t}");
    }
    Ok(())
}

fn null_usable(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&["--write", "/dev/null", "--file", "/dev/null"])?;
    ensure!(
        r["ops"]["write:/dev/null"]["ok"] == true && r["ops"]["file:/dev/null"]["ok"] == "",
        "/dev/null: {}",
        r["ops"]
    );
    Ok(())
}

fn add_dev(ctx: &mut Ctx, d: Value) {
    ctx.config["linux"]["devices"] = json!([d]);
}

fn node(ctx: &mut Ctx, ty: &str, major: u32, minor: u32) -> R {
    add_dev(ctx, json!({ "path": "/dev/testdev", "type": ty, "major": major, "minor": minor }));
    let r = ctx.probe(&["--stat", "/dev/testdev"])?;
    let s = stat(&r, "/dev/testdev");
    ensure!(
        s["type"] == ty && s["major"] == major && s["minor"] == minor,
        "/dev/testdev is {s}, want {ty} {major}:{minor}"
    );
    Ok(())
}

fn fifo(ctx: &mut Ctx) -> R {
    add_dev(ctx, json!({ "path": "/dev/testfifo", "type": "p" }));
    let r = ctx.probe(&["--stat", "/dev/testfifo"])?;
    ensure!(stat(&r, "/dev/testfifo")["type"] == "p", "/dev/testfifo is {}", stat(&r, "/dev/testfifo"));
    Ok(())
}

fn mode_owner(ctx: &mut Ctx) -> R {
    add_dev(
        ctx,
        json!({ "path": "/dev/testdev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1000, "gid": 1001 }),
    );
    let r = ctx.probe(&["--stat", "/dev/testdev"])?;
    let s = stat(&r, "/dev/testdev");
    ensure!(
        s["mode"] == 0o620 && s["uid"] == 1000 && s["gid"] == 1001,
        "/dev/testdev is {s}, want mode 0620 uid 1000 gid 1001"
    );
    Ok(())
}
