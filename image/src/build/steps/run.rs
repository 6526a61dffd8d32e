//! RUN: the command in the working container through strata's library, with
//! the environment, user, cwd and capabilities a build step gets.

use super::{context, exists_in, user_of, Builder};
use crate::build::cache;
use crate::build::parser::Instruction;
use crate::build::StageState;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// The capabilities docker and buildah give a build step (runc's default has three).
const RUN_CAPS: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

impl Builder<'_> {
    pub(super) fn run(&mut self, st: &mut StageState, i: &Instruction) -> Result<()> {
        for (f, v) in &i.flags {
            match (f.as_str(), v.as_deref()) {
                ("network", Some("host" | "none" | "default")) => {}
                _ => return Err(self.err(i, format!("RUN --{f}: not supported"))),
            }
        }
        let argv = self.command(st, &i.args);
        if argv.is_empty() {
            return Err(self.err(i, "nothing to run"));
        }
        let host_net = match i.flag("network") {
            Some("host") => true,
            Some("none") => false,
            _ => self.opts.network_host,
        };
        // ARG values reach RUN as environment variables; ENV wins over ARG.
        let env = st.env();
        let args: Vec<(String, String)> = st
            .args
            .iter()
            .filter(|(k, _)| !env.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut created_by = String::from("RUN ");
        if !args.is_empty() {
            created_by.push_str(&format!(
                "|{} {} ",
                args.len(),
                args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            ));
        }
        created_by.push_str(&argv.join(" "));
        let key = cache::key(
            &st.key,
            &[&created_by, &json!(env).to_string(), &json!(args).to_string(), if host_net { "host" } else { "" }],
        );
        let workdir = st.workdir();
        self.layer_step(st, i, &key, &created_by, false, &mut |b, s, st| {
            b.make_dirs(s, std::slice::from_ref(&workdir), &user_of(st))?;
            let spec = b.run_spec(st, &s.rootfs(), &argv, &args, host_net)?;
            let id = format!("strata-build-{}-{}", std::process::id(), b.seq);
            let state = b.work.path().join("state");
            // Mount points the runtime makes (/proc, /dev, ... in an image without
            // them) are the container's, not the step's: they leave the layer again.
            let rootfs = s.rootfs();
            let mut made: Vec<Vec<String>> = spec["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["destination"].as_str())
                .map(context::clean)
                .filter(|c| !c.is_empty() && !exists_in(&rootfs, c))
                .collect();
            let code = s.run(&state, &id, &spec)?;
            if code != 0 {
                return Err(b.err(i, format!("exit code {code}")));
            }
            s.unmount()?;
            made.sort_by_key(|c| std::cmp::Reverse(c.len()));
            for c in made {
                let p = c.iter().fold(s.upper(), |p, c| p.join(c));
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => drop(fs::remove_dir(&p)), // only when empty
                    Ok(m) if m.is_file() && m.len() == 0 => drop(fs::remove_file(&p)),
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn run_spec(
        &self,
        st: &StageState,
        rootfs: &Path,
        argv: &[String],
        args: &[(String, String)],
        host_net: bool,
    ) -> Result<Value> {
        let mut cfg = st.config.clone();
        let mut env: Vec<String> = st.env().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        cfg["config"]["Env"] = json!(env);
        if let Some(c) = cfg["config"].as_object_mut() {
            c.remove("Volumes"); // RUN writes into the image, not into fresh volumes
        }
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
        let ic: oci_spec::image::ImageConfiguration =
            serde_json::from_value(cfg).map_err(|e| Error::json("image config", e))?;
        let mut spec = crate::runtime_config::generate(&ic, rootfs, Some(argv))?;
        spec["process"]["cwd"] = json!(st.workdir());
        spec["process"]["terminal"] = json!(false);
        spec["linux"]["cgroupsPath"] =
            json!(format!("/{}/strata-build-{}-{}", self.opts.cgroup_parent, std::process::id(), self.seq));
        if host_net {
            if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
            // The host's name resolution, over the image's files where it has them
            // (a mount point made here would be left in the layer).
            for f in ["etc/resolv.conf", "etc/hosts"] {
                let comps: Vec<String> = f.split('/').map(str::to_string).collect();
                let in_image =
                    context::resolve_in(rootfs, &comps, true).ok().and_then(|p| fs::symlink_metadata(p).ok());
                if in_image.is_some_and(|m| m.is_file()) && Path::new("/").join(f).is_file() {
                    spec["mounts"].as_array_mut().unwrap().push(json!({"destination": format!("/{f}"), "type": "bind", "source": format!("/{f}"), "options": ["rbind", "ro"]}));
                }
            }
        }
        // The capabilities docker and buildah give a build step (runc's default has three).
        let caps = json!(RUN_CAPS.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>());
        spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        spec["annotations"] = json!({});
        Ok(spec)
    }
}
