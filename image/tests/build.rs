//! `strata-image build`: a busybox Containerfile with every config instruction,
//! COPY and RUN builds an image whose config, history and tree are what the file
//! says, and which runs under strata; a rebuild takes every layer from the cache
//! and a changed COPY source rebuilds from that step on; a failing RUN names its
//! line and exit code and leaves no mount, bundle, container or cgroup; multi-stage
//! builds with COPY --from, ADD of a tar and an ignore file.

mod common;
use common::fixture::Fixture;
use common::run::{self, ok, Host};
use common::*;
use std::fs;
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SINGLE: &str = r#"# a comment
FROM {BASE}
ARG GREETING=hello
ENV K=v1 \
    NAME="two words"
LABEL org.example.a=b "other"="x y"
WORKDIR /app
COPY a.txt ./
COPY --chown=1000:1000 --chmod=600 d /data/
RUN echo "$GREETING $NAME from $(pwd)" && ls /app && echo made > /made && rm /etc/group
EXPOSE 8080 53/udp
VOLUME /vol
STOPSIGNAL SIGTERM
USER 1000
ENTRYPOINT ["sh", "-c"]
CMD ["cat /made"]
"#;

#[test]
fn build_config_history_tree_and_run() {
    let t = scratch("build-single");
    let f = Fixture::new(t.path(), "single");
    let ctx = f.context("ctx", SINGLE, &[("a.txt", "a\n"), ("d/sub/f", "deep\n"), ("d/g", "g\n")]);
    let out = f.build(&ctx, "single", &[]);
    ok(&out, "build");
    let text = stdout(&out);
    assert!(text.contains("STEP 1/14: FROM ") && text.contains("STEP 8/14: RUN echo"), "{text}");
    assert!(text.contains("hello two words from /app\na.txt\n"), "RUN output streams, ARG and ENV reach it: {text}");
    f.assert_clean();

    let cfg = f.config("single");
    let c = &cfg["config"];
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "K=v1",
            "NAME=two words"
        ])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /made"]));
    assert_eq!(
        (c["WorkingDir"].as_str(), c["User"].as_str(), c["StopSignal"].as_str()),
        (Some("/app"), Some("1000"), Some("SIGTERM"))
    );
    assert_eq!(c["Labels"], serde_json::json!({"org.example.a": "b", "other": "x y"}));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Volumes"], serde_json::json!({"/vol": {}}));
    let history: Vec<(String, bool)> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["created_by"].as_str().unwrap().to_string(), h["empty_layer"].as_bool().unwrap_or(false)))
        .collect();
    let import = format!("strata-image import {}", t.path().join("busybox.tar").display());
    let want = [
        (import.as_str(), false),
        ("/bin/sh -c #(nop)  ARG GREETING=hello", true),
        ("/bin/sh -c #(nop)  ENV K=v1 NAME=two words", true),
        ("/bin/sh -c #(nop)  LABEL org.example.a=b other=x y", true),
        ("/bin/sh -c #(nop)  WORKDIR /app", false),
        ("COPY a.txt ./", false),
        ("COPY --chown=1000:1000 --chmod=600 d /data/", false),
        ("RUN |1 GREETING=hello /bin/sh -c echo \"$GREETING $NAME from $(pwd)\" && ls /app && echo made > /made && rm /etc/group", false),
        ("/bin/sh -c #(nop)  EXPOSE 8080/tcp 53/udp", true),
        ("/bin/sh -c #(nop)  VOLUME [\"/vol\"]", true),
        ("/bin/sh -c #(nop)  STOPSIGNAL SIGTERM", true),
        ("/bin/sh -c #(nop)  USER 1000", true),
        ("/bin/sh -c #(nop)  ENTRYPOINT [\"sh\",\"-c\"]", true),
        ("/bin/sh -c #(nop)  CMD [\"cat /made\"]", true),
    ];
    assert_eq!(history, want.iter().map(|(s, e)| (s.to_string(), *e)).collect::<Vec<_>>());
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 5, "base + WORKDIR + 2 COPY + RUN");
    let h = Command::new(bin()).args(["history", &f.image("single")]).output().unwrap();
    ok(&h, "history");
    assert!(
        stdout(&h).lines().nth(1).unwrap().ends_with("/bin/sh -c #(nop)  CMD [\"cat /made\"]"),
        "newest first: {}",
        stdout(&h)
    );

    let b = f.unpack("single", &[]);
    let tree = walk(&b.join("rootfs"));
    assert_eq!(tree["app/a.txt"].content, Some(strata_image::digest::of_bytes(b"a\n")));
    let sub = &tree["data/sub/f"];
    assert_eq!((sub.uid, sub.gid, sub.mode), (1000, 1000, 0o600), "--chown and --chmod");
    assert_eq!(
        (tree["data"].uid, tree["data"].mode),
        (1000, 0o755),
        "the destination dir COPY made is --chown's, as buildah makes it"
    );
    assert!(
        tree.contains_key("made") && !tree.contains_key("etc/group") && tree.contains_key("etc/passwd"),
        "RUN's changes, its deletion too"
    );

    let Some(strata) = run::strata_bin() else {
        eprintln!("SKIPPED the run part: no strata binary");
        return;
    };
    let mut host = Host::new(t.path(), strata, "single");
    let out = host.run(&b, &format!("build-single-{}", std::process::id()));
    ok(&out, "strata run of the built image");
    assert_eq!(stdout(&out), "made\n");

    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("SKIPPED the podman part: podman not installed");
        return;
    }
    let archive = t.path().join("single.tar");
    ok(
        &Command::new(bin())
            .args(["save", &f.image("single"), "--archive", "--tag", "strata-build-single", "-o"])
            .arg(&archive)
            .output()
            .unwrap(),
        "save",
    );
    let pmt = scratch("bpm"); // podman wants a runroot path under 50 characters
    let pm = pmt.path().to_path_buf();
    ok(&run::podman(&pm, &host.cgroup_parent, &["load", "-i", archive.to_str().unwrap()]), "podman load");
    let out = run::podman(&pm, &host.cgroup_parent, &["run", "--rm", "localhost/img:strata-build-single"]);
    ok(&out, "podman run of the built image");
    assert_eq!(stdout(&out), "made\n");
}

