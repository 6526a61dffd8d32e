//! The test-made account the rootless tests run as: really unprivileged while it
//! exists, and gone (with its id ranges and directories) once dropped.

use strata_integration::unprivileged::UnprivilegedUser;
use strata_integration::{assert_ok, stdout};

#[test]
fn a_test_user_has_no_privilege_and_leaves_nothing() {
    let user = UnprivilegedUser::new();
    let name = user.name.clone();
    let (home, runtime_dir) = (user.home.clone(), user.runtime_dir.clone());

    let out = user.output("sh", &["-c", "id -u; id -g; grep CapEff /proc/self/status; echo $XDG_RUNTIME_DIR; pwd"]);
    assert_ok(&out, "id as the test user");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], user.uid.to_string());
    assert_eq!(lines[1], user.gid.to_string());
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0000000000000000"), "capabilities: {}", lines[2]);
    assert_eq!(lines[3], runtime_dir.to_string_lossy());
    assert_eq!(lines[4], home.to_string_lossy());
    // It cannot write what root owns.
    assert!(!user.output("touch", &["/etc/strata-unprivileged-probe"]).status.success());
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    assert!(subuid.lines().any(|l| l.starts_with(&format!("{name}:{}:", user.subid_start))), "{subuid}");
    // A process it leaves running is killed on drop.
    let mut sleeper = user.command("sleep").arg("300").spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !user.processes().contains(&(sleeper.id() as i32)) {
        assert!(std::time::Instant::now() < deadline, "setpriv never became the test user");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(user);
    let _ = sleeper.wait();

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.lines().any(|l| l.starts_with(&format!("{name}:"))), "account {name} left behind");
    for file in ["/etc/subuid", "/etc/subgid"] {
        let ranges = std::fs::read_to_string(file).unwrap();
        assert!(!ranges.lines().any(|l| l.starts_with(&format!("{name}:"))), "{file} keeps {name}");
    }
    assert!(!home.exists() && !runtime_dir.exists(), "directories left behind");
}

/// A process that is still switching to the user when the account is dropped (setpriv
/// between fork and setresuid) must not keep the account alive: userdel refuses while
/// the user runs anything, and an early version left the account behind so.
#[test]
fn an_account_is_removed_even_when_dropped_mid_spawn() {
    let user = UnprivilegedUser::new();
    let name = user.name.clone();
    let mut sleeper = user.command("sleep").arg("300").spawn().unwrap();
    drop(user);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.lines().any(|l| l.starts_with(&format!("{name}:"))), "account {name} left behind");
}
