//! Loading and validating a bundle's config.json. Everything here runs before the
//! runtime touches the system, so a bad config leaves nothing behind; every error names
//! the file or the field (`linux.namespaces[2].path`) at fault.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A bundle whose config has been parsed and checked.
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem (root.path resolved against the bundle).
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `<bundle>/config.json` and validates it for `create`.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).map_err(|e| Error::Config {
        file: bundle.to_path_buf(),
        message: format!("bundle directory: {}", io_reason(&e)),
    })?;
    let file = dir.join("config.json");
    let spec = parse_spec_file(&file)?;
    let rootfs = validate(&spec, &dir)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Parses a config.json, reporting the JSON path of a field that doesn't fit the schema.
pub fn parse_spec_file(file: &Path) -> Result<Spec> {
    let bytes = std::fs::read(file).map_err(|e| Error::Config { file: file.to_path_buf(), message: io_reason(&e) })?;
    parse_spec(&bytes).map_err(|message| Error::Config { file: file.to_path_buf(), message })
}

/// Parses config.json bytes; the error names the field path and the line. Capability
/// names this runtime doesn't know are left out with a warning (config.md: runtimes
/// SHOULD NOT fail for them); that slower path runs only when the strict parse fails.
pub fn parse_spec(bytes: &[u8]) -> std::result::Result<Spec, String> {
    match parse_strict(bytes) {
        Err(e) if e.starts_with("process.capabilities.") => {
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Err(e) };
            if !drop_unknown_caps(&mut v) {
                return Err(e);
            }
            parse_strict(&serde_json::to_vec(&v).map_err(|e| e.to_string())?)
        }
        r => r,
    }
}

/// Removes unknown names from every capability set, warning for each; false if none.
fn drop_unknown_caps(v: &mut serde_json::Value) -> bool {
    let mut dropped = false;
    if let Some(sets) = v.pointer_mut("/process/capabilities").and_then(|c| c.as_object_mut()) {
        for (set, names) in sets.iter_mut() {
            if let Some(list) = names.as_array_mut() {
                list.retain(|n| {
                    let known = n.as_str().is_some_and(crate::capabilities::is_known_name);
                    if !known {
                        dropped = true;
                        crate::logging::warn(&format!(
                            "process.capabilities.{set}: {n} is unknown to this runtime; left out"
                        ));
                    }
                    known
                });
            }
        }
    }
    dropped
}

fn parse_strict(bytes: &[u8]) -> std::result::Result<Spec, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("malformed JSON: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// Checks what serde can't: versions, required fields, paths and namespace consistency.
/// Returns the absolute rootfs path.
fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    check_oci_version(spec.version())?;

    let root = spec.root().as_ref().ok_or_else(|| Error::field("root", "is required"))?;
    let rootfs = bundle.join(root.path());
    match std::fs::metadata(&rootfs) {
        // strata-image leaves this file under an overlay bundle's mount: seen, the overlay is not mounted.
        Ok(m) if m.is_dir() && rootfs.join(".strata-image-not-mounted").exists() => {
            return Err(Error::field(
                "root.path",
                format!("{} is not mounted (strata-image mount {})", rootfs.display(), bundle.display()),
            ))
        }
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::field("root.path", format!("{} is not a directory", rootfs.display()))),
        Err(e) => return Err(Error::field("root.path", format!("{}: {}", rootfs.display(), io_reason(&e)))),
    }

    let process = spec.process().as_ref().ok_or_else(|| Error::field("process", "is required by create"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::field("process.args", "must name the program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::field("process.cwd", format!("{:?} is not an absolute path", process.cwd())));
    }

    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return Err(Error::field(
                    format!("mounts[{i}].destination"),
                    format!("{:?} is not an absolute path", m.destination()),
                ));
            }
        }
    }

    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref()).map(Vec::as_slice).unwrap_or(&[]);
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(Error::field(format!("linux.namespaces[{i}].type"), format!("{} is listed twice", ns.typ())));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::field(format!("linux.namespaces[{i}].path"), "must be an absolute path"));
            }
        }
    }
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    let new_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t && n.path().is_none());

    let uid_maps = linux.and_then(|l| l.uid_mappings().as_ref()).is_some_and(|m| !m.is_empty());
    let gid_maps = linux.and_then(|l| l.gid_mappings().as_ref()).is_some_and(|m| !m.is_empty());
    if (uid_maps || gid_maps) && !new_ns(LinuxNamespaceType::User) {
        return Err(Error::field("linux.uidMappings", "id mappings need a new user namespace"));
    }
    if new_ns(LinuxNamespaceType::User) && !(uid_maps && gid_maps) {
        return Err(Error::field("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings"));
    }
    // A uts namespace joined by path will do, as with runc: the names are set in it.
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::field("hostname", "setting a hostname needs a uts namespace"));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::field("domainname", "setting a domainname needs a uts namespace"));
    }
    crate::hooks::validate(spec)?;
    crate::sysctl::validate(spec)?;
    crate::netdev::validate(spec)?;
    crate::mempolicy::validate(spec)?;
    crate::intelrdt::validate(spec)?;
    // Without a mount namespace the container shares the runtime's (as with runc), but
    // masking or read-only-binding paths there would do it to the host: refused, as runc.
    if !has(LinuxNamespaceType::Mount) {
        let listed = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
        if listed(linux.and_then(|l| l.masked_paths().as_ref())) {
            return Err(Error::field("linux.maskedPaths", "masking paths needs a mount namespace"));
        }
        if listed(linux.and_then(|l| l.readonly_paths().as_ref())) {
            return Err(Error::field("linux.readonlyPaths", "read-only paths need a mount namespace"));
        }
    }
    Ok(rootfs)
}

/// Accepts any 1.x version: the spec keeps 1.x backwards compatible.
pub fn check_oci_version(version: &str) -> Result<()> {
    let major = version.split('.').next().unwrap_or("");
    match major.parse::<u64>() {
        Ok(1) => Ok(()),
        Ok(_) => Err(Error::field(
            "ociVersion",
            format!("{version:?} is not supported (strata implements {})", crate::OCI_VERSION),
        )),
        Err(_) => Err(Error::field("ociVersion", format!("{version:?} is not a version"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_version_major_must_be_one() {
        assert!(check_oci_version("1.0.2-dev").is_ok());
        assert!(check_oci_version("1.2.1").is_ok());
        assert!(check_oci_version("1.3.0").is_ok());
        let e = check_oci_version("2.0.0").unwrap_err().to_string();
        assert!(e.contains("ociVersion"), "{e}");
        assert!(check_oci_version("").is_err());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let bad = br#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let e = parse_spec(bad).unwrap_err();
        assert!(e.starts_with("linux.namespaces[1].type"), "{e}");
        let truncated = br#"{"ociVersion":"1.2.0","process":{"args":["sh""#;
        let e = parse_spec(truncated).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }
}
