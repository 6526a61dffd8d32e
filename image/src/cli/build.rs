use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use strata_image::build::{self, BuildOptions};
use strata_image::reference::Reference;
use strata_image::store::default_store;
use strata_image::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The build context: COPY and ADD sources are relative to it.
    context: PathBuf,
    /// The Containerfile [default: CONTEXT/Containerfile, else CONTEXT/Dockerfile].
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Destination LAYOUT:TAG (created if missing).
    #[arg(short = 't', long)]
    tag: String,
    /// KEY=VALUE for an ARG (a bare KEY takes the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Build up to this stage (name or index) and tag it.
    #[arg(long)]
    target: Option<String>,
    /// Run every step even when the cache has its layer.
    #[arg(long)]
    no_cache: bool,
    /// RUN's network: none (a new, empty network namespace) or host.
    #[arg(long, default_value = "none", value_parser = ["none", "host"])]
    network: String,
    /// Layer store the working containers are layered on.
    #[arg(long, default_value = default_store())]
    store: PathBuf,
    /// Cgroup parent of the RUN containers.
    #[arg(long, default_value = "strata-image-build")]
    cgroup_parent: String,
    /// No step lines; print only the new manifest's digest.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut build_args = BTreeMap::new();
    for kv in &a.build_args {
        match kv.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            None => match std::env::var(kv) {
                Ok(v) => build_args.insert(kv.clone(), v),
                Err(_) => continue,
            },
        };
        if kv.starts_with('=') {
            return Err(Error::Invalid(format!("--build-arg {kv}: expected KEY=VALUE")));
        }
    }
    let opts = BuildOptions {
        file: a.file,
        context: a.context,
        dest: Reference::parse(&a.tag)?,
        build_args,
        target: a.target,
        no_cache: a.no_cache,
        network_host: a.network == "host",
        store: a.store,
        cgroup_parent: a.cgroup_parent,
        quiet: a.quiet,
        progress: std::io::stderr()
            .is_terminal()
            .then(|| Box::new(Bar(indicatif::ProgressBar::hidden())) as Box<dyn build::Progress>),
    };
    let d = build::build(&opts)?;
    println!("{}", d.digest());
    Ok(())
}

/// An indicatif bar on stderr for large COPY/ADD steps (only on a terminal; no
/// ticker thread: RUN clones the runtime's init from this single-threaded process).
struct Bar(indicatif::ProgressBar);

impl build::Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        let style = indicatif::ProgressStyle::with_template("[{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        self.0.set_style(style);
        self.0.set_message(format!("to {what}"));
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    fn bytes(&self, n: u64) {
        self.0.inc(n);
    }
    fn done(&self) {
        self.0.finish_and_clear();
    }
}
