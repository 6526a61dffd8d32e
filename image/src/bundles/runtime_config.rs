//! config.json from an image config, on top of the defaults `strata spec` prints,
//! following image-spec conversion.md.

use crate::error::Result;
use crate::passwd;
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};
use std::path::Path;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// strata's own default (`strata spec`, or `strata spec --rootless`), adjusted the
/// way umoci's bundles are: no terminal, a writable root, and the default
/// capabilities also ambient.
fn base_spec(rootless: bool) -> Value {
    let mut spec = strata::spec::default_spec(rootless);
    spec["process"]["terminal"] = json!(false);
    spec["root"]["readonly"] = json!(false);
    let caps = spec["process"]["capabilities"]["bounding"].clone();
    spec["process"]["capabilities"]["ambient"] = caps;
    spec
}

/// Builds config.json for an image whose rootfs is at `rootfs` (users are
/// resolved there). `args` overrides Entrypoint+Cmd when given.
pub fn generate(image: &ImageConfiguration, rootfs: &Path, args: Option<&[String]>) -> Result<Value> {
    generate_for(image, rootfs, args, false)
}

/// `generate`; with `rootless`, for a rootless runtime run by the caller: runc's
/// `spec --rootless` base (the caller mapped to root in a user namespace, no
/// network namespace, /sys bound from the host) and, as umoci's, no additional
/// groups (only the caller's one gid is mapped).
pub fn generate_for(
    image: &ImageConfiguration,
    rootfs: &Path,
    args: Option<&[String]>,
    rootless: bool,
) -> Result<Value> {
    let mut spec = base_spec(rootless);
    let empty = Default::default();
    let c = image.config().as_ref().unwrap_or(&empty);
    let p = &mut spec["process"];

    let argv: Vec<String> = match args {
        Some(a) if !a.is_empty() => a.to_vec(),
        _ => {
            c.entrypoint().clone().unwrap_or_default().into_iter().chain(c.cmd().clone().unwrap_or_default()).collect()
        }
    };
    // Without Entrypoint and Cmd the default `sh` stays, as umoci does.
    if !argv.is_empty() {
        p["args"] = json!(argv);
    }

    let mut env: Vec<String> = vec![DEFAULT_PATH.into(), "TERM=xterm".into()];
    for e in c.env().clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(&key));
        env.push(e);
    }
    if let Some(cwd) = c.working_dir().as_ref().filter(|w| !w.is_empty()) {
        p["cwd"] = json!(cwd);
    }

    let user = passwd::resolve(rootfs, c.user().as_deref().unwrap_or(""))?;
    p["user"] = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() && !rootless {
        p["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| "/".into())));
    }
    p["env"] = json!(env);

    let mut ann = serde_json::Map::new();
    for (k, v) in c.labels().clone().unwrap_or_default() {
        ann.insert(k, json!(v));
    }
    ann.insert("org.opencontainers.image.os".into(), json!(image.os().to_string()));
    ann.insert("org.opencontainers.image.architecture".into(), json!(image.architecture().to_string()));
    if let Some(a) = image.author() {
        ann.insert("org.opencontainers.image.author".into(), json!(a));
    }
    if let Some(t) = image.created() {
        ann.insert("org.opencontainers.image.created".into(), json!(t));
    }
    if let Some(s) = c.stop_signal() {
        ann.insert("org.opencontainers.image.stopSignal".into(), json!(s));
    }
    let mut ports: Vec<String> = c.exposed_ports().clone().unwrap_or_default();
    ports.sort();
    if !ports.is_empty() {
        ann.insert("org.opencontainers.image.exposedPorts".into(), json!(ports.join(",")));
    }
    let mut volumes: Vec<String> = c.volumes().clone().unwrap_or_default();
    volumes.sort();
    if !volumes.is_empty() {
        ann.insert("org.opencontainers.image.volumes".into(), json!(volumes.join(",")));
    }
    // Volumes get a fresh tmpfs so application data never lands in the rootfs.
    for v in &volumes {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": v, "type": "tmpfs", "source": "none",
            "options": ["rw", "nosuid", "nodev", "noexec", "relatime"]
        }));
    }
    spec["annotations"] = Value::Object(ann);
    Ok(spec)
}
