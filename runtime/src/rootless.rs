//! Whether strata runs rootless, and what follows from it before any container exists:
//! the default state root and whether cgroups are best-effort. The rules are runc's
//! (`shouldHonorXDGRuntimeDir`, `shouldUseRootlessCgroupManager`), so an engine that
//! calls runc rootless gets the same answers from strata.

use std::path::PathBuf;

/// The state root when root runs strata in the initial user namespace.
pub const SYSTEM_ROOT: &str = "/run/strata";

/// What the caller is, read once from the process and its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub euid: u32,
    /// The process runs in a user namespace other than the initial one.
    pub in_user_ns: bool,
    pub xdg_runtime_dir: Option<String>,
    /// `$USER`, None when unset.
    pub user: Option<String>,
}

impl Caller {
    /// Read once per process (a /proc read): create asks, and so do `--root`'s default
    /// and exec's plan, and none of it changes while the process runs.
    pub fn current() -> &'static Caller {
        static CALLER: std::sync::OnceLock<Caller> = std::sync::OnceLock::new();
        CALLER.get_or_init(Caller::read)
    }

    fn read() -> Caller {
        Caller {
            euid: nix::unistd::geteuid().as_raw(),
            in_user_ns: running_in_user_ns(),
            xdg_runtime_dir: std::env::var("XDG_RUNTIME_DIR").ok().filter(|d| !d.is_empty()),
            user: std::env::var("USER").ok(),
        }
    }

    /// True when strata has no say over the host's cgroups: an unprivileged user, or
    /// root inside a user namespace (rootless podman calls its runtime so). Cgroups are
    /// then used where writable and skipped where not (runc's rootless cgroup manager).
    pub fn is_rootless(&self) -> bool {
        self.euid != 0 || self.in_user_ns
    }

    /// runc's rule: `$XDG_RUNTIME_DIR` holds the state of an unprivileged caller, and of
    /// root in a user namespace unless `$USER` says root (a real root login keeps
    /// /run/strata even when its session sets XDG_RUNTIME_DIR=/run/user/0).
    pub fn honors_xdg_runtime_dir(&self) -> bool {
        if self.xdg_runtime_dir.is_none() {
            return false;
        }
        if self.euid != 0 {
            return true;
        }
        self.in_user_ns && self.user.as_deref() != Some("root")
    }

    /// The state root when `--root` is not given.
    pub fn default_root(&self) -> PathBuf {
        match &self.xdg_runtime_dir {
            Some(dir) if self.honors_xdg_runtime_dir() => PathBuf::from(dir).join("strata"),
            _ => PathBuf::from(SYSTEM_ROOT),
        }
    }
}

/// Makes the `$XDG_RUNTIME_DIR` state root 0700 with the sticky bit, as runc does: the
/// XDG spec lets a session's cleaner remove files unused for 6 hours unless the sticky
/// bit is set, and a long-running container's state must survive it.
pub fn prepare_xdg_root(root: &std::path::Path) -> crate::Result<()> {
    use crate::error::Context;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .ctx(|| format!("create state root {}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1700))
        .ctx(|| format!("chmod state root {}", root.display()))
}

/// True when /proc/self/uid_map is not the initial namespace's identity map
/// ("0 0 4294967295"), as runc's `userns.RunningInUserNS` decides.
pub fn running_in_user_ns() -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else { return false };
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(euid: u32, in_user_ns: bool, xdg: Option<&str>, user: Option<&str>) -> Caller {
        Caller { euid, in_user_ns, xdg_runtime_dir: xdg.map(Into::into), user: user.map(Into::into) }
    }

    #[test]
    fn an_unprivileged_user_keeps_state_in_its_runtime_dir() {
        let c = caller(1000, false, Some("/run/user/1000"), Some("alice"));
        assert!(c.is_rootless());
        assert_eq!(c.default_root(), PathBuf::from("/run/user/1000/strata"));
    }

    #[test]
    fn without_xdg_runtime_dir_the_system_root_is_the_default() {
        assert_eq!(caller(1000, false, None, None).default_root(), PathBuf::from(SYSTEM_ROOT));
    }

    #[test]
    fn root_on_the_host_is_unchanged_even_with_a_session_runtime_dir() {
        let c = caller(0, false, Some("/run/user/0"), Some("root"));
        assert!(!c.is_rootless());
        assert_eq!(c.default_root(), PathBuf::from(SYSTEM_ROOT));
    }

    #[test]
    fn root_in_a_user_namespace_is_rootless_unless_user_says_root() {
        let podman = caller(0, true, Some("/run/user/1000"), Some("alice"));
        assert!(podman.is_rootless());
        assert_eq!(podman.default_root(), PathBuf::from("/run/user/1000/strata"));
        let unset = caller(0, true, Some("/run/user/1000"), None);
        assert_eq!(unset.default_root(), PathBuf::from("/run/user/1000/strata"));
        let root = caller(0, true, Some("/run/user/0"), Some("root"));
        assert_eq!(root.default_root(), PathBuf::from(SYSTEM_ROOT));
    }
}
