//! Cgroups for a rootless caller, with runc's rootless cgroup manager as the model: the
//! container's cgroup is made in every hierarchy the caller may write (a delegated
//! cgroup v2 subtree) and left out of the others (v1, or v2 without delegation), and
//! the container runs without it there. Only a config that needs what was left out
//! is refused: a limit (linux.resources other than devices) or its own
//! linux.cgroupsPath. Device rules are not applied: the kernel gives an unprivileged
//! caller no device controller, and in a user namespace devices are bind-mounted from
//! the host, which already limits them (runc ignores them too).

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

/// True when `e` is the kernel refusing the caller a cgroup directory: no write access
/// (EACCES, EPERM) or a read-only cgroupfs (EROFS, as inside many containers).
pub fn is_denial(e: &Error) -> bool {
    match e {
        Error::Os { source, .. } => {
            matches!(source.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS))
        }
        _ => false,
    }
}

/// Judges the hierarchies [`super::Cgroup::create_permitted`] left out: fine when the
/// config needs nothing from them, else an error naming the field and the directory
/// the caller was refused.
pub fn check_denials(denied: &[Error], resources: &LinuxResources, explicit_path: bool) -> Result<()> {
    let Some(first) = denied.first() else { return Ok(()) };
    let uid = nix::unistd::geteuid();
    if explicit_path {
        return Err(Error::field(
            "linux.cgroupsPath",
            format!("{first}: the cgroup is not delegated to uid {uid} (remove cgroupsPath to run without a cgroup)"),
        ));
    }
    if wants_limits(resources) {
        return Err(Error::field(
            "linux.resources",
            format!(
                "cannot apply limits rootless: {first}: the cgroup is not delegated to uid {uid} \
                 (delegate a cgroup v2 subtree, or remove the limits)"
            ),
        ));
    }
    Ok(())
}

/// True when `resources` sets anything but device rules.
pub fn wants_limits(resources: &LinuxResources) -> bool {
    let mut rest = resources.clone();
    rest.set_devices(None);
    rest != LinuxResources::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    fn denial() -> Error {
        Error::os("create cgroup /sys/fs/cgroup/cpu/strata/c", std::io::Error::from_raw_os_error(libc::EACCES))
    }

    #[test]
    fn only_permission_errors_are_denials() {
        assert!(is_denial(&denial()));
        let rofs = Error::os("create cgroup x", std::io::Error::from_raw_os_error(libc::EROFS));
        assert!(is_denial(&rofs));
        assert!(!is_denial(&Error::os("create cgroup x", std::io::Error::from_raw_os_error(libc::ENOSPC))));
        assert!(!is_denial(&Error::Refused("frozen".into())));
    }

    #[test]
    fn no_cgroup_is_fine_without_limits_and_device_rules_do_not_count() {
        assert!(check_denials(&[], &LinuxResources::default(), true).is_ok());
        let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap();
        let devices_only = LinuxResourcesBuilder::default().devices(vec![deny_all]).build().unwrap();
        assert!(check_denials(&[denial()], &devices_only, false).is_ok());
    }

    #[test]
    fn a_limit_without_a_cgroup_is_refused_naming_the_field_and_directory() {
        let pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap();
        let msg = check_denials(&[denial()], &pids, false).unwrap_err().to_string();
        assert!(msg.contains("linux.resources") && msg.contains("/sys/fs/cgroup/cpu/strata/c"), "{msg}");
        assert!(msg.contains("not delegated"), "{msg}");
    }

    #[test]
    fn an_explicit_cgroups_path_that_cannot_be_made_is_refused() {
        let msg = check_denials(&[denial()], &LinuxResources::default(), true).unwrap_err().to_string();
        assert!(msg.contains("linux.cgroupsPath") && msg.contains("not delegated"), "{msg}");
    }
}
