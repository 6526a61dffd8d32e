//! A build test's world: a busybox base image, contexts, `strata-image build`
//! with a private store and cgroup parent, and the check that a build left
//! nothing behind.

use super::bin;
use super::run::{self, ok};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Fixture {
    pub dir: PathBuf,
    pub base: String,
    pub cgroup_parent: String,
}

impl Fixture {
    pub fn new(dir: &Path, tag: &str) -> Fixture {
        let rootfs = dir.join("busybox");
        let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
        assert!(
            Command::new(hack).arg(&rootfs).stdout(std::process::Stdio::null()).status().unwrap().success(),
            "hack/busybox-rootfs"
        );
        let tar = dir.join("busybox.tar");
        assert!(Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
        fs::remove_dir_all(&rootfs).unwrap();
        let base = format!("{}:base", dir.join("img").display());
        ok(&Command::new(bin()).args(["import", "--image", &base]).arg(&tar).output().unwrap(), "import");
        Fixture {
            dir: dir.to_path_buf(),
            base,
            cgroup_parent: format!("strata-image-test-{}-{tag}", std::process::id()),
        }
    }

    /// A context dir `name` with these files (path, content) and the Containerfile.
    pub fn context(&self, name: &str, containerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.dir.join(name);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Containerfile"), containerfile.replace("{BASE}", &self.base)).unwrap();
        for (p, c) in files {
            let p = ctx.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        ctx
    }

    pub fn build(&self, ctx: &Path, tag: &str, extra: &[&str]) -> Output {
        self.build_command(ctx, tag, extra).stdin(std::process::Stdio::null()).output().unwrap()
    }

    pub fn build_command(&self, ctx: &Path, tag: &str, extra: &[&str]) -> Command {
        let image = format!("{}:{tag}", self.dir.join("img").display());
        let mut c = Command::new(bin());
        c.args(["build", "-t", &image, "--store"])
            .arg(self.dir.join("store"))
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args(extra)
            .arg(ctx);
        c
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.join("img").display())
    }

    /// The image's config (the whole document).
    pub fn config(&self, tag: &str) -> serde_json::Value {
        let img = strata_image::image::open(
            &strata_image::reference::Reference::parse(&self.image(tag)).unwrap(),
            &strata_image::platform::PlatformSpec::host(),
        )
        .unwrap();
        serde_json::from_slice(&img.config_raw).unwrap()
    }

    /// Flatten-unpacks the image; returns the bundle dir.
    pub fn unpack(&self, tag: &str, args: &[&str]) -> PathBuf {
        let b = self.dir.join(format!("bundle-{tag}"));
        let mut c = Command::new(bin());
        c.args(["unpack", "--image", &self.image(tag)]).arg(&b);
        if !args.is_empty() {
            c.arg("--").args(args);
        }
        ok(&c.output().unwrap(), "unpack");
        b
    }

    /// What a build must leave behind: no mount, no working container dir, no cgroup.
    pub fn assert_clean(&self) {
        assert!(run::mounts_under(&self.dir).is_empty(), "mounts left: {:?}", run::mounts_under(&self.dir));
        let builds = self.dir.join("store/builds");
        let left: Vec<_> = fs::read_dir(&builds).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "build dirs left: {left:?}");
        let cgroups = run::cgroups_under(&self.cgroup_parent);
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for m in run::mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for cg in run::cgroups_under(&self.cgroup_parent) {
            let _ = fs::remove_dir(cg);
        }
    }
}
