//! What to boot and how: the VMM's configuration, built by `main.rs` from the command line.

use std::path::PathBuf;
use std::time::Duration;

/// Default guest memory: 256 MiB.
pub const DEFAULT_MEM: u64 = 256 << 20;
/// Smallest guest memory accepted: the low 1 MiB (boot data) plus room for a kernel.
pub const MIN_MEM: u64 = 2 << 20;
/// Largest guest memory accepted.
pub const MAX_MEM: u64 = 64 << 30;
/// Most vCPUs accepted.
pub const MAX_VCPUS: u8 = 32;

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub mem_bytes: u64,
    pub vcpus: u8,
    pub cmdline: String,
    pub initrd: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub kvm_device: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// the size is empty
    #[error("empty size")]
    Empty,
    #[error("{0:?} is not a size (examples: 256M, 1G, 65536K; a bare number means MiB)")]
    Invalid(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a memory size the way QEMU's `-m` does: a bare number is MiB; suffixes
/// K, M, G, T (optionally followed by `B` or `iB`) are binary multiples.
pub fn parse_mem_size(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| SizeError::Invalid(text.to_owned()))?;
    let shift = match suffix.trim_end_matches("iB").trim_end_matches('B').to_ascii_uppercase().as_str() {
        "" | "M" => 20,
        "K" => 10,
        "G" => 30,
        "T" => 40,
        _ => return Err(SizeError::Invalid(text.to_owned())),
    };
    number.checked_mul(1 << shift).ok_or_else(|| SizeError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mem_size("256"), Ok(256 << 20));
        assert_eq!(parse_mem_size("256M"), Ok(256 << 20));
        assert_eq!(parse_mem_size("1G"), Ok(1 << 30));
        assert_eq!(parse_mem_size("64k"), Ok(64 << 10));
        assert_eq!(parse_mem_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_mem_size("512MB"), Ok(512 << 20));
        assert!(matches!(parse_mem_size("lots"), Err(SizeError::Invalid(_))));
        assert!(matches!(parse_mem_size("12Q"), Err(SizeError::Invalid(_))));
        assert!(matches!(parse_mem_size("-1"), Err(SizeError::Invalid(_))));
        assert_eq!(parse_mem_size(""), Err(SizeError::Empty));
        assert!(matches!(parse_mem_size("99999999999T"), Err(SizeError::Overflow(_))));
    }
}
