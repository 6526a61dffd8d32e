//! A real distribution, several layers: a debootstrap'ed Debian base, then layers
//! made with umoci that delete files and trees, replace a directory (opaque) and a
//! file by a directory, add hardlinks, change modes and owners. `strata-image
//! unpack` (flatten, and the overlay view) must equal `umoci unpack`, and both
//! bundles must run under `strata run`.
//!
//! Slow: runs only when the base is cached (hack/.cache/debian-bookworm-minbase.tar)
//! or STRATA_SLOW_TESTS=1 (then hack/debian-rootfs debootstraps it: minutes).
//! Otherwise it passes after printing why it skipped.

mod common;
use common::run::{self, ok, Host};
use common::*;
use std::path::Path;
use std::process::Command;

fn sh(script: &str, dir: &Path) {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
}

fn debian_base() -> Option<std::path::PathBuf> {
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack");
    let cached = hack.join(".cache/debian-bookworm-minbase.tar");
    if !cached.exists() {
        if std::env::var("STRATA_SLOW_TESTS").as_deref() != Ok("1") {
            strata_integration::skip(
                file!(),
                &format!(
                    "no cached Debian base at {} (set STRATA_SLOW_TESTS=1 to debootstrap it, minutes)",
                    cached.display()
                ),
            );
            return None;
        }
        let st = Command::new(hack.join("debian-rootfs")).arg(&cached).status().unwrap();
        assert!(st.success(), "hack/debian-rootfs failed");
    }
    Some(cached)
}

fn diff(a: &std::collections::BTreeMap<String, Node>, b: &std::collections::BTreeMap<String, Node>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .take(5)
        .map(|k| format!("{k}: umoci {:?}\n  ours {:?}", a.get(k), b.get(k)))
        .collect()
}

#[test]
fn debian_layers_match_umoci_and_run() {
    let Some(base) = debian_base() else { return };
    let t = scratch("debian");
    let dir = t.path();
    sh(&format!("umoci init --layout img && umoci new --image img:t && umoci unpack --image img:t w >/dev/null \
        && tar --numeric-owner --xattrs --xattrs-include='*' -xpf {} -C w/rootfs && umoci repack --image img:t w && rm -rf w", base.display()), dir);
    // Layer 2: deletions (a file, whole trees), a directory made again with new
    // content (opaque), a file replaced by a directory, hardlinks, modes, owners.
    sh("umoci unpack --image img:t w >/dev/null && cd w/rootfs && rm -rf usr/share/doc usr/share/man etc/cron.daily && rm etc/motd \
        && rm -rf etc/apt/apt.conf.d && mkdir etc/apt/apt.conf.d && echo 'APT::Install-Recommends \"0\";' > etc/apt/apt.conf.d/99norec \
        && rm etc/hostname && mkdir etc/hostname && echo inner > etc/hostname/x \
        && ln usr/bin/dpkg usr/local/bin/dpkg-hardlink && echo app > opt/app && ln opt/app opt/app-link \
        && chmod 4750 opt/app && chown 1000:50 opt/app && mkdir -m 1777 srv/shared \
        && cd ../.. && umoci repack --image img:t w && rm -rf w", dir);
    // Layer 3: delete what layer 2 added, replace a tree of the base, symlinks by a file and a directory.
    sh("umoci unpack --image img:t w >/dev/null && cd w/rootfs && rm -rf etc/hostname opt/app-link usr/share/locale \
        && rm -rf var/lib/dpkg/info && mkdir var/lib/dpkg/info && echo rebuilt > var/lib/dpkg/info/marker \
        && rm etc/rmt && echo not-a-link > etc/rmt && rm etc/dpkg/origins/default && mkdir etc/dpkg/origins/default && echo d > etc/dpkg/origins/default/f && echo layer3 > etc/layer3 \
        && cd ../.. && umoci repack --image img:t w && rm -rf w", dir);
    sh("umoci unpack --image img:t theirs >/dev/null", dir);

    let image = format!("{}:t", dir.join("img").display());
    let flat = dir.join("flat");
    let args = [
        "--",
        "sh",
        "-c",
        ". /etc/os-release; echo $ID $VERSION_CODENAME; cat /etc/layer3; test -e /usr/share/doc || echo no-doc",
    ];
    let cli = |extra: &[&str]| Command::new(bin()).arg("unpack").args(extra).args(args).output().unwrap();
    ok(&cli(&["--image", &image, flat.to_str().unwrap()]), "unpack flatten");
    let ovl = dir.join("ovl");
    let _g = BundleGuard(ovl.clone());
    ok(
        &cli(&["--overlay", "--store", dir.join("store").to_str().unwrap(), "--image", &image, ovl.to_str().unwrap()]),
        "unpack --overlay",
    );

    let theirs = walk(&dir.join("theirs/rootfs"));
    assert!(theirs.len() > 3000, "a Debian tree expected, got {} entries", theirs.len());
    assert!(
        theirs.contains_key("var/lib/dpkg/info/marker")
            && !theirs.contains_key("usr/share/doc")
            && !theirs.contains_key("etc/hostname")
    );
    let d = diff(&theirs, &walk(&flat.join("rootfs")));
    assert!(d.is_empty(), "flatten differs from umoci:\n{}", d.join("\n"));
    let clear = |mut m: std::collections::BTreeMap<String, Node>| {
        m.values_mut().for_each(|n| n.links.clear()); // hardlinks across overlay lowers are copies
        m
    };
    let d = diff(&clear(theirs), &clear(walk(&ovl.join("rootfs"))));
    assert!(d.is_empty(), "overlay view differs from umoci:\n{}", d.join("\n"));

    let Some(strata) = run::strata_bin() else {
        strata_integration::skip(
            file!(),
            "the strata run part: no strata binary (cargo build -p strata, or STRATA_BIN)",
        );
        return;
    };
    let mut host = Host::new(dir, strata, "debian");
    for (b, name) in [(&flat, "flat"), (&ovl, "ovl")] {
        let out = host.run(b, &format!("deb-{}-{name}", std::process::id()));
        ok(&out, name);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "debian bookworm\nlayer3\nno-doc\n", "{name}");
    }
}