#[test]
fn build_cache_reuses_layers_and_a_changed_copy_rebuilds_from_there() {
    let t = scratch("build-cache");
    let f = Fixture::new(t.path(), "cache");
    // `cat > /stdin` reads the step's stdin: /dev/null, so it ends at once.
    let cf = "FROM {BASE}\nRUN echo one > /one && cat > /stdin && rm /etc/group && rm -rf /home && mkdir -p /home/x\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-of-a\nENV X=1\n";
    let ctx = f.context("ctx", cf, &[("a.txt", "first\n")]);
    // Our stdin stays open and silent: were it the step's, `cat` would wait forever.
    let mut child = f
        .build_command(&ctx, "c1", &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _open_stdin = child.stdin.take();
    let first = child.wait_with_output().unwrap();
    ok(&first, "cold build");
    assert_eq!(stdout(&first).matches("Using cache").count(), 0);

    let start = std::time::Instant::now();
    let warm = f.build(&ctx, "c2", &[]);
    let took = start.elapsed();
    ok(&warm, "warm build");
    assert_eq!(stdout(&warm).matches("--> Using cache").count(), 3, "every layer from the cache: {}", stdout(&warm));
    assert!(took < std::time::Duration::from_secs(1), "a warm build takes under a second: {took:?}");
    let (c1, c2) = (f.config("c1"), f.config("c2"));
    assert_eq!(c1["rootfs"], c2["rootfs"], "the same layers");
    // The store kept each step's read-write layer as the layer: it must be what
    // extracting the layer blob gives.
    let other = t.path().join("other-store");
    let b = t.path().join("overlay-bundle");
    ok(
        &Command::new(bin())
            .args(["unpack", "--overlay", "--store"])
            .arg(&other)
            .args(["--image", &f.image("c1")])
            .arg(&b)
            .output()
            .unwrap(),
        "unpack --overlay",
    );
    ok(&Command::new(bin()).arg("remove").arg(&b).output().unwrap(), "remove");
    for d in c1["rootfs"]["diff_ids"].as_array().unwrap() {
        let hex = &d.as_str().unwrap()[7..];
        let (kept, extracted) = (t.path().join("store/layers/sha256").join(hex), other.join("layers/sha256").join(hex));
        assert_eq!(walk(&kept), walk(&extracted), "layer {hex}");
    }

    fs::write(ctx.join("a.txt"), "second\n").unwrap();
    let changed = f.build(&ctx, "c3", &[]);
    ok(&changed, "build after a change");
    let text = stdout(&changed);
    let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("STEP") || l.starts_with("-->")).collect();
    assert!(steps[2].starts_with("--> Using cache"), "the RUN before the COPY is cached: {steps:?}");
    assert_eq!(text.matches("Using cache").count(), 1, "COPY and the RUN after it rebuilt: {text}");
    let c3 = f.config("c3");
    let (d1, d3) = (c1["rootfs"]["diff_ids"].as_array().unwrap(), c3["rootfs"]["diff_ids"].as_array().unwrap());
    assert_eq!(d1[..2], d3[..2]);
    assert_ne!(d1[2], d3[2]);
    let b = f.unpack("c3", &[]);
    assert_eq!(fs::read_to_string(b.join("rootfs/copy-of-a")).unwrap(), "second\n");

    let nocache = f.build(&ctx, "c4", &["--no-cache"]);
    ok(&nocache, "--no-cache");
    assert_eq!(stdout(&nocache).matches("Using cache").count(), 0);
    f.assert_clean();
}

