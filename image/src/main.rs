//! The `strata-image` executable: a thin layer over the library.

fn main() {
    std::process::exit(strata_image_cli::run());
}

#[path = "cli/mod.rs"]
mod strata_image_cli;
