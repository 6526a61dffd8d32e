use std::io::IsTerminal;
use std::path::PathBuf;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;
use strata_image::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Image reference: DIR[:TAG], DIR@sha256:..., or an OCI/docker archive file.
    #[arg(long)]
    image: String,
    /// Share layers through an overlay mount instead of copying them.
    #[arg(long)]
    overlay: bool,
    /// Unpack as an unprivileged user, as `umoci unpack --rootless` does: every file
    /// is the caller's, the owner the image gives it is kept in the
    /// `user.rootlesscontainers` xattr (uid/gid 0 stored as the no-op id, nothing
    /// for root:root), xattrs only root may set (security.capability) are left out,
    /// device nodes become empty files (noted on stderr), and config.json is for a
    /// rootless runtime (`runc --root $XDG_RUNTIME_DIR/runc run`): the caller mapped
    /// to root in a user namespace, no network namespace. Not with --overlay.
    #[arg(long)]
    rootless: bool,
    /// Layer store for --overlay (root: /var/lib/strata-image; others:
    /// $XDG_DATA_HOME/strata-image, else ~/.local/share/strata-image).
    #[arg(long, default_value = strata_image::store::default_store())]
    store: PathBuf,
    /// os/arch[/variant] to pick from an index (default: this host).
    #[arg(long)]
    platform: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    bundle: PathBuf,
    /// Command to run instead of the image's Entrypoint+Cmd.
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let r = Reference::parse(&a.image)?;
    let platform = match &a.platform {
        Some(p) => PlatformSpec::parse(p)?,
        None => PlatformSpec::host(),
    };
    let tty = std::io::stderr().is_terminal();
    let opts = UnpackOptions {
        platform,
        overlay: a.overlay,
        store: a.store,
        rootless: a.rootless,
        args: (!a.args.is_empty()).then_some(a.args),
        progress: tty.then(|| Box::new(Bar(indicatif::ProgressBar::new(0))) as Box<dyn bundle::Progress>),
    };
    let meta = bundle::unpack(&r, &a.bundle, &opts)?;
    for n in &meta.notes {
        eprintln!("strata-image: note: {n}");
    }
    if a.json {
        super::print_json(&meta)?;
    }
    Ok(())
}

/// indicatif bar on stderr (only when it is a terminal): stored bytes read
/// over the image's total, with the layer being extracted.
struct Bar(indicatif::ProgressBar);

impl bundle::Progress for Bar {
    fn start(&self, sizes: &[Option<u64>]) {
        let style = indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        self.0.set_style(style);
        self.0.set_length(sizes.iter().map(|s| s.unwrap_or(0)).sum());
        self.0.set_message(format!("layer 1/{}", sizes.len()));
    }
    fn bytes(&self, n: u64) {
        self.0.inc(n);
    }
    fn layer(&self, i: usize, n: usize, d: &str, fresh: bool) {
        self.0.println(format!(
            "layer {}/{n} {} {}",
            i + 1,
            &d[..d.len().min(19)],
            if fresh { "extracted" } else { "cached" }
        ));
        self.0.set_message(format!("layer {}/{n}", (i + 2).min(n)));
        if i + 1 == n {
            self.0.finish_and_clear();
        }
    }
}
