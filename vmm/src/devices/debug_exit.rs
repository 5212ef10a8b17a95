//! An isa-debug-exit-compatible device: a write to port 0xf4 ends the VM.
//!
//! The guest writes a status (1, 2 or 4 bytes). `vmm` exits with that status itself (255
//! for a status above 255; `--exit-status-file` gets all of it); QEMU's device exits with
//! `(status << 1) | 1`.

use super::IoAction;

pub const PORT: u16 = 0xf4;

pub struct DebugExit;

impl DebugExit {
    pub fn write(&self, data: &[u8]) -> IoAction {
        let mut bytes = [0u8; 4];
        let n = data.len().min(4);
        bytes[..n].copy_from_slice(&data[..n]);
        IoAction::Exit(u32::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_widths() {
        assert_eq!(DebugExit.write(&[7]), IoAction::Exit(7));
        assert_eq!(DebugExit.write(&[0x34, 0x12]), IoAction::Exit(0x1234));
        assert_eq!(DebugExit.write(&[1, 0, 0, 0]), IoAction::Exit(1));
        assert_eq!(DebugExit.write(&[]), IoAction::Exit(0));
    }
}
