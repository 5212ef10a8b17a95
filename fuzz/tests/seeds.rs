//! The seeds do what make_seeds.py means them to: every block request of the valid seeds
//! is served (through each engine) with VIRTIO_BLK_S_OK, and every 9p message of the basic seeds gets a reply
//! other than Rlerror; each virtio-net seed delivers, drops and sends the frames it is
//! meant to. (Seeds that fail early would leave the fuzzer far from the code.)

use vm_memory::{Bytes, GuestAddress};
use vmm_fuzz::*;

fn corpus(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/corpus/{target}/seed-{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn block_seeds_are_served() {
    let file = DiskFile::new("seeds");
    let names = ["blk-read", "blk-write", "blk-flush-id", "blk-discard"];
    let engines = ["", "-sync", "-uring", "-uring-direct"];
    for name in engines.iter().flat_map(|e| names.map(|n| format!("{n}{e}"))) {
        let data = corpus("virtq", &name);
        let size = 1u16 << ((data[0] >> 3) & 7);
        let mem = guest_memory();
        load_image(&mem, &data[1..]);
        let disk = MemDisk::new(64);
        file.reset(64);
        let handler = match data[0] >> 6 {
            0 => block_handler(&disk, false),
            1 => file_handler(&file, Engine::Sync, false),
            2 => file_handler(&file, Engine::Uring, false),
            _ => file_handler(&file, Engine::UringDirect, false),
        };
        let mut w = worker(&mem, size, true, handler).unwrap();
        serve(&mut w);
        let (desc, avail, used, _) = layout(size);
        let chains: u16 = mem.read_obj(GuestAddress(avail + 2)).unwrap();
        assert_eq!(mem.read_obj::<u16>(GuestAddress(used + 2)).unwrap(), chains, "{name}");
        for i in 0..chains {
            // The status byte is the chain's last descriptor.
            let mut d: u16 = mem.read_obj(GuestAddress(avail + 4 + 2 * u64::from(i))).unwrap();
            loop {
                let at = desc + 16 * u64::from(d);
                let flags: u16 = mem.read_obj(GuestAddress(at + 12)).unwrap();
                if flags & 1 == 0 {
                    let addr: u64 = mem.read_obj(GuestAddress(at)).unwrap();
                    assert_eq!(mem.read_obj::<u8>(GuestAddress(addr)).unwrap(), 0, "{name} chain {i}");
                    break;
                }
                d = mem.read_obj(GuestAddress(at + 14)).unwrap();
            }
        }
    }
}

#[test]
fn p9_seeds_are_served() {
    let share = Share::new("seeds");
    for name in ["basic", "create", "xattr"] {
        let data = corpus("p9", name);
        let mut server = share.server(false);
        let mut rest = &data[1..];
        while !rest.is_empty() {
            let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let (msg, tail) = rest.split_at(size);
            rest = tail;
            let reply = server.handle(msg, 8192);
            assert_ne!(reply[4], 7, "{name}: Rlerror {} to message type {}", reply[7], msg[4]);
        }
        share.check();
        share.reset();
    }
}

#[test]
fn net_seeds_are_served() {
    // (seed, frames delivered to the guest, dropped, sent to the host, refused, the device broken)
    let want = [
        ("basic", 1, 0, 1, 0, false),
        ("basic-noidx-noirq", 1, 0, 1, 0, false),
        ("basic-used-event", 2, 0, 1, 0, false),
        ("mrg-spread", 2, 0, 0, 0, false),
        ("mrg-pending", 1, 0, 0, 0, false),
        ("nomrg", 2, 1, 0, 0, false),
        ("tap-odd", 2, 6, 0, 0, false),
        ("tap-long", 1, 0, 0, 0, false),
        ("rx-flood", 80, 0, 0, 0, false),
        ("rx-indirect", 1, 0, 0, 0, false),
        ("rx-readable", 0, 0, 0, 0, true),
        ("rx-short", 0, 0, 0, 0, true),
        ("rx-overpost", 0, 0, 0, 0, true),
        ("tx-odd", 0, 0, 4, 6, true),
        ("tx-full", 0, 0, 6, 10, false),
    ];
    // Each seed on the host's io_uring (if it has one), and as "<seed>-epoll" on the
    // fallback: the same counts; the ring's writes all went through the write hook.
    for (name, rx, rx_dropped, tx, tx_dropped, broken) in want {
        for name in [name.to_string(), format!("{name}-epoll")] {
            let r = vmm_fuzz::targets::net::play(&corpus("net", &name));
            let c = r.counters;
            assert_eq!((c.rx_frames, c.rx_dropped, c.tx_frames, c.tx_dropped, r.broken), (rx, rx_dropped, tx, tx_dropped, broken), "{name}: {r:?}");
            if name.ends_with("-epoll") {
                assert!(!r.uring && r.ring_writes == 0, "{name}: {r:?}");
            } else if r.uring {
                assert!(r.ring_writes >= tx, "{name}: {r:?}");
            }
        }
    }
}
