//! The container process's identity: supplementary groups, gid, uid and umask, and
//! user-name lookups for `state`'s owner field.

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
use oci_spec::runtime::User;

use crate::error::{Context, Result};

/// Switches to `user`. Capabilities survive through PR_SET_KEEPCAPS, which the caller
/// sets; setgroups is skipped where a user namespace forbids it.
pub fn switch_to(user: &User) -> Result<()> {
    let gids: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    match setgroups(&gids) {
        Ok(()) => {}
        // /proc/PID/setgroups is "deny" in this user namespace: only allowed with none.
        Err(nix::errno::Errno::EPERM) if gids.is_empty() && setgroups_denied() => {}
        Err(e) => return Err(e).ctx(|| "setgroups (process.user.additionalGids)"),
    }
    // setgid/setuid, not setres*id: with CAP_SETGID/CAP_SETUID they set all three ids
    // alike, and they are the calls runc's init makes under the seccomp filter.
    setgid(Gid::from_raw(user.gid())).ctx(|| format!("setgid {} (process.user.gid)", user.gid()))?;
    setuid(Uid::from_raw(user.uid())).ctx(|| format!("setuid {} (process.user.uid)", user.uid()))?;
    Ok(())
}

/// Applies process.user.umask (runc's default is 0022).
pub fn apply_umask(user: &User) {
    let mask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
}

fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// The host's name for `uid`, from /etc/passwd.
pub fn name_of_uid(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}
