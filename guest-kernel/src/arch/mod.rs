//! Architecture code: the only place with inline assembly.

mod x86_64;

pub use x86_64::*;
