//! `strata-image unpack --rootless` as a real unprivileged user (made by the
//! test): the flatten tree equals `umoci unpack --rootless`'s for the same
//! multi-layer image (owners kept in `user.rootlesscontainers`, byte for byte;
//! devices as empty files), the bundle runs as that user under rootless runc and strata,
//! and what an unprivileged user cannot do is refused with nothing left behind.
//! Needs umoci, busybox-static, runc, setpriv and shadow's useradd (the host's).

mod common;
use common::umoci_image;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use strata_integration::unprivileged::UnprivilegedUser;

/// The user with a copy of the umoci fixture image of their own (its blobs theirs,
/// as an image they pulled would be), under `~/work`.
fn user_with_image() -> (UnprivilegedUser, PathBuf, String) {
    let user = UnprivilegedUser::new();
    let work = user.home.join("work");
    std::fs::create_dir(&work).unwrap();
    let image = umoci_image::build(&work);
    user.chown(&work);
    (user, work, image)
}

fn as_user(user: &UnprivilegedUser, program: &Path, args: &[&str], dir: &Path) -> Output {
    user.command(program).args(args).current_dir(dir).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `bundle` as `user` under the rootless `runtime` (its state under the
/// user's `$XDG_RUNTIME_DIR`, as runc's rootless default is) and returns the
/// output; checks that the runtime leaves no state behind.
fn run_rootless(user: &UnprivilegedUser, runtime: &Path, bundle: &Path, id: &str) -> Output {
    let name = runtime.file_name().unwrap().to_string_lossy().into_owned();
    let root = user.runtime_dir.join(&name);
    let root_s = root.to_string_lossy().into_owned();
    let out = as_user(user, runtime, &["--root", &root_s, "run", id], bundle);
    let list = as_user(user, runtime, &["--root", &root_s, "list", "-q"], bundle);
    let left = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(!left.lines().any(|l| l == id), "{name} still lists {id} after run");
    assert!(!root.join(id).exists(), "{name} left its state dir {}", root.join(id).display());
    out
}

/// A tar's entries: path -> (type, uid, gid, mode, size, xattrs), times left out.
type TarEntry = (tar::EntryType, u64, u64, u32, u64, Vec<(String, Vec<u8>)>);
fn entries(path: &Path) -> std::collections::BTreeMap<String, TarEntry> {
    let mut out = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = vec![];
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((k.to_string(), x.value_bytes().to_vec()));
                }
            }
        }
        let h = e.header();
        let name = String::from_utf8_lossy(&e.path_bytes()).trim_end_matches('/').to_string();
        let v = (h.entry_type(), h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap(), h.size().unwrap(), xattrs);
        out.insert(name, v);
    }
    out
}

