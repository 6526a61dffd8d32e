//! strata-conformance --runtime PATH [--runtime PATH2 ...] [--filter PATTERN] [--skip PATTERN ...]
//!                    [--format tap|table|json] [--rootfs DIR] [--probe PATH] [--list]
//!
//! Runs every case against each runtime (each with its own private --root) and prints
//! the results. Exit status 1 when any case failed on any runtime.

use conformance::harness::{Env, Fail};
use conformance::report::{self, Outcome, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

struct Opts {
    runtimes: Vec<String>,
    filter: Option<String>,
    /// Cases to report as skipped without running (known failures a CI tolerates).
    skips: Vec<String>,
    format: String,
    rootfs: Option<PathBuf>,
    probe: Option<PathBuf>,
    list: bool,
}

fn usage() -> ! {
    eprintln!("usage: strata-conformance --runtime PATH [--runtime PATH ...] [--filter PATTERN] [--skip PATTERN ...] [--format tap|table|json] [--rootfs DIR] [--probe PATH] [--list]");
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        runtimes: vec![],
        filter: None,
        skips: vec![],
        format: "tap".into(),
        rootfs: None,
        probe: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--runtime" => o.runtimes.push(val()),
            "--filter" => o.filter = Some(val()),
            "--skip" => o.skips.push(val()),
            "--format" => o.format = val(),
            "--rootfs" => o.rootfs = Some(val().into()),
            "--probe" => o.probe = Some(val().into()),
            "--list" => o.list = true,
            _ => usage(),
        }
    }
    if !["tap", "table", "json"].contains(&o.format.as_str()) || (o.runtimes.is_empty() && !o.list) {
        usage();
    }
    o
}

/// The busybox rootfs template: --rootfs, or one built by hack/busybox-rootfs.
fn template(o: &Opts, work: &Path) -> Result<PathBuf, String> {
    if let Some(r) = &o.rootfs {
        return Ok(r.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    let dir = work.join("rootfs-template");
    let st =
        std::process::Command::new(&script).arg(&dir).status().map_err(|e| format!("{}: {e}", script.display()))?;
    st.success().then_some(dir).ok_or_else(|| "hack/busybox-rootfs failed; pass --rootfs DIR".into())
}

fn main() {
    let o = parse();
    let cases: Vec<_> = conformance::cases::all()
        .into_iter()
        .filter(|c| o.filter.as_ref().is_none_or(|f| c.full_name().contains(f.as_str())))
        .collect();
    if o.list {
        for c in &cases {
            println!("{}\t{}", c.full_name(), c.spec);
        }
        return;
    }
    let probe = o.probe.clone().unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("strata-probe"));
    if !probe.exists() {
        eprintln!(
            "strata-conformance: probe {} missing (cargo build -p strata-conformance builds it)",
            probe.display()
        );
        std::process::exit(2);
    }
    let work = std::env::temp_dir().join(format!("strata-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let tpl = template(&o, &work).unwrap_or_else(|e| {
        eprintln!("strata-conformance: {e}");
        std::process::exit(2)
    });
    let broken = conformance::harness::host_devices_broken();
    if !broken.is_empty() {
        eprintln!("strata-conformance: refusing to run on a damaged host: {}", broken.join(", "));
        std::process::exit(2);
    }
    let mut rows: Vec<Row> = cases.iter().map(|c| Row { name: c.full_name(), spec: c.spec, results: vec![] }).collect();
    stop_on_signals();
    for (i, rt) in o.runtimes.iter().enumerate() {
        let path = std::fs::canonicalize(rt).unwrap_or_else(|_| PathBuf::from(rt));
        let env = Env::new(&path, &work, &tpl, &probe, &format!("sc{i}"));
        for (c, row) in cases.iter().zip(&mut rows) {
            if STOP.load(Ordering::SeqCst) {
                row.results.push(Outcome::Skip("interrupted".into()));
                continue;
            }
            if let Some(p) = o.skips.iter().find(|p| c.full_name().contains(p.as_str())) {
                row.results.push(Outcome::Skip(format!("excluded by --skip {p}")));
                continue;
            }
            eprintln!("# {} {}", path.display(), c.full_name());
            row.results.push(run_case(&env, c));
        }
        env.cleanup();
    }
    let _ = std::fs::remove_dir_all(&work);
    print!(
        "{}",
        match o.format.as_str() {
            "table" => report::table(&rows, &o.runtimes),
            "json" => report::json(&rows, &o.runtimes) + "\n",
            _ => report::tap(&rows, &o.runtimes),
        }
    );
    let failed = rows.iter().any(|r| r.results.iter().any(|x| matches!(x, Outcome::Fail(_))));
    std::process::exit(failed as i32);
}

static STOP: AtomicBool = AtomicBool::new(false);

/// SIGINT/SIGTERM/SIGHUP end the run after the current case, so its cleanup (and the
/// final sweep of containers and cgroups) still happens.
fn stop_on_signals() {
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
}

/// One case on one runtime: a fresh bundle, the case, then cleanup and the leak check.
fn run_case(env: &Env, c: &conformance::cases::Case) -> Outcome {
    let mut ctx = match conformance::harness::Ctx::new(env, &c.full_name()) {
        Ok(ctx) => ctx,
        Err(e) => return Outcome::Fail(format!("bundle setup: {e}")),
    };
    // A panicking case still gets its containers and mounts cleaned up.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.run)(&mut ctx)))
        .unwrap_or_else(|_| Err(Fail::NotOk("the case panicked (a bug in the suite)".into())));
    let leak = ctx.finish();
    match (r, leak) {
        (Err(Fail::NotOk(w)), _) => Outcome::Fail(w),
        (_, Some(l)) => Outcome::Fail(l),
        (Ok(()), None) => Outcome::Pass,
        (Err(Fail::Skip(w)), None) => Outcome::Skip(w),
    }
}
