//! Syscall name -> number for the architectures a profile may list on an x86_64 host
//! (native, and its i386 and x32 compat ABIs): one generated file each.

mod i386;
mod x32;
mod x86_64;

pub use i386::I386;
pub use x32::X32;
pub use x86_64::X86_64;
