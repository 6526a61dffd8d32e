//! config.md "Process", "POSIX process", "Hostname", "Domainname";
//! config-linux.md "Personality"; runtime-linux.md "File descriptors".

use super::Entry;
use crate::ensure;
use crate::harness::{Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("args", "config.md §Process args (REQUIRED): the process runs with args as argv", args),
    ("args_path_lookup", "config.md §Process args: execvp semantics, args[0] is looked up in PATH", path_lookup),
    ("env", "config.md §Process env (MUST): env is the process's environment", env),
    ("cwd", "config.md §Process cwd (REQUIRED): the working directory the executable is set to", cwd),
    ("cwd_relative_fails", "config.md §Process cwd (MUST): this value MUST be an absolute path", cwd_relative),
    ("user_uid_gid", "config.md §POSIX process user uid, gid (REQUIRED): the process runs as uid/gid", user),
    (
        "additional_gids",
        "config.md §POSIX process user additionalGids: additional group IDs added to the process",
        gids,
    ),
    ("umask", "config.md §POSIX process user umask: the umask of the user", umask),
    (
        "no_new_privileges",
        "config.md §Linux process noNewPrivileges: prevents the process from gaining privileges (PR_SET_NO_NEW_PRIVS)",
        nnp,
    ),
    ("oom_score_adj", "config.md §Linux process oomScoreAdj: written to /proc/[pid]/oom_score_adj", oom),
    ("hostname", "config.md §Hostname: the container's hostname as seen by processes inside", hostname),
    ("domainname", "config.md §Domainname: the container's domainname as seen by processes inside", domainname),
    (
        "fds_stdio_only",
        "runtime-linux.md §File descriptors: by default only stdin, stdout and stderr are kept open",
        fds,
    ),
    ("personality", "config-linux.md §Personality (MUST): domain LINUX32 sets the execution domain", personality),
];

fn args(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&["--stat", "/", "--ls", "/tmp"])?;
    ensure!(r["args"] == json!(["/strata-probe", "--stat", "/", "--ls", "/tmp"]), "argv is {}", r["args"]);
    Ok(())
}

fn path_lookup(ctx: &mut Ctx) -> R {
    std::fs::rename(ctx.rootfs("/strata-probe"), ctx.rootfs("/usr/bin/strata-probe")).unwrap();
    ctx.args(&["strata-probe"]);
    let id = ctx.id();
    let o = ctx.run(&id);
    ensure!(o.ok() && o.stdout.contains("\"ns\""), "strata-probe via PATH did not run: {}", o.brief());
    Ok(())
}

fn env(ctx: &mut Ctx) -> R {
    ctx.config["process"]["env"].as_array_mut().unwrap().push(json!("CONFORMANCE=a b=c"));
    let r = ctx.probe(&[])?;
    ensure!(r["env"].as_array().unwrap().iter().any(|e| e == "CONFORMANCE=a b=c"), "env is {}", r["env"]);
    Ok(())
}

fn cwd(ctx: &mut Ctx) -> R {
    ctx.config["process"]["cwd"] = json!("/tmp");
    let r = ctx.probe(&[])?;
    ensure!(r["cwd"] == "/tmp", "cwd is {}", r["cwd"]);
    Ok(())
}

fn cwd_relative(ctx: &mut Ctx) -> R {
    ctx.config["process"]["cwd"] = json!("tmp");
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    ensure!(!(o.ok() && ctx.start(&id).ok()), "a relative cwd was accepted");
    Ok(())
}

fn user(ctx: &mut Ctx) -> R {
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1001 });
    let r = ctx.probe(&[])?;
    ensure!(r["uid"] == 1000 && r["gid"] == 1001, "uid {} gid {}", r["uid"], r["gid"]);
    Ok(())
}

fn gids(ctx: &mut Ctx) -> R {
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 20] });
    let r = ctx.probe(&[])?;
    let mut g: Vec<u64> = r["groups"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).collect();
    g.sort();
    g.dedup();
    ensure!(g == [10, 20] || g == [10, 20, 1000], "groups are {g:?}, want [10, 20] (plus the gid)");
    Ok(())
}

fn umask(ctx: &mut Ctx) -> R {
    ctx.config["process"]["user"]["umask"] = json!(0o027);
    let r = ctx.probe(&[])?;
    ensure!(r["status"]["Umask"] == "0027", "Umask is {}", r["status"]["Umask"]);
    Ok(())
}

fn nnp(ctx: &mut Ctx) -> R {
    ctx.config["process"]["noNewPrivileges"] = json!(true);
    let r = ctx.probe(&[])?;
    ensure!(r["status"]["NoNewPrivs"] == "1", "NoNewPrivs is {}", r["status"]["NoNewPrivs"]);
    Ok(())
}

fn oom(ctx: &mut Ctx) -> R {
    ctx.config["process"]["oomScoreAdj"] = json!(123);
    let r = ctx.probe(&[])?;
    ensure!(r["oom_score_adj"] == "123", "oom_score_adj is {}", r["oom_score_adj"]);
    Ok(())
}

fn hostname(ctx: &mut Ctx) -> R {
    ctx.config["hostname"] = json!("conformance-host");
    let r = ctx.probe(&[])?;
    ensure!(r["uname"]["nodename"] == "conformance-host", "hostname is {}", r["uname"]["nodename"]);
    Ok(())
}

fn domainname(ctx: &mut Ctx) -> R {
    ctx.config["domainname"] = json!("conformance.example");
    let r = ctx.probe(&[])?;
    ensure!(r["uname"]["domainname"] == "conformance.example", "domainname is {}", r["uname"]["domainname"]);
    Ok(())
}

fn fds(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&[])?;
    ensure!(r["fds"] == json!([0, 1, 2]), "open fds are {}", r["fds"]);
    Ok(())
}

fn personality(ctx: &mut Ctx) -> R {
    ctx.config["linux"]["personality"] = json!({ "domain": "LINUX32" });
    let r = ctx.probe(&[])?;
    // PER_LINUX32 is 0x0008; uname's machine then reads i686.
    ensure!(
        r["personality"].as_i64().is_some_and(|p| p & 0xff == 8),
        "personality is {} (machine {})",
        r["personality"],
        r["uname"]["machine"]
    );
    Ok(())
}
