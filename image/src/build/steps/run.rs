//! RUN: the command in the working container through strata's library, with
//! the environment, user, cwd and capabilities a build step gets, its
//! `--mount`s (steps/mounts) and its here-documents.

use super::{context, exists_in, user_of, Builder};
use crate::build::cache;
use crate::build::parser::{Heredoc, Instruction};
use crate::build::StageState;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
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
                ("network", Some("host" | "none" | "default")) | ("mount", Some(_)) => {}
                _ => return Err(self.err(i, format!("RUN --{f}: not supported"))),
            }
        }
        let (argv, script) = self.run_argv(st, i)?;
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
        let mut mounts = self.run_mounts(st, i)?;
        if let Some(h) = &script {
            // BuildKit's place for a `#!` here-document: a read-only file in /dev/pipes.
            let dir = self.work.path().join(format!("pipes{}", self.seq));
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let file = dir.join(&h.name);
            fs::write(&file, h.content()).map_err(|e| Error::io(&file, e))?;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&file, e))?;
            mounts.specs.push(json!({"destination": format!("/dev/pipes/{}", h.name), "type": "bind", "source": file, "options": ["rbind", "ro"]}));
            mounts.key.push(h.content());
        }
        let mut parts = vec![
            created_by.clone(),
            json!(env).to_string(),
            json!(args).to_string(),
            if host_net { "host" } else { "" }.into(),
        ];
        parts.extend(mounts.key.iter().cloned());
        let key = cache::key(&st.key, &parts.iter().map(String::as_str).collect::<Vec<_>>());
        let workdir = st.workdir();
        let r = self.layer_step(st, i, &key, &created_by, false, &mut |b, s, st| {
            b.make_dirs(s, std::slice::from_ref(&workdir), &user_of(st))?;
            let mut spec = b.run_spec(st, &s.rootfs(), &argv, &args, host_net)?;
            spec["mounts"].as_array_mut().unwrap().extend(mounts.specs.iter().cloned());
            let id = format!("strata-build-{}-{}", std::process::id(), b.seq);
            let state = b.work.path().join("state");
            // Mount points the runtime makes (/proc, /dev, ... in an image without
            // them, a --mount's target) are the container's, not the step's: they
            // leave the layer again when the step left them empty. Parents made for
            // them stay, as under buildah.
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
        });
        drop(mounts);
        r
    }

    /// RUN's command: the exec or the shell form; with here-documents as BuildKit
    /// runs them: a lone `<<EOF` runs its body through the shell, or, when the
    /// body starts with `#!`, as a script (returned, for /dev/pipes/EOF); any other
    /// line goes to the shell with its here-documents after it, for the shell to read.
    fn run_argv(&self, st: &StageState, i: &Instruction) -> Result<(Vec<String>, Option<Heredoc>)> {
        if i.heredocs.is_empty() {
            return Ok((self.command(st, &i.args), None));
        }
        let lone = i.heredocs.len() == 1 && Heredoc::marker(i.args.trim()).is_some();
        if lone {
            let h = &i.heredocs[0];
            if h.content().starts_with("#!") {
                return Ok((vec![format!("/dev/pipes/{}", h.name)], Some(h.clone())));
            }
            return Ok((st.shell.iter().cloned().chain([h.content()]).collect(), None));
        }
        let mut full = i.args.clone();
        for h in &i.heredocs {
            full.push('\n');
            full.push_str(&h.body);
            full.push_str(&h.name);
        }
        Ok((st.shell.iter().cloned().chain([full]).collect(), None))
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
