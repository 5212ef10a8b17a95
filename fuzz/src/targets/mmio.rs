//! virtio-mmio register sequences: the input is a flags byte (bit 0: a 9p share instead
//! of a block disk; bit 1: read-only, and then the disk or share must not change) and
//! then 7-byte operations `op[1] offset[2] value[4]` played against
//! `MmioTransport::{read,write}` as vCPU exits would, with guest memory pokes in between
//! so that rings and requests can be laid out. After DRIVER_OK the device's real worker
//! thread serves kicked queues; the transport is dropped (reset) at the end.
//!
//! op % 8: 0 write u32 at offset, 1 write u8, 2 write u16, 3 write u64, 4 read of
//! 1/2/4/8 bytes (value & 3), 5 poke u32 `value` into guest memory at offset * 4, 6 let
//! the worker run a little, 7 write u32 to the well-known register number `offset`.
use std::sync::{Arc, OnceLock};
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::block::Block;
use vmm::devices::virtio::mmio::{reg, MmioTransport};
use vmm::devices::virtio::p9::P9Device;
use vmm::devices::virtio::VirtioDevice;
use crate::*;
use vmm_sys_util::eventfd::EventFd;

const REGS: [u64; 22] = [
    reg::DEVICE_FEATURES_SEL,
    reg::DRIVER_FEATURES,
    reg::DRIVER_FEATURES_SEL,
    reg::QUEUE_SEL,
    reg::QUEUE_NUM,
    reg::QUEUE_READY,
    reg::QUEUE_NOTIFY,
    reg::INTERRUPT_ACK,
    reg::STATUS,
    reg::QUEUE_DESC_LOW,
    reg::QUEUE_DESC_HIGH,
    reg::QUEUE_DRIVER_LOW,
    reg::QUEUE_DRIVER_HIGH,
    reg::QUEUE_DEVICE_LOW,
    reg::QUEUE_DEVICE_HIGH,
    reg::SHM_SEL,
    reg::CONFIG,
    reg::CONFIG + 4,
    reg::CONFIG_GENERATION,
    reg::INTERRUPT_STATUS,
    reg::DEVICE_FEATURES,
    reg::QUEUE_NUM_MAX,
];

fn share() -> &'static Share {
    static SHARE: OnceLock<Share> = OnceLock::new();
    SHARE.get_or_init(|| Share::new("mmio"))
}

/// Plays one input.
pub fn run(data: &[u8]) {
    let Some((&flags, ops)) = data.split_first() else { return };
    let p9 = flags & 1 != 0;
    let read_only = flags & 2 != 0;
    let disk: Arc<MemDisk> = MemDisk::new(64);
    let disk_before = disk.contents();
    let share_before = (p9 && read_only).then(|| share().contents());
    let mem = guest_memory();
    let device: Box<dyn VirtioDevice> = if p9 {
        Box::new(P9Device::new(&share().root(), "fuzz", read_only).expect("9p device"))
    } else {
        Box::new(Block::new(disk.clone(), read_only, b"fuzz"))
    };
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let mut t = MmioTransport::new("fuzz".into(), device, mem.clone(), irq, None).unwrap();
    for op in ops.chunks_exact(7) {
        let offset = u64::from(u16::from_le_bytes([op[1], op[2]])) % 0x200;
        let value = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        match op[0] % 8 {
            0 => t.write(offset, &value.to_le_bytes()),
            1 => t.write(offset, &value.to_le_bytes()[..1]),
            2 => t.write(offset, &value.to_le_bytes()[..2]),
            3 => t.write(offset, &u64::from(value).to_le_bytes()),
            4 => {
                let mut buf = [0u8; 8];
                t.read(offset, &mut buf[..1 << (value & 3)]);
            }
            5 => {
                let _ = mem.write_obj(value, GuestAddress(u64::from(u16::from_le_bytes([op[1], op[2]])) * 4));
            }
            6 => std::thread::sleep(std::time::Duration::from_micros(50)),
            _ => t.write(REGS[offset as usize % REGS.len()], &value.to_le_bytes()),
        }
    }
    drop(t);
    if read_only {
        assert!(disk.contents() == disk_before, "a read-only disk was written");
    }
    if p9 {
        share().check();
        share().check_unchanged(share_before);
        share().reset();
    }
}
