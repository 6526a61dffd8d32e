//! `strata-docgen OUTDIR`: man pages and shell completions for the installed binaries,
//! generated from the clap definitions the binaries parse with (hack/install runs it).
//!
//! OUTDIR/man/man8/strata.8 and one page per subcommand (`strata-create.8`, as runc's
//! `runc-create(8)`), OUTDIR/man/man1/strata-image.1 and its subcommands' pages;
//! OUTDIR/completions/{bash,zsh,fish}/ for each binary.

use std::path::Path;

fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: strata-docgen OUTDIR");
        std::process::exit(2);
    };
    let out = Path::new(&out);
    let written =
        write_all(out, strata::cli::command(), "8").and_then(|()| write_all(out, strata_image::cli::command(), "1"));
    if let Err(e) = written {
        eprintln!("strata-docgen: {}: {e}", out.display());
        std::process::exit(1);
    }
}

/// The man pages and completions of one binary, described by `cmd`.
fn write_all(out: &Path, cmd: clap::Command, section: &str) -> std::io::Result<()> {
    let man = out.join(format!("man/man{section}"));
    std::fs::create_dir_all(&man)?;
    write_pages(&man, &cmd, section)?;
    write_completions(out, cmd)
}

/// One page for the binary and one for each visible subcommand, named `bin-sub.N`.
fn write_pages(dir: &Path, cmd: &clap::Command, section: &str) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let page = |c: clap::Command, file: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).section(section).render(&mut buf)?;
        std::fs::write(dir.join(file), buf)
    };
    page(cmd.clone(), format!("{name}.{section}"))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full = format!("{name}-{}", sub.get_name());
        let file = format!("{full}.{section}");
        page(sub.clone().name(full), file)?;
    }
    Ok(())
}

fn write_completions(out: &Path, mut cmd: clap::Command) -> std::io::Result<()> {
    use clap_complete::Shell;
    let name = cmd.get_name().to_string();
    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::File::create(dir.join(file))?;
        clap_complete::generate(shell, &mut cmd, &name, &mut f);
    }
    Ok(())
}
