//! `strata-image build` against `buildah bud`: the same Containerfiles (a
//! single-stage busybox one, multi-stage with COPY --from, ENV/ARG/USER/WORKDIR,
//! ADD of a tar, RUN as a user with globbed COPY and a .dockerignore, a RUN that
//! deletes files of a lower layer, RUN --mount of each type, ADD of URLs from a
//! server the test runs and of xz/bzip2 tars) built by both give
//! the same unpacked tree (type, mode, owner, size, content, link target, xattrs;
//! `common::walk` leaves mtimes out) and the same config. Needs buildah (skipped
//! without); buildah runs RUN with runc in chroot isolation.

mod common;
use common::run::{mounts_under, ok};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        for m in mounts_under(self.0) {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

// Not compared: SHELL, which buildah ignores for OCI images (docker format only) and
// strata-image applies as docker does (to RUN, and to CMD/ENTRYPOINT's shell form).
const CASES: &[(&str, &str)] = &[
    (
        "single",
        "ARG BASE\nFROM $BASE\nLABEL org.example.a=b\nCOPY a.txt /a.txt\nCOPY --chown=1000:1000 d /data/\nCOPY --chmod=700 a.txt /bin/tool\n\
         RUN echo made > /made && mkdir -p /var/x && chmod 1777 /var/x && ln -s /made /var/x/link\nEXPOSE 80 53/udp\nCMD [\"sh\"]\n",
    ),
    (
        "multistage",
        "ARG BASE\nFROM $BASE AS builder\nRUN mkdir -p /out/sub && echo artifact > /out/sub/f && ln /out/sub/f /out/hard\n\
         FROM $BASE\nCOPY --from=builder /out /opt/out\nCOPY --from=builder /out/sub/f /usr/local/bin/\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"cat /opt/out/sub/f\"]\n",
    ),
    (
        "envarg",
        "ARG BASE\nFROM $BASE\nARG WHO=world\nARG UNUSED\nENV GREETING=\"hello $WHO\" PATH=/opt/bin:$PATH\nWORKDIR /srv/app\nWORKDIR sub\n\
         RUN echo \"$GREETING\" > greeting && mkdir -p /home/user && chown 1000:1000 /home/user\nUSER 1000:1000\nCOPY a.txt .\n",
    ),
    ("addtar", "ARG BASE\nFROM $BASE\nADD files.tar /unpacked/\nADD files.tar.gz /gz\nRUN ls -R /unpacked /gz > /listing\n"),
    (
        "userglob",
        "ARG BASE\nFROM $BASE\nUSER 1000:1000\nWORKDIR /tmp/work\nRUN touch mine && mkdir sub && echo x > sub/f\nUSER 0\n\
         COPY *.txt d/sub/* /globbed/\nCOPY . /all/\nCOPY a.txt /renamed.txt\n",
    ),
    (
        "config",
        "ARG BASE\nFROM $BASE\nARG VER=1.0\nLABEL version=$VER \"multi word\"=\"a b\"\nENTRYPOINT echo hi\n\
         CMD [\"arg\"]\nEXPOSE 8000 9/udp\nVOLUME [\"/data\", \"/logs\"]\nSTOPSIGNAL SIGKILL\nUSER nobody\nENV A=1 B=\"$VER x\"\n",
    ),
    (
        "mounts",
        "ARG BASE\nFROM $BASE AS other\nRUN mkdir /out && echo from-stage > /out/f\nFROM $BASE\n\
         RUN --mount=type=bind,source=d,target=/mnt/ctx cat /mnt/ctx/sub/f > /from-ctx\n\
         RUN --mount=type=bind,from=other,source=/out,target=/mnt/st cp /mnt/st/f /from-stage\n\
         RUN --mount=type=cache,target=/cache,id={CACHE_ID} echo run >> /cache/log && cat /cache/log > /cached\n\
         RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /tmpfs-saw\n",
    ),
    (
        "addurl",
        "ARG BASE\nFROM $BASE\nADD {URL}/file.txt /dl/\nADD {URL}/file.txt /renamed\nADD {URL}/arch.tar.gz /dl/\n\
         ADD files.tar.xz /xz/\nADD files.tar.bz2 /bz/\n",
    ),
    (
        "deletes",
        "ARG BASE\nFROM $BASE\nRUN rm -rf /etc/group /usr /bin/vi && mkdir -p /etc/new && echo x > /etc/new/f\nRUN rm -rf /etc/new && echo again > /etc/group\n",
    ),
];

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The config fields the two builders must agree on (buildah's own version label left out).
fn config_of(layout: &Path, tag: &str) -> serde_json::Value {
    let r = strata_image::reference::Reference::parse(&format!("{}:{tag}", layout.display())).unwrap();
    let img = strata_image::image::open(&r, &strata_image::platform::PlatformSpec::host()).unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_raw).unwrap();
    let mut c = serde_json::json!({});
    for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes", "StopSignal"] {
        let mut v = cfg["config"][k].clone();
        if k == "Labels" {
            if let Some(o) = v.as_object_mut() {
                o.remove("io.buildah.version");
            }
            if v.as_object().is_some_and(|o| o.is_empty()) {
                v = serde_json::Value::Null;
            }
        }
        if v.as_str() == Some("") || v.as_array().is_some_and(|a| a.is_empty()) {
            v = serde_json::Value::Null;
        }
        c[k] = v;
    }
    c
}

