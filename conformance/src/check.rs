//! The comparisons between what config.json asked for and what the probe or the runtime
//! reported. Pure functions over JSON, so they are unit-tested without a runtime: a
//! comparison that can't fail would make every case built on it worthless.

use serde_json::Value;

/// The topmost mount at `point` in a probe's mount list (the last one listed wins, as
/// later mounts stack over earlier ones).
pub fn find_mount<'a>(report: &'a Value, point: &str) -> Option<&'a Value> {
    report["mounts"].as_array()?.iter().rev().find(|m| m["mount_point"] == point)
}

/// Checks that the mount at `point` carries every per-mount option in `want`
/// (ro, nosuid, nodev, noexec, noatime ...) or, for `key=value` data options, that
/// the superblock options carry them.
pub fn mount_has(report: &Value, point: &str, want: &[&str]) -> Result<(), String> {
    let m = find_mount(report, point).ok_or_else(|| format!("no mount at {point}"))?;
    let has = |field: &str, o: &str| m[field].as_array().map(|a| a.iter().any(|x| x == o)).unwrap_or(false);
    let missing: Vec<&str> = want.iter().copied().filter(|o| !has("options", o) && !has("super", o)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("mount {point} lacks {missing:?}: options {} super {}", m["options"], m["super"]))
    }
}

/// The propagation of the mount at `point`: "shared", "slave", "unbindable" or "private".
pub fn propagation(report: &Value, point: &str) -> Option<&'static str> {
    let m = find_mount(report, point)?;
    let opt: Vec<&str> = m["optional"].as_array()?.iter().filter_map(|v| v.as_str()).collect();
    Some(if opt.iter().any(|o| o.starts_with("shared:")) {
        "shared"
    } else if opt.iter().any(|o| o.starts_with("master:")) {
        "slave"
    } else if opt.contains(&"unbindable") {
        "unbindable"
    } else {
        "private"
    })
}

/// Compares a capability set as the probe decoded it with the config's list, as sets.
pub fn same_caps(got: &Value, want: &Value) -> Result<(), String> {
    let set = |v: &Value| {
        let mut s: Vec<String> =
            v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default();
        s.sort();
        s.dedup();
        s
    };
    let (g, w) = (set(got), set(want));
    if g == w {
        return Ok(());
    }
    let extra: Vec<&String> = g.iter().filter(|c| !w.contains(c)).collect();
    let missing: Vec<&String> = w.iter().filter(|c| !g.contains(c)).collect();
    Err(format!("extra {extra:?}, missing {missing:?}"))
}

/// Checks one rlimit of the probe's report against (soft, hard).
pub fn rlimit_is(report: &Value, ty: &str, soft: u64, hard: u64) -> Result<(), String> {
    let got = &report["rlimits"][ty];
    if got[0] == soft && got[1] == hard {
        Ok(())
    } else {
        Err(format!("{ty} is {got}, want [{soft},{hard}]"))
    }
}

/// The errno of a probe operation ("write:/x"), or None when it succeeded.
pub fn op_errno(report: &Value, key: &str) -> Result<Option<i64>, String> {
    let v = report["ops"].get(key).ok_or_else(|| format!("probe did not run {key}"))?;
    Ok(if v.get("ok").is_some() { None } else { Some(v["err"].as_i64().unwrap_or(0)) })
}

/// Problems of a `state` document against runtime.md "State" for `status`; empty
/// when it conforms.
pub fn state_problems(s: &Value, id: &str, bundle: &str, status: &str) -> Vec<String> {
    let mut p = vec![];
    if !s["ociVersion"].is_string() {
        p.push("ociVersion is not a string".to_string());
    }
    if s["id"] != id {
        p.push(format!("id is {} not {id}", s["id"]));
    }
    if s["status"] != status {
        p.push(format!("status is {} not {status}", s["status"]));
    }
    let needs_pid = status == "created" || status == "running";
    if needs_pid && s["pid"].as_i64().is_none_or(|p| p <= 0) {
        p.push(format!("pid is {} (REQUIRED while {status})", s["pid"]));
    }
    match s["bundle"].as_str() {
        Some(b) if b.starts_with('/') && b.trim_end_matches('/') == bundle.trim_end_matches('/') => {}
        _ => p.push(format!("bundle is {} not the absolute path {bundle}", s["bundle"])),
    }
    if !(s["annotations"].is_null() || s["annotations"].is_object()) {
        p.push("annotations is not a map".into());
    }
    p
}

