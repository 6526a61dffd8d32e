//! Stamps the git commit into `strata-image --version`: the same script as the runtime's.

include!("../runtime/build.rs");