#[test]
fn builds_like_buildah_bud() {
    if Command::new("buildah").arg("--version").output().is_err() {
        eprintln!("SKIPPED: buildah not installed (apt-get install buildah)");
        return;
    }
    let t = scratch("build-buildah");
    let dir = t.path();
    let _u = Unmount(dir);
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    sh(&format!("{} r >/dev/null && tar -C r -cf r.tar . && rm -rf r", hack.display()), dir);
    let base = format!("oci:{}:base", dir.join("img").display());
    ok(
        &Command::new(bin()).args(["import", "--image", &base[4..], "r.tar"]).current_dir(dir).output().unwrap(),
        "import",
    );
    // TMPDIR: buildah keeps cache mounts in $TMPDIR/buildah-cache: the test's dir, not /var/tmp.
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let b = format!(
        "TMPDIR={0}/tmp buildah --root {0}/bs/root --runroot {0}/bs/runroot --storage-driver vfs",
        dir.display()
    );
    // The same Containerfiles for both: FROM $BASE, buildah's base pulled into its store first.
    sh(
        &format!(
            "skopeo copy -q {base} 'containers-storage:[vfs@{0}/bs/root+{0}/bs/runroot]localhost/strata-base'",
            dir.display()
        ),
        dir,
    );
    let cgroup_parent = format!("strata-image-test-{}-buildah", std::process::id());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar(&[file("in-gz", "z\n")])).unwrap();
    let url = common::http::serve(vec![
        common::http::File {
            path: "/file.txt",
            body: b"downloaded\n".to_vec(),
            last_modified: "Sun, 06 Nov 1994 08:49:37 GMT",
        },
        common::http::File {
            path: "/arch.tar.gz",
            body: gz.finish().unwrap(),
            last_modified: "Mon, 30 Nov 2026 10:00:00 GMT",
        },
    ]);
    // Both builders keep cache mounts across builds: an id of our own.
    let cache_id = format!("strata-image-test-{}", std::process::id());
    let mut failures = vec![];
    for (name, cf) in CASES {
        let ctx = dir.join(format!("ctx-{name}"));
        fs::create_dir_all(ctx.join("d/sub")).unwrap();
        fs::write(ctx.join("Containerfile"), cf.replace("{URL}", &url).replace("{CACHE_ID}", &cache_id)).unwrap();
        fs::write(ctx.join("a.txt"), "a\n").unwrap();
        fs::write(ctx.join("d/sub/f"), "deep\n").unwrap();
        fs::write(ctx.join("d/top"), "top\n").unwrap();
        fs::write(ctx.join("b.txt"), "b\n").unwrap();
        fs::write(ctx.join("README.md"), "ignored\n").unwrap();
        fs::write(ctx.join(".dockerignore"), "d/top\n*.md\n").unwrap();
        let entries = [
            dir_("x/"),
            file("x/f", "in tar\n").owner(3, 4).mode(0o640),
            symlink("x/l", "f"),
            hardlink("x/h", "x/f").owner(3, 4).mode(0o640),
            file("root-file", "r\n").mode(0o755),
        ];
        fs::write(ctx.join("files.tar"), tar(&entries)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar(&entries)).unwrap();
        fs::write(ctx.join("files.tar.gz"), gz.finish().unwrap()).unwrap();
        sh("xz -k files.tar && bzip2 -k files.tar", &ctx);

        let ours = format!("{}:{name}", dir.join("ours").display());
        let out = Command::new(bin())
            .args(["build", "-q", "-t", &ours, "--build-arg", &format!("BASE={base}"), "--store"])
            .arg(dir.join("store"))
            .args(["--cgroup-parent", &cgroup_parent])
            .arg(&ctx)
            .output()
            .unwrap();
        ok(&out, &format!("{name}: strata-image build"));
        let (c, d) = (ctx.display(), dir.display());
        sh(&format!("{b} bud -q --pull=never --build-arg BASE=localhost/strata-base --runtime /usr/sbin/runc --isolation chroot -t {name} {c} >/dev/null && {b} push -q {name} oci:{d}/theirs:{name}"), dir);

        for who in ["ours", "theirs"] {
            let out = Command::new(bin())
                .args(["unpack", "--image", &format!("{}:{name}", dir.join(who).display())])
                .arg(dir.join(format!("{who}-{name}")))
                .output()
                .unwrap();
            ok(&out, &format!("{name}: unpack {who}"));
        }
        let (mine, theirs) =
            (walk(&dir.join(format!("ours-{name}/rootfs"))), walk(&dir.join(format!("theirs-{name}/rootfs"))));
        let diff = buildah_tree_diff(&mine, theirs, 8);
        if !diff.is_empty() {
            failures.push(format!("{name}: trees differ:\n{}", diff.join("\n")));
        }
        let (c1, c2) = (config_of(&dir.join("ours"), name), config_of(&dir.join("theirs"), name));
        if c1 != c2 {
            failures.push(format!("{name}: configs differ:\n buildah {c2}\n strata  {c1}"));
        }
    }
    for cg in common::run::cgroups_under(&cgroup_parent) {
        let _ = fs::remove_dir(cg);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn dir_(name: &str) -> E {
    common::dir(name)
}