#[test]
fn build_a_failed_run_names_its_line_and_exit_code_and_leaves_nothing() {
    let t = scratch("build-fail");
    let f = Fixture::new(t.path(), "fail");
    // What a build killed mid-way leaves (a creator that no longer runs, a working
    // container still mounted) is swept by the next build.
    let stale = t.path().join("store/builds/.tmp-4194304-5-x/s1");
    for d in ["rootfs", "lower", "overlay/upper", "overlay/work"] {
        fs::create_dir_all(stale.join(d)).unwrap();
    }
    strata_image::overlay::mount_overlay(
        &[stale.join("lower")],
        &stale.join("overlay/upper"),
        &stale.join("overlay/work"),
        &stale.join("rootfs"),
    )
    .unwrap();
    let ctx = f.context(
        "ctx",
        "FROM {BASE}\nRUN echo before > /before\nRUN echo output-of-the-failure; \\\n  exit 3\nRUN echo never\n",
        &[],
    );
    let out = f.build(&ctx, "fail", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want =
        format!("{}:3: RUN echo output-of-the-failure;   exit 3: exit code 3", ctx.join("Containerfile").display());
    assert!(err.contains(&want), "{err}");
    assert!(stdout(&out).contains("output-of-the-failure") && !stdout(&out).contains("never"));
    assert!(!stale.exists(), "the stale build dir is swept");
    f.assert_clean();
    let layout = strata_image::layout::Layout::open(t.path().join("img")).unwrap();
    assert!(!layout.tags().unwrap().iter().any(|(tag, _)| tag == "fail"), "no image tagged");

    let ctx = f.context("ctx2", "FROM {BASE}\nCOPY missing.txt /\n", &[]);
    let out = f.build(&ctx, "fail2", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "Containerfile:2: COPY missing.txt /: missing.txt: no such file or directory in the build context"
            ),
        "{err}"
    );
    f.assert_clean();
}

