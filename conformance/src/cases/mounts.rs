//! config.md "Mounts" and "Root", config-linux.md "rootfsPropagation": mount types,
//! options, bind and recursive bind, propagation, and the read-only root.

use super::{add_mount, Entry};
use crate::check::{find_mount, mount_has, op_errno, propagation};
use crate::ensure;
use crate::harness::{skip, Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("types_as_configured", "config.md §Mounts type (MUST): the runtime MUST mount entries with the given filesystem type", types),
    ("listed_order", "config.md §Mounts (MUST): the runtime MUST mount entries in the listed order", order),
    ("destination_created", "config.md §Mounts destination (SHOULD): a missing destination is created in the rootfs", dest_created),
    ("bind_mount", "config.md §Mounts (MUST): a bind mount shows the source's contents at destination", bind),
    ("bind_ro", "config.md §Mounts options ro (MUST): options are applied; a ro bind is read-only", bind_ro),
    ("bind_unknown_option_is_data", "config.md §Mounts options (SHOULD): options not known to the runtime go to mount(2) as data; a bind ignores them and mounts", bind_data),
    ("tmpfs_flags", "config.md §Mounts options (MUST): nosuid, nodev, noexec appear on the mount", flags),
    ("tmpfs_data_option", "config.md §Mounts options (MUST): data options (size=) reach the filesystem", data_option),
    ("atime_option", "config.md §Mounts options (MUST): noatime is applied", atime),
    ("rbind_recursive", "config.md §Mounts options rbind (MUST): a recursive bind carries submounts", rbind),
    ("bind_not_recursive", "config.md §Mounts options bind (MUST): a plain bind does not carry submounts", bind_flat),
    ("propagation_option_shared", "config.md §Mounts options shared (MUST): the mount's propagation is shared", prop_shared),
    ("rootfs_propagation_private", "config-linux.md §rootfsPropagation (MUST): the rootfs mount's propagation is private", |c| rootfs_prop(c, "private")),
    ("rootfs_propagation_unbindable", "config-linux.md §rootfsPropagation (MUST): the rootfs mount's propagation is unbindable", |c| rootfs_prop(c, "unbindable")),
    ("recursive_ro", "config.md §Mounts options rro (MUST): recursive read-only (mount_setattr) covers submounts", rro),
    ("root_readonly", "config.md §Root readonly (MUST): if true the root filesystem MUST be read-only", root_ro),
    ("root_writable_by_default", "config.md §Root readonly: defaults to false, the root filesystem is writable", root_rw),
];

fn types(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&[])?;
    for m in ctx.config["mounts"].as_array().unwrap() {
        let d = m["destination"].as_str().unwrap();
        let got = find_mount(&r, d).map(|x| x["fstype"].clone());
        ensure!(got.as_ref() == Some(&m["type"]), "{d} has type {got:?}, want {}", m["type"]);
    }
    Ok(())
}

fn order(ctx: &mut Ctx) -> R {
    add_mount(ctx, json!({ "destination": "/m", "type": "tmpfs", "source": "tmpfs" }));
    add_mount(ctx, json!({ "destination": "/m/sub", "type": "tmpfs", "source": "tmpfs" }));
    let r = ctx.probe(&[])?;
    let (a, b) = (find_mount(&r, "/m").ok_or("no mount at /m")?, find_mount(&r, "/m/sub").ok_or("no mount at /m/sub")?);
    ensure!(b["parent"] == a["id"], "/m/sub (parent {}) is not mounted on /m (id {})", b["parent"], a["id"]);
    Ok(())
}

fn dest_created(ctx: &mut Ctx) -> R {
    add_mount(ctx, json!({ "destination": "/new/deep/dir", "type": "tmpfs", "source": "tmpfs" }));
    let r = ctx.probe(&[])?;
    ensure!(find_mount(&r, "/new/deep/dir").is_some(), "no mount at /new/deep/dir");
    Ok(())
}

/// A host directory with a file, for bind sources.
fn host_dir(ctx: &Ctx) -> String {
    let d = ctx.dir.join("hostdir");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("hello"), "hi").unwrap();
    d.display().to_string()
}

fn bind(ctx: &mut Ctx) -> R {
    let src = host_dir(ctx);
    add_mount(ctx, json!({ "destination": "/b", "type": "none", "source": src, "options": ["bind"] }));
    let r = ctx.probe(&["--file", "/b/hello"])?;
    ensure!(r["ops"]["file:/b/hello"]["ok"] == "hi", "/b/hello reads {}", r["ops"]["file:/b/hello"]);
    Ok(())
}

fn bind_ro(ctx: &mut Ctx) -> R {
    let src = host_dir(ctx);
    add_mount(ctx, json!({ "destination": "/b", "type": "bind", "source": src, "options": ["bind", "ro"] }));
    let r = ctx.probe(&["--write", "/b/new"])?;
    mount_has(&r, "/b", &["ro"])?;
    ensure!(
        op_errno(&r, "write:/b/new")? == Some(libc::EROFS as i64),
        "write on the ro bind: {}",
        r["ops"]["write:/b/new"]
    );
    Ok(())
}