/// Problems of a `features` document against features.md; empty when it conforms.
pub fn features_problems(f: &Value) -> Vec<String> {
    let mut p = vec![];
    for k in ["ociVersionMin", "ociVersionMax"] {
        if !f[k].is_string() {
            p.push(format!("{k} (REQUIRED) is not a string"));
        }
    }
    let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    for k in ["/hooks", "/mountOptions", "/linux/namespaces", "/linux/capabilities"] {
        if let Some(v) = f.pointer(k) {
            if !strings(v) {
                p.push(format!("{k} is not an array of strings"));
            }
        }
    }
    if let Some(a) = f.get("annotations") {
        if !a.as_object().is_some_and(|m| m.values().all(Value::is_string)) {
            p.push("annotations is not a map of strings".into());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{caps_from_hex, parse_mountinfo_line};
    use serde_json::json;

    fn report(lines: &[&str]) -> Value {
        json!({ "mounts": lines.iter().filter_map(|l| parse_mountinfo_line(l)).collect::<Vec<_>>() })
    }

    const TMPFS: &str = "36 35 0:30 / /mnt/a\\040b rw,nosuid,nodev shared:7 master:2 - tmpfs tmpfs rw,size=1024k";
    const RO: &str = "40 35 0:31 / /ro ro,relatime - ext4 /dev/sda1 rw";

    #[test]
    fn mountinfo_fields_and_escapes() {
        let m = parse_mountinfo_line(TMPFS).unwrap();
        assert_eq!(m["mount_point"], "/mnt/a b");
        assert_eq!(m["fstype"], "tmpfs");
        assert_eq!(m["optional"], json!(["shared:7", "master:2"]));
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn mount_options_must_all_be_present() {
        let r = report(&[TMPFS, RO]);
        assert!(mount_has(&r, "/mnt/a b", &["nosuid", "nodev", "size=1024k"]).is_ok());
        assert!(mount_has(&r, "/mnt/a b", &["noexec"]).is_err());
        assert!(mount_has(&r, "/ro", &["ro"]).is_ok());
        assert!(mount_has(&r, "/missing", &[]).is_err());
    }

    #[test]
    fn topmost_mount_wins_and_propagation_is_read() {
        let r = report(&[RO, "41 35 0:32 / /ro rw - tmpfs tmpfs rw"]);
        assert!(mount_has(&r, "/ro", &["ro"]).is_err());
        assert_eq!(propagation(&report(&[TMPFS]), "/mnt/a b"), Some("shared"));
        assert_eq!(propagation(&r, "/ro"), Some("private"));
        let slave = report(&["1 0 0:1 / /s rw master:3 - tmpfs t rw"]);
        assert_eq!(propagation(&slave, "/s"), Some("slave"));
    }

    #[test]
    fn caps_decode_and_compare_as_sets() {
        assert_eq!(caps_from_hex("0000000000000021"), vec!["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(caps_from_hex("0"), Vec::<String>::new());
        let got = json!(caps_from_hex("21"));
        assert!(same_caps(&got, &json!(["CAP_KILL", "CAP_CHOWN", "CAP_KILL"])).is_ok());
        let e = same_caps(&got, &json!(["CAP_KILL", "CAP_NET_RAW"])).unwrap_err();
        assert!(e.contains("CAP_CHOWN") && e.contains("CAP_NET_RAW"), "{e}");
    }

    #[test]
    fn rlimits_and_op_errnos() {
        let r = json!({ "rlimits": { "RLIMIT_NOFILE": [10, 20] },
                        "ops": { "write:/a": { "ok": true }, "write:/b": { "err": 30 } } });
        assert!(rlimit_is(&r, "RLIMIT_NOFILE", 10, 20).is_ok());
        assert!(rlimit_is(&r, "RLIMIT_NOFILE", 10, 21).is_err());
        assert!(rlimit_is(&r, "RLIMIT_CORE", 0, 0).is_err());
        assert_eq!(op_errno(&r, "write:/a"), Ok(None));
        assert_eq!(op_errno(&r, "write:/b"), Ok(Some(30)));
        assert!(op_errno(&r, "write:/c").is_err());
    }

    #[test]
    fn state_schema() {
        let good = json!({ "ociVersion": "1.0.2", "id": "a", "status": "created", "pid": 5, "bundle": "/b" });
        assert!(state_problems(&good, "a", "/b", "created").is_empty());
        let mut bad = good.clone();
        bad["pid"] = json!(0);
        bad["bundle"] = json!("b");
        assert_eq!(state_problems(&bad, "a", "/b", "running").len(), 3);
        let stopped = json!({ "ociVersion": "1", "id": "a", "status": "stopped", "bundle": "/b", "annotations": {} });
        assert!(state_problems(&stopped, "a", "/b", "stopped").is_empty());
    }

    #[test]
    fn features_schema() {
        assert!(features_problems(
            &json!({ "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0", "hooks": ["prestart"] })
        )
        .is_empty());
        assert_eq!(
            features_problems(&json!({ "ociVersionMin": "1.0.0", "hooks": [1], "annotations": { "a": 1 } })).len(),
            3
        );
    }
}