#[test]
fn build_multi_stage_copy_from_add_tar_and_ignore_file() {
    let t = scratch("build-multi");
    let f = Fixture::new(t.path(), "multi");
    let cf = r#"ARG BASE_IMAGE={BASE}
FROM ${BASE_IMAGE} AS builder
ARG FLAVOUR
RUN mkdir -p /out && echo "built $FLAVOUR" > /out/artifact && echo unused > /out/unused && echo "${FLAVOUR-unset}" > /out/flavour
FROM builder AS second
RUN echo second > /out/second

FROM {BASE}
COPY --from=builder /out/artifact /opt/
COPY --from=1 /out/second /opt/second
ADD layer.tar.gz /extracted/
ADD plain.tar /
COPY . /ctx/
"#;
    let ctx = f.context(
        "ctx",
        cf,
        &[("keep.txt", "k\n"), ("skip.log", "s\n"), ("sub/also.log", "s\n"), ("sub/keep.log", "k\n")],
    );
    fs::write(ctx.join(".containerignore"), "*.log\n**/*.log\n!sub/keep.log\n").unwrap();
    fs::write(ctx.join("layer.tar.gz"), {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(
            &mut gz,
            &tar(&[dir("top/"), file("top/f", "in the tar\n").owner(5, 6).mode(0o640), symlink("top/l", "f")]),
        )
        .unwrap();
        gz.finish().unwrap()
    })
    .unwrap();
    fs::write(ctx.join("plain.tar"), tar(&[file("plain-file", "plain\n")])).unwrap();
    let out = f.build(&ctx, "multi", &["--build-arg", "FLAVOUR=fast"]);
    ok(&out, "multi-stage build");
    assert!(stdout(&out).contains("[3/3] STEP"), "{}", stdout(&out));
    f.assert_clean();
    let b = f.unpack("multi", &[]);
    let r = b.join("rootfs");
    assert_eq!(fs::read_to_string(r.join("opt/artifact")).unwrap(), "built fast\n");
    assert_eq!(fs::read_to_string(r.join("opt/second")).unwrap(), "second\n");
    assert!(!r.join("out").exists(), "only what COPY --from took");
    let tree = walk(&r);
    let tf = &tree["extracted/top/f"];
    assert_eq!((tf.uid, tf.gid, tf.mode), (5, 6, 0o640), "ADD extracts a tar as it is");
    assert_eq!(tree["extracted/top/l"].link.as_deref(), Some("f"));
    assert_eq!(fs::read_to_string(r.join("plain-file")).unwrap(), "plain\n");
    let ctx_files: Vec<&String> = tree.keys().filter(|k| k.starts_with("ctx/")).collect();
    assert_eq!(
        ctx_files,
        [
            "ctx/.containerignore",
            "ctx/Containerfile",
            "ctx/keep.txt",
            "ctx/layer.tar.gz",
            "ctx/plain.tar",
            "ctx/sub",
            "ctx/sub/keep.log"
        ],
        "the ignore file applied"
    );

    let again = f.build(&ctx, "multi", &["--build-arg", "FLAVOUR=fast"]);
    ok(&again, "rebuild");
    assert_eq!(stdout(&again).matches("--> Using cache").count(), 7, "every layer of every stage: {}", stdout(&again));
    let other = f.build(&ctx, "multi-other", &["--build-arg", "FLAVOUR=slow"]);
    ok(&other, "another build arg");
    // The builder's RUN sees FLAVOUR; what builds on it, or copies from it, follows.
    assert_eq!(stdout(&other).matches("--> Using cache").count(), 0, "{}", stdout(&other));
    assert_eq!(fs::read_to_string(f.unpack("multi-other", &[]).join("rootfs/opt/artifact")).unwrap(), "built slow\n");

    // --target stops at a stage and tags it.
    let out = f.build(&ctx, "second", &["--target", "second"]);
    ok(&out, "--target");
    let b = f.unpack("second", &[]);
    assert_eq!(fs::read_to_string(b.join("rootfs/out/artifact")).unwrap(), "built \n");
    assert_eq!(
        fs::read_to_string(b.join("rootfs/out/flavour")).unwrap(),
        "unset\n",
        "an ARG without a value is not in RUN's environment"
    );
    f.assert_clean();
}

