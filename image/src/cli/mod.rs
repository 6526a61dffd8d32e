//! Command line: one file per subcommand. Errors are rendered once, here,
//! as a single line.

mod build;
mod commit;
mod du;
mod export;
mod gc;
mod history;
mod import;
mod ls;
mod mount;
mod save;
mod unpack;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "strata-image",
    about = "Layered OCI images to runtime bundles, and back",
    // clap prints "NAME VERSION": the same lines as `strata --version`.
    version = concat!("version ", env!("CARGO_PKG_VERSION"), "\ncommit: ", env!("STRATA_COMMIT")),
    disable_version_flag = true
)]
struct Cli {
    /// Print the version (-V too), as `strata -v` does.
    #[arg(short = 'v', long, short_alias = 'V', action = clap::ArgAction::Version)]
    version: (),
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a runtime bundle (rootfs + config.json) from an image.
    Unpack(unpack::Args),
    /// Mount an overlay bundle's rootfs again.
    Mount(mount::Args),
    /// Unmount an overlay bundle's rootfs.
    Umount(mount::Args),
    /// Unmount and delete a bundle.
    Remove(mount::Args),
    /// Show an image's history: one row per history entry and layer.
    History(history::Args),
    /// List the tags of an image layout.
    Ls(ls::Args),
    /// Turn an overlay bundle's read-write layer into a new image layer.
    Commit(commit::Args),
    /// Write a bundle's rootfs (the union view) as a tar.
    Export(export::Args),
    /// Make a one-layer image of a plain rootfs tar.
    Import(import::Args),
    /// Build an image from a Containerfile (RUN in working containers, one layer per step).
    Build(build::Args),
    /// Copy an image into an OCI layout or archive.
    Save(save::Args),
    /// Sizes: a bundle's read-write layer vs its whole view, or a store's layers.
    Du(du::Args),
    /// Remove store layers no bundle uses and layout blobs no tag reaches.
    Gc(gc::Args),
}

/// The command-line definition, for tools that generate man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn run() -> i32 {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Unpack(a) => unpack::run(a),
        Cmd::Mount(a) => strata_image::bundle::mount(&a.bundle),
        Cmd::Umount(a) => strata_image::bundle::umount(&a.bundle),
        Cmd::Remove(a) => strata_image::bundle::remove(&a.bundle),
        Cmd::History(a) => history::run(a),
        Cmd::Ls(a) => ls::run(a),
        Cmd::Commit(a) => commit::run(a),
        Cmd::Export(a) => export::run(a),
        Cmd::Import(a) => import::run(a),
        Cmd::Build(a) => build::run(a),
        Cmd::Save(a) => save::run(a),
        Cmd::Du(a) => du::run(a),
        Cmd::Gc(a) => gc::run(a),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strata-image: {e}");
            1
        }
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> strata_image::Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| strata_image::Error::json("output", e))?;
    println!("{s}");
    Ok(())
}

/// What commit, import and save print: the new manifest's digest, or with
/// --json its descriptor and where it was written.
pub fn print_written(d: &oci_spec::image::Descriptor, image: &str, json: bool) -> strata_image::Result<()> {
    if json {
        return print_json(
            &serde_json::json!({"image": image, "digest": d.digest().to_string(), "mediaType": d.media_type().to_string(), "size": d.size()}),
        );
    }
    println!("{}", d.digest());
    Ok(())
}
