//! 9P2000.L messages against a real temporary share: the input is a flags byte (bit 0:
//! a read-only share, which must then not change at all; bits 1..3 shrink the room for
//! replies from 8 KiB) and a sequence of messages, each framed by its own size[4] field
//! (clamped to what is left), handed to `Server::handle` as the virtio-9p handler does. After each input nothing outside the
//! share may have changed (a sentinel directory, a sentinel file and the listing of the
//! share's parent), and the share is laid anew.
use std::sync::OnceLock;
use crate::*;

fn share() -> &'static Share {
    static SHARE: OnceLock<Share> = OnceLock::new();
    SHARE.get_or_init(|| Share::new("p9"))
}

/// Plays one input.
pub fn run(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let read_only = flags & 1 != 0;
    let before = read_only.then(|| share().contents());
    let mut server = share().server(read_only);
    let max_reply = 8192usize >> (flags >> 1 & 7);
    while rest.len() >= 4 {
        let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let size = size.clamp(4, rest.len());
        let (msg, tail) = rest.split_at(size);
        rest = tail;
        let room = max_reply.max(11);
        let reply = server.handle(msg, room);
        assert!(reply.len() <= room, "9p reply of {} bytes beyond the {room} allowed", reply.len());
        assert!(reply.len() >= 7, "9p reply without a header");
        let rsize = u32::from_le_bytes(reply[..4].try_into().unwrap()) as usize;
        assert_eq!(rsize, reply.len(), "9p reply size field disagrees with its length");
    }
    drop(server);
    share().check();
    share().check_unchanged(before);
    share().reset();
}
