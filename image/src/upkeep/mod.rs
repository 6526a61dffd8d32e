//! Keeping images and stores in shape: sizes (`usage`), freeing what nothing
//! uses (`gc`), and moving images and trees in and out (`transfer`: import,
//! save, export).

pub mod gc;
pub mod transfer;
pub mod usage;
