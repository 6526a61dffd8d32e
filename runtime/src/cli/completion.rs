//! `strata completion SHELL`: the shell completion script, generated from the same
//! clap definitions the parser uses, so it can never drift from the flags.

use clap::CommandFactory;

/// The shells we write completions for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args)]
pub struct Args {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(a: &Args) {
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut super::Cli::command(), "strata", &mut std::io::stdout());
}
