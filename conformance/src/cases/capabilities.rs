//! config.md "POSIX process" capabilities. After execve the kernel recomputes the sets
//! (capabilities(7)): for uid 0 permitted = effective = bounding | inheritable, for
//! other users permitted = effective = ambient. The cases check what survives exec.

use super::{Entry, DEFAULT_CAPS};
use crate::check::same_caps;
use crate::ensure;
use crate::harness::{skip, Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("bounding", "config.md §POSIX process capabilities.bounding: the bounding set of the process", bounding),
    ("inheritable", "config.md §POSIX process capabilities.inheritable: the inheritable set of the process", inheritable),
    ("ambient_nonroot", "config.md §POSIX process capabilities.ambient: ambient caps of a non-root process (its effective set after exec)", ambient),
    ("nonroot_without_ambient_empty", "config.md §POSIX process capabilities.effective: a non-root process gains nothing not granted", nonroot_empty),
    ("root_effective_bounded", "config.md §POSIX process capabilities: root's effective set is bounded by the configured sets", root_effective),
    ("empty_sets", "config.md §POSIX process capabilities: empty sets leave the process with no capabilities", empty),
    ("unknown_cap_tolerated", "config.md §POSIX process capabilities (SHOULD NOT): runtimes SHOULD NOT fail on capabilities that cannot be mapped or granted", unknown),
    ("ungrantable_cap_tolerated", "config.md §POSIX process capabilities (SHOULD NOT): runtimes SHOULD NOT fail on capabilities that cannot be granted", ungrantable),
];

fn bounding(ctx: &mut Ctx) -> R {
    ctx.config["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]);
    let r = ctx.probe(&[])?;
    Ok(same_caps(&r["caps"]["CapBnd"], &json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]))
        .map_err(|e| format!("bounding: {e}"))?)
}

fn inheritable(ctx: &mut Ctx) -> R {
    ctx.config["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    let r = ctx.probe(&[])?;
    Ok(same_caps(&r["caps"]["CapInh"], &json!(["CAP_KILL"])).map_err(|e| format!("inheritable: {e}"))?)
}

fn ambient(ctx: &mut Ctx) -> R {
    let set = json!(["CAP_NET_BIND_SERVICE"]);
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    for k in ["effective", "permitted", "inheritable", "ambient"] {
        ctx.config["process"]["capabilities"][k] = set.clone();
    }
    let r = ctx.probe(&[])?;
    same_caps(&r["caps"]["CapAmb"], &set).map_err(|e| format!("ambient: {e}"))?;
    Ok(same_caps(&r["caps"]["CapEff"], &set).map_err(|e| format!("effective: {e}"))?)
}

fn nonroot_empty(ctx: &mut Ctx) -> R {
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    let r = ctx.probe(&[])?;
    ensure!(
        r["caps"]["CapEff"] == json!([]) && r["caps"]["CapAmb"] == json!([]),
        "effective {} ambient {}",
        r["caps"]["CapEff"],
        r["caps"]["CapAmb"]
    );
    Ok(())
}

fn root_effective(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&[])?;
    Ok(same_caps(&r["caps"]["CapEff"], &json!(DEFAULT_CAPS)).map_err(|e| format!("effective: {e}"))?)
}

fn empty(ctx: &mut Ctx) -> R {
    ctx.config["process"]["capabilities"] =
        json!({ "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": [] });
    let r = ctx.probe(&[])?;
    for k in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        ensure!(r["caps"][k] == json!([]), "{k} is {}", r["caps"][k]);
    }
    Ok(())
}

fn unknown(ctx: &mut Ctx) -> R {
    ctx.config["process"]["capabilities"]["bounding"].as_array_mut().unwrap().push(json!("CAP_NO_SUCH_THING"));
    ctx.probe(&[]).map(|_| ())
}

fn ungrantable(ctx: &mut Ctx) -> R {
    let own = crate::procfs::parse_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let bnd = crate::procfs::caps_from_hex(own.get("CapBnd").and_then(|v| v.as_str()).unwrap_or("0"));
    let Some(missing) = crate::procfs::CAPS.iter().find(|c| !bnd.iter().any(|b| b == *c)) else {
        return skip("the runner holds every capability; none is ungrantable here");
    };
    for k in ["bounding", "effective", "permitted"] {
        ctx.config["process"]["capabilities"][k].as_array_mut().unwrap().push(json!(missing));
    }
    ctx.probe(&[]).map(|_| ())
}