#[test]
fn build_run_has_no_network_unless_asked() {
    let t = scratch("build-net");
    let f = Fixture::new(t.path(), "net");
    // /proc/net/dev: two header lines, then one line per interface.
    let cf = "FROM {BASE}\nRUN grep -c : /proc/net/dev > /ifaces\nHEALTHCHECK CMD true\n";
    let ctx = f.context("ctx", cf, &[]);
    let out = f.build(&ctx, "none", &[]);
    ok(&out, "build");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEALTHCHECK is not part of the OCI image format: ignored"));
    assert_eq!(
        fs::read_to_string(f.unpack("none", &[]).join("rootfs/ifaces")).unwrap(),
        "1\n",
        "a new network namespace: lo only"
    );
    let out = f.build(&ctx, "host", &["--network", "host"]);
    ok(&out, "build --network host");
    assert!(!stdout(&out).contains("Using cache"), "the network is part of the RUN's cache key");
    let host_ifaces = fs::read_to_string("/proc/net/dev").unwrap().lines().filter(|l| l.contains(':')).count();
    assert_eq!(
        fs::read_to_string(f.unpack("host", &[]).join("rootfs/ifaces")).unwrap(),
        format!("{host_ifaces}\n"),
        "the host's interfaces"
    );
    f.assert_clean();
}

#[test]
fn build_an_interrupted_build_stops_its_run_and_leaves_nothing() {
    let t = scratch("build-int");
    let f = Fixture::new(t.path(), "int");
    let ctx = f.context("ctx", "FROM {BASE}\nRUN echo started; sleep 60\n", &[]);
    let mut child = f
        .build_command(&ctx, "int", &[])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("started") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the RUN started");
    }
    let start = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success() && start.elapsed() < std::time::Duration::from_secs(10), "stopped at once: {status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("Containerfile:2: RUN echo started; sleep 60: interrupted by SIGINT"), "{err}");
    f.assert_clean();
}

#[test]
fn build_from_scratch_run_leaves_no_mount_points_in_its_layer() {
    let t = scratch("build-scratch");
    let f = Fixture::new(t.path(), "scratch");
    let ctx = f.context(
        "ctx",
        "FROM scratch\nCOPY bin /bin\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo hi > /hi\"]\n",
        &[],
    );
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-xf")
        .arg(t.path().join("busybox.tar"))
        .arg("./bin")
        .status()
        .unwrap()
        .success());
    ok(&f.build(&ctx, "scratch", &[]), "build");
    let b = f.unpack("scratch", &[]);
    let top: Vec<String> = fs::read_dir(b.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(top, ["bin", "hi"], "no /proc, /sys, /dev made for the RUN");
    f.assert_clean();
}

#[test]
fn build_large_copy_shows_a_bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no script(1) to give the build a terminal");
        return;
    }
    let t = scratch("build-bar");
    let f = Fixture::new(t.path(), "bar");
    let ctx = f.context("ctx", "FROM {BASE}\nCOPY big /big\n", &[]);
    fs::write(ctx.join("big"), vec![7u8; 40 << 20]).unwrap();
    let cmd = f.build_command(&ctx, "bar", &[]);
    let line: Vec<String> =
        std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
    let out = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    ok(&out, "build on a terminal");
    let text = stdout(&out);
    assert!(text.contains("40.00 MiB/40.00 MiB to /big"), "the bar, full at the end: {text}");
    let piped = f.build(&ctx, "bar2", &["--no-cache"]);
    ok(&piped, "build without a terminal");
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("MiB"), "no bar");
    f.assert_clean();
}

#[test]
fn build_shell_applies_to_run_and_the_shell_forms() {
    let t = scratch("build-shell");
    let f = Fixture::new(t.path(), "shell");
    let ctx =
        f.context("ctx", "FROM {BASE}\nSHELL [\"/bin/sh\", \"-ec\"]\nCMD echo hi\nRUN echo $0 $- > /flags\n", &[]);
    ok(&f.build(&ctx, "shell", &[]), "build");
    assert_eq!(f.config("shell")["config"]["Cmd"], serde_json::json!(["/bin/sh", "-ec", "echo hi"]));
    let flags = fs::read_to_string(f.unpack("shell", &[]).join("rootfs/flags")).unwrap();
    assert!(flags.starts_with("/bin/sh ") && flags.contains('e'), "RUN ran under SHELL: {flags}");
    let ctx = f.context("ctx2", "FROM {BASE}\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN false; echo never > /never\n", &[]);
    let out = f.build(&ctx, "shell2", &[]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains(":3: RUN false; echo never > /never: exit code 1")
    );
    f.assert_clean();
}