#[test]
fn rootless_unpack_matches_umoci_and_runs_as_the_user() {
    let (user, work, image) = user_with_image();
    let umoci = Path::new("/usr/bin/umoci");
    let o = as_user(&user, umoci, &["unpack", "--rootless", "--image", "img:t", "theirs"], &work);
    assert!(o.status.success(), "umoci unpack --rootless: {}", text(&o));
    // The container prints who it is and what it sees of the files the image
    // gives to other users (in the user namespace they are root's: the caller's).
    // (/dev is the runtime's tmpfs: the empty file standing in for dev/null is under it.)
    let script =
        "id -u; stat -c '%u %g %a %s' home/user/own sealed/second; stat -c '%u %a' sealed; cat sealed/second; \
                  echo made > made-inside";
    let o = as_user(
        &user,
        &bin(),
        &["unpack", "--rootless", "--image", &image, "ours", "--", "sh", "-c", &format!("cd / && {script}")],
        &work,
    );
    assert!(o.status.success(), "strata-image unpack --rootless: {}", text(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("note: dev/null: device 1:3 left as an empty file"), "no note for dev/null: {said}");
    assert!(said.contains("note: dev/sda: device 8:0"), "no note for dev/sda: {said}");

    let theirs = walk(&work.join("theirs/rootfs"));
    let ours = walk(&work.join("ours/rootfs"));
    assert!(theirs.len() > 300, "busybox rootfs expected");
    let diff = umoci_image::differences(&theirs, &ours);
    assert!(diff.is_empty(), "rootless flatten differs from umoci --rootless: {diff:#?}");

    // What the equality covers, seen directly: all files are the user's, the
    // image's owners are in the xattr (uid 1000 gid 1000; 0 stored as the no-op
    // id), devices are empty files, the sealed dir keeps its mode.
    assert!(ours.values().all(|n| n.uid == user.uid && n.gid == user.gid), "a file not owned by the user");
    let xattr = |p: &str| ours[p].xattrs.iter().find(|(k, _)| k == "user.rootlesscontainers").map(|(_, v)| v.clone());
    assert_eq!(xattr("home/user/own"), Some(vec![0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]));
    assert_eq!(xattr("group-only"), Some(vec![0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 42]));
    assert_eq!(xattr("sealed/second"), Some(vec![0x08, 7, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert_eq!(xattr("etc/passwd"), None);
    assert_eq!((ours["dev/null"].kind.as_str(), ours["dev/null"].size), ("file", 0));
    assert_eq!(ours["sealed"].mode, 0o555);
    assert_eq!(ours["usr/bin/suidprog"].mode, 0o4755);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("ours/strata-image.json")).unwrap()).unwrap();
    assert_eq!(meta["rootless"], true);

    // Exported, the rootless bundle says what root's bundle of the same image says:
    // owners from the xattr (which is not exported). Devices stay empty files and
    // security.capability stays out: the two things rootless cannot keep.
    let o = as_user(&user, &bin(), &["export", "ours", "-o", "ours.tar"], &work);
    assert!(o.status.success(), "strata-image export: {}", text(&o));
    let o = std::process::Command::new(bin())
        .args(["unpack", "--image", &image, "rootb"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = std::process::Command::new(bin())
        .args(["export", "rootb", "-o", "root.tar"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (mut exported, mut root_exported) = (entries(&work.join("ours.tar")), entries(&work.join("root.tar")));
    for dev in ["dev/null", "dev/sda"] {
        assert_eq!(exported.remove(dev).map(|e| (e.0, e.4)), Some((tar::EntryType::Regular, 0)));
        root_exported.remove(dev);
    }
    root_exported.get_mut("usr/bin/suidprog").unwrap().5.retain(|(k, _)| k != "security.capability");
    assert_eq!(exported.get("home/user/own").map(|e| (e.1, e.2)), Some((1000, 1000)));
    let diff: Vec<_> = root_exported
        .keys()
        .chain(exported.keys())
        .filter(|k| root_exported.get(*k) != exported.get(*k))
        .map(|k| (k, root_exported.get(k), exported.get(k)))
        .take(5)
        .collect();
    assert!(diff.is_empty(), "rootless export differs from root's: {diff:#?}");

    let runc = PathBuf::from("/usr/sbin/runc");
    let id = format!("rootless-img-{}", std::process::id());
    let o = run_rootless(&user, &runc, &work.join("ours"), &id);
    assert!(o.status.success(), "runc run as {}: {}", user.name, text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n0 0 600 2\n0 0 644 6\n0 555\nlater\n", "{}", text(&o));
    // The same bundle under rootless strata sees the same tree.
    let o = run_rootless(&user, &strata_integration::strata_bin(), &work.join("ours"), &format!("{id}-strata"));
    assert!(o.status.success(), "strata run as {}: {}", user.name, text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n0 0 600 2\n0 0 644 6\n0 555\nlater\n", "{}", text(&o));

    // Committed (runc asked, under the user's own runc root, for containers to pause),
    // the file root made in the container is root's in the new layer, and the
    // image's other owners are unchanged.
    let o = as_user(&user, &bin(), &["commit", "--runtime", "/usr/sbin/runc", "ours", "--image", "img:t2"], &work);
    assert!(o.status.success(), "strata-image commit as {}: {}", user.name, text(&o));
    let o = std::process::Command::new(bin())
        .args(["unpack", "--image", &format!("{}/img:t2", work.display()), "committed"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let committed = walk(&work.join("committed/rootfs"));
    let owner = |p: &str| (committed[p].uid, committed[p].gid, committed[p].kind.clone());
    assert_eq!(owner("made-inside"), (0, 0, "file".into()));
    assert_eq!(owner("home/user/own"), (1000, 1000, "file".into()));
    assert_eq!(owner("sealed/second"), (7, 0, "file".into()));

    // The user can remove the bundle, sealed directory and all.
    let o = as_user(&user, &bin(), &["remove", "ours"], &work);
    assert!(o.status.success(), "strata-image remove: {}", text(&o));
    assert!(!work.join("ours").exists());
    user.assert_nothing_left();
}

#[test]
fn a_failed_rootless_unpack_leaves_nothing_even_with_sealed_dirs() {
    let user = UnprivilegedUser::new();
    let work = user.home.join("work");
    let l1 = tar(&[dir("sealed").mode(0o555), file("sealed/f", "x")]);
    let l2 = tar(&[file("sealed/g", "y").owner(5, 5)]);
    image(&work.join("img"), "t", &[l1, l2.clone()], strata_image::writer::Compression::None, |_| {});
    // The second layer's blob no longer matches its digest: noticed at its end,
    // after its entries were written into the sealed directory.
    let hex = strata_image::digest::of_bytes(&l2).trim_start_matches("sha256:").to_string();
    let blob = work.join("img/blobs/sha256").join(&hex);
    let mut bytes = std::fs::read(&blob).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    user.chown(&work);
    let before: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().file_name()).collect();

    let o = as_user(&user, &bin(), &["unpack", "--rootless", "--image", "img:t", "b"], &work);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&hex[..12]) && err.lines().count() == 1, "the error names the blob: {err}");
    let after: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "a failed rootless unpack left something beside the bundle");
    user.assert_nothing_left();
}

#[test]
fn an_unprivileged_user_is_told_what_it_cannot_do_and_nothing_is_left() {
    let (user, work, image) = user_with_image();
    let before: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().file_name()).collect();
    let cases: [(&[&str], &str); 4] = [
        (&["build", "-t", "img:built", "."], "build needs root"),
        (&["unpack", "--image", &image, "b1"], "as an unprivileged user pass --rootless"),
        (&["unpack", "--overlay", "--image", &image, "b2"], "as an unprivileged user pass --rootless"),
        (
            &["unpack", "--rootless", "--overlay", "--store", "st", "--image", &image, "b3"],
            "--overlay with --rootless: an unprivileged user's overlay mount exists only inside its own user and mount namespace",
        ),
    ];
    for (args, want) in cases {
        let o = as_user(&user, &bin(), args, &work);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let after: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "a refused unpack left something in the work dir");
    assert!(!user.home.join(".local/share/strata-image").exists(), "the refused overlay made a default store");

    // The default store of an unprivileged caller is theirs (XDG data dir), not /var/lib.
    let o = as_user(&user, &bin(), &["du", "--store"], &work);
    let want = format!("store {}/.local/share/strata-image: no layer store there", user.home.display());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&want), "{}", text(&o));
    let o = user.command(bin()).args(["du", "--store"]).env("XDG_DATA_HOME", "/nonexistent/data").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("store /nonexistent/data/strata-image:"), "{}", text(&o));
    user.assert_nothing_left();
}
