//! `strata-image build`, the newer Containerfile syntax: here-documents, RUN
//! --mount, ADD of URLs (from a server the test runs) and of bzip2/xz tars.
//! Each result is what docker's Dockerfile reference documents; buildah 1.28
//! has no here-documents and no `ADD --checksum`, so those are checked here
//! only; what it does support is also compared in build_buildah.rs.

mod common;
use common::fixture::Fixture;
use common::http;
use common::run::ok;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read(b: &std::path::Path, p: &str) -> String {
    fs::read_to_string(b.join("rootfs").join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

const HEREDOCS: &str = "FROM {BASE}
ARG WHO=world
RUN <<EOF
echo \"one $WHO\" > /one
echo two >> /one
EOF
RUN <<EOF
#!/bin/sh
echo \"script $0 $WHO\" > /script
EOF
RUN cat <<A > /a && cat <<-B > /b
a $WHO
A
\tb
\tB
COPY <<EOF /copied
hello $WHO
EOF
COPY --chmod=755 <<\"EOF\" <<-T /dir/
raw $WHO
EOF
\ttabbed
\tT
";

#[test]
fn build_heredocs_as_docker_documents_them() {
    let t = scratch("build-heredoc");
    let f = Fixture::new(t.path(), "heredoc");
    let ctx = f.context("ctx", HEREDOCS, &[]);
    ok(&f.build(&ctx, "h", &["-q"]), "build");
    f.assert_clean();
    let b = f.unpack("h", &[]);
    // RUN <<EOF: the body is the shell's script; with #! it runs as /dev/pipes/EOF.
    assert_eq!(read(&b, "one"), "one world\ntwo\n");
    assert_eq!(read(&b, "script"), "script /dev/pipes/EOF world\n");
    // Any other line: the shell reads its here-documents (<<- strips tabs).
    assert_eq!((read(&b, "a"), read(&b, "b")), ("a world\n".into(), "b\n".into()));
    // COPY <<EOF: a file, 0644, variables expanded unless the name is quoted.
    assert_eq!(read(&b, "copied"), "hello world\n");
    let tree = walk(&b.join("rootfs"));
    assert_eq!(tree["copied"].mode & 0o7777, 0o644);
    assert_eq!((read(&b, "dir/EOF"), read(&b, "dir/T")), ("raw $WHO\n".into(), "tabbed\n".into()));
    assert_eq!((tree["dir/EOF"].mode & 0o7777, tree["dir/T"].mode & 0o7777), (0o755, 0o755));
    assert!(!tree.keys().any(|k| k.starts_with("dev/pipes")), "the script's mount point is not in the image");

    // The bodies are part of the cache key: the same file is all cache, a changed body reruns.
    let again = f.build(&ctx, "h", &[]);
    ok(&again, "rebuild");
    assert_eq!(String::from_utf8_lossy(&again.stdout).matches("Using cache").count(), 5);
    fs::write(ctx.join("Containerfile"), HEREDOCS.replace("{BASE}", &f.base).replace("two >>", "TWO >>")).unwrap();
    ok(&f.build(&ctx, "h2", &["-q"]), "build changed");
    assert_eq!(read(&f.unpack("h2", &[]), "one"), "one world\nTWO\n");

    let bad = f.context("bad", "FROM {BASE}\nRUN <<EOF\ntrue\nexit 3\nEOF\n", &[]);
    let out = f.build(&bad, "bad", &["-q"]);
    assert!(!out.status.success());
    let want = format!("{}:2: RUN <<EOF: exit code 3", bad.join("Containerfile").display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    let open = f.context("open", "FROM {BASE}\nCOPY <<EOF /x\nnever closed\n", &[]);
    let out = f.build(&open, "open", &["-q"]);
    assert!(
        stderr(&out).contains(":2: COPY <<EOF /x: the here-document <<EOF has no closing EOF line"),
        "{}",
        stderr(&out)
    );
    f.assert_clean();
}

const MOUNTS: &str = "FROM {BASE} AS other
RUN mkdir /out && echo from-stage > /out/f
FROM {BASE}
RUN --mount=type=bind,source=d,target=/mnt/ctx cat /mnt/ctx/sub/f > /from-ctx && ! touch /mnt/ctx/x 2>/dev/null
RUN --mount=type=bind,from=other,source=/out,target=/mnt/st cp /mnt/st/f /from-stage
RUN --mount=type=bind,target=/c,rw echo scribble > /c/a.txt && cat /c/a.txt > /rw
RUN --mount=type=cache,target=/cache,id=c1 echo run >> /cache/log && wc -l < /cache/log > /count
RUN --mount=type=tmpfs,target=/scratch/t,size=1048576 grep ' /scratch/t ' /proc/mounts > /tmpfs-line
";

#[test]
fn build_run_mounts_bind_cache_tmpfs() {
    let t = scratch("build-mounts");
    let f = Fixture::new(t.path(), "mounts");
    let ctx = f.context("ctx", MOUNTS, &[("a.txt", "a\n"), ("d/sub/f", "deep\n")]);
    ok(&f.build(&ctx, "m", &["-q"]), "build");
    f.assert_clean();
    let b = f.unpack("m", &[]);
    assert_eq!(read(&b, "from-ctx"), "deep\n", "a context bind, read-only");
    assert_eq!(read(&b, "from-stage"), "from-stage\n");
    assert_eq!(read(&b, "rw"), "scribble\n");
    assert_eq!(fs::read_to_string(ctx.join("a.txt")).unwrap(), "a\n", "rw: writes are thrown away");
    assert_eq!(read(&b, "count").trim(), "1");
    let line = read(&b, "tmpfs-line");
    assert!(line.starts_with("tmpfs /scratch/t tmpfs ") && line.contains("size=1024k"), "{line}");
    let tree = walk(&b.join("rootfs"));
    // The targets leave the image; parents made for them stay (as buildah leaves them).
    for p in ["mnt/ctx", "mnt/st", "c", "cache", "scratch/t"] {
        assert!(!tree.contains_key(p), "{p}: a mount point left in the image");
    }
    assert_eq!(tree["scratch"].kind, "dir");

    // The cache persists across builds (under the store); a changed bind source reruns its step.
    fs::write(ctx.join("d/sub/f"), "changed\n").unwrap();
    ok(&f.build(&ctx, "m2", &["-q", "--no-cache"]), "rebuild");
    let b2 = f.unpack("m2", &[]);
    assert_eq!(read(&b2, "count").trim(), "2");
    assert_eq!(read(&b2, "from-ctx"), "changed\n");
    let caches: Vec<_> = fs::read_dir(t.path().join("store/build-mounts")).unwrap().flatten().collect();
    assert_eq!(caches.len(), 1);
    assert_eq!(fs::read_to_string(caches[0].path().join("log")).unwrap(), "run\nrun\n");
    f.assert_clean();

    for (spec, what) in [
        ("type=secret,id=x", "type=secret: not supported (bind, cache, tmpfs are)"),
        ("type=bind,source=nope,target=/x", "source=nope: no such file or directory"),
        ("type=cache", "needs target="),
        ("type=tmpfs,target=/t,from=x", "from: not a field of a tmpfs mount"),
    ] {
        let bad = f.context("bad", &format!("FROM {{BASE}}\nRUN --mount={spec} true\n"), &[]);
        let out = f.build(&bad, "bad", &["-q"]);
        assert!(!out.status.success(), "{spec}");
        let want =
            format!("{}:2: RUN --mount={spec} true: --mount={spec}: {what}", bad.join("Containerfile").display());
        assert!(stderr(&out).contains(&want), "{spec}: {}", stderr(&out));
        f.assert_clean();
    }
    // A failing step with an image's tree and a rw overlay mounted: both come down with it.
    let failing = f.context(
        "failing",
        "FROM {BASE}\nRUN --mount=type=bind,from={BASE},target=/img --mount=type=bind,target=/c,rw test -x /img/bin/sh && false\n",
        &[],
    );
    let out = f.build(&failing, "failing", &["-q"]);
    assert!(stderr(&out).contains(":2: RUN --mount=type=bind,from="), "{}", stderr(&out));
    assert!(stderr(&out).trim_end().ends_with(": exit code 1"), "{}", stderr(&out));
    f.assert_clean();
}

#[test]
fn build_add_urls_and_compressed_tars() {
    let t = scratch("build-addurl");
    let f = Fixture::new(t.path(), "addurl");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar(&[file("in-gz", "z\n")])).unwrap();
    let url = http::serve(vec![
        http::File {
            path: "/file.txt",
            body: b"downloaded\n".to_vec(),
            last_modified: "Sun, 06 Nov 1994 08:49:37 GMT",
        },
        http::File { path: "/arch.tar.gz", body: gz.finish().unwrap(), last_modified: "Mon, 30 Nov 2026 10:00:00 GMT" },
    ]);
    let sum = "sha256:a1c9cf75a1bd5cb1a4de4a1a5b09c0f7fa11f1ad8a54ee2ede5be6b0e3e18fd2";
    let good = sha256_hex(b"downloaded\n");
    let cf = format!(
        "FROM {{BASE}}\nADD {url}/file.txt /dl/\nADD --checksum=sha256:{good} {url}/file.txt /checked\n\
         ADD {url}/arch.tar.gz /dl/\nADD files.tar.xz /xz/\nADD files.tar.bz2 /bz/\nADD plain.xz /plain/\n"
    );
    let ctx = f.context("ctx", &cf, &[("plain", "not a tar\n")]);
    fs::write(ctx.join("files.tar"), tar(&[dir("x/"), file("x/f", "in tar\n").mode(0o640)])).unwrap();
    let sh = |s: &str| {
        assert!(std::process::Command::new("sh").arg("-ec").arg(s).current_dir(&ctx).status().unwrap().success())
    };
    sh("xz -k files.tar && bzip2 -k files.tar && xz plain && rm files.tar");
    ok(&f.build(&ctx, "a", &["-q"]), "build");
    f.assert_clean();
    let b = f.unpack("a", &[]);
    let tree = walk(&b.join("rootfs"));
    assert_eq!(read(&b, "dl/file.txt"), "downloaded\n");
    assert_eq!(read(&b, "checked"), "downloaded\n");
    assert_eq!(tree["dl/file.txt"].mode & 0o7777, 0o600, "docker: a URL's file is 0600");
    let mtime = fs::metadata(b.join("rootfs/dl/file.txt")).unwrap().mtime();
    assert_eq!(mtime, 784111777, "the mtime is the server's Last-Modified");
    assert_eq!(tree["dl/arch.tar.gz"].kind, "file", "a downloaded archive is not extracted");
    assert_eq!((read(&b, "xz/x/f"), read(&b, "bz/x/f")), ("in tar\n".into(), "in tar\n".into()));
    assert_eq!(tree["xz/x/f"].mode & 0o7777, 0o640);
    assert_eq!(tree["plain/plain.xz"].kind, "file", "a compressed non-tar is copied as is");

    for (line, what) in [
        (
            format!("ADD --checksum={sum} {url}/file.txt /x"),
            format!("{url}/file.txt: checksum mismatch: sha256:{good}"),
        ),
        (format!("ADD {url}/missing /x"), format!("{url}/missing: http status: 404")),
        (format!("COPY {url}/file.txt /x"), "COPY cannot copy from a URL: use ADD".to_string()),
        ("ADD --checksum=sha256:00 plain.xz /x".to_string(), "--checksum is only for http(s) sources".to_string()),
    ] {
        let bad = f.context("bad", &format!("FROM {{BASE}}\n{line}\n"), &[("plain.xz", "")]);
        let out = f.build(&bad, "bad", &["-q"]);
        assert!(!out.status.success(), "{line}");
        // (a long instruction is shortened in the message: the test matches its two ends)
        let at = format!("{}:2: {}", bad.join("Containerfile").display(), &line[..20]);
        assert!(stderr(&out).contains(&at) && stderr(&out).contains(&format!(": {what}")), "{line}:\n{}", stderr(&out));
        f.assert_clean();
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
