//! The `strata` executable: parse runc's command line, run one command, and render any
//! error once (stderr, and the --log file for engines that read it).

fn main() {
    let code = strata::cli::main();
    std::process::exit(code);
}