fn bind_data(ctx: &mut Ctx) -> R {
    let src = host_dir(ctx);
    add_mount(
        ctx,
        json!({ "destination": "/b", "type": "bind", "source": src, "options": ["rbind", "mode=755", "ro"] }),
    );
    let r = ctx.probe(&["--file", "/b/hello"])?;
    mount_has(&r, "/b", &["ro"])?;
    ensure!(r["ops"]["file:/b/hello"]["ok"] == "hi", "/b/hello reads {}", r["ops"]["file:/b/hello"]);
    Ok(())
}

fn flags(ctx: &mut Ctx) -> R {
    add_mount(
        ctx,
        json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec"] }),
    );
    Ok(mount_has(&ctx.probe(&[])?, "/t", &["nosuid", "nodev", "noexec"])?)
}

fn data_option(ctx: &mut Ctx) -> R {
    add_mount(
        ctx,
        json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700"] }),
    );
    Ok(mount_has(&ctx.probe(&[])?, "/t", &["size=1024k", "mode=700"])?)
}

fn atime(ctx: &mut Ctx) -> R {
    add_mount(ctx, json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["noatime"] }));
    Ok(mount_has(&ctx.probe(&[])?, "/t", &["noatime"])?)
}

/// A host directory with a tmpfs submount at `sub` holding a file.
fn host_tree(ctx: &mut Ctx) -> Result<String, crate::harness::Fail> {
    let src = host_dir(ctx);
    let sub = std::path::Path::new(&src).join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    ctx.host_mount(&["-t", "tmpfs", "tmpfs"], &sub)?;
    std::fs::write(sub.join("inner"), "in").unwrap();
    Ok(src)
}

fn rbind(ctx: &mut Ctx) -> R {
    let src = host_tree(ctx)?;
    add_mount(ctx, json!({ "destination": "/b", "type": "bind", "source": src, "options": ["rbind"] }));
    let r = ctx.probe(&["--file", "/b/sub/inner"])?;
    ensure!(
        find_mount(&r, "/b/sub").is_some() && r["ops"]["file:/b/sub/inner"]["ok"] == "in",
        "submount not carried: {}",
        r["ops"]
    );
    Ok(())
}

fn bind_flat(ctx: &mut Ctx) -> R {
    let src = host_tree(ctx)?;
    add_mount(ctx, json!({ "destination": "/b", "type": "bind", "source": src, "options": ["bind"] }));
    let r = ctx.probe(&[])?;
    ensure!(find_mount(&r, "/b").is_some(), "no mount at /b");
    ensure!(find_mount(&r, "/b/sub").is_none(), "a plain bind carried the submount /b/sub");
    Ok(())
}

fn prop_shared(ctx: &mut Ctx) -> R {
    add_mount(ctx, json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["shared"] }));
    let p = propagation(&ctx.probe(&[])?, "/t");
    ensure!(p == Some("shared"), "/t propagation is {p:?}");
    Ok(())
}

fn rootfs_prop(ctx: &mut Ctx, want: &str) -> R {
    ctx.config["linux"]["rootfsPropagation"] = json!(want);
    let p = propagation(&ctx.probe(&[])?, "/");
    ensure!(p == Some(want), "/ propagation is {p:?}, want {want}");
    Ok(())
}

fn rro(ctx: &mut Ctx) -> R {
    if ctx.env.feature_lists("/mountOptions", "rro") != Some(true) {
        return skip("runtime features does not list mount option rro");
    }
    let src = host_tree(ctx)?;
    add_mount(ctx, json!({ "destination": "/b", "type": "bind", "source": src, "options": ["rbind", "rro"] }));
    let r = ctx.probe(&["--write", "/b/sub/x"])?;
    mount_has(&r, "/b", &["ro"])?;
    mount_has(&r, "/b/sub", &["ro"])?;
    ensure!(
        op_errno(&r, "write:/b/sub/x")? == Some(libc::EROFS as i64),
        "write in the submount: {}",
        r["ops"]["write:/b/sub/x"]
    );
    Ok(())
}

fn root_ro(ctx: &mut Ctx) -> R {
    ctx.config["root"]["readonly"] = json!(true);
    let r = ctx.probe(&["--write", "/newfile"])?;
    mount_has(&r, "/", &["ro"])?;
    ensure!(op_errno(&r, "write:/newfile")? == Some(libc::EROFS as i64), "write to /: {}", r["ops"]["write:/newfile"]);
    Ok(())
}

fn root_rw(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&["--write", "/newfile"])?;
    ensure!(op_errno(&r, "write:/newfile")?.is_none(), "write to /: {}", r["ops"]["write:/newfile"]);
    Ok(())
}
