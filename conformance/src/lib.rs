//! strata-conformance: checks the OCI runtime-spec against any runc-compatible runtime
//! by driving its command line. `cases/` holds one module per spec area, each a table
//! of plain functions; `harness` builds bundles and drives the runtime; `check` holds
//! the comparisons (unit-tested); `report` prints TAP, a table or JSON.

pub mod cases;
pub mod cgroup;
pub mod check;
pub mod command;
pub mod console;
pub mod harness;
pub mod procfs;
pub mod report;
