//! 9P2000.L wire format: little-endian integers, strings as `len[2] bytes`, and every
//! message as `size[4] type[1] tag[2] body`. [`parse`] decodes a T-message from guest
//! bytes (untrusted: every read is bounds-checked and a short or trailing-garbage message
//! is an error); [`Reply`] builds an R-message.

/// Message types (Linux `include/net/9p/9p.h`). R = T + 1.
pub mod op {
    pub const RLERROR: u8 = 7;
    pub const TSTATFS: u8 = 8;
    pub const TLOPEN: u8 = 12;
    pub const TLCREATE: u8 = 14;
    pub const TSYMLINK: u8 = 16;
    pub const TMKNOD: u8 = 18;
    pub const TRENAME: u8 = 20;
    pub const TREADLINK: u8 = 22;
    pub const TGETATTR: u8 = 24;
    pub const TSETATTR: u8 = 26;
    pub const TXATTRWALK: u8 = 30;
    pub const TXATTRCREATE: u8 = 32;
    pub const TREADDIR: u8 = 40;
    pub const TFSYNC: u8 = 50;
    pub const TLOCK: u8 = 52;
    pub const TGETLOCK: u8 = 54;
    pub const TLINK: u8 = 70;
    pub const TMKDIR: u8 = 72;
    pub const TRENAMEAT: u8 = 74;
    pub const TUNLINKAT: u8 = 76;
    pub const TVERSION: u8 = 100;
    pub const TAUTH: u8 = 102;
    pub const TATTACH: u8 = 104;
    pub const TFLUSH: u8 = 108;
    pub const TWALK: u8 = 110;
    pub const TREAD: u8 = 116;
    pub const TWRITE: u8 = 118;
    pub const TCLUNK: u8 = 120;
    pub const TREMOVE: u8 = 122;
}

/// The header: size[4] type[1] tag[2].
pub const HEADER: usize = 7;
/// The tag of Tversion.
pub const NOTAG: u16 = 0xffff;
/// Most names in one Twalk.
pub const MAXWELEM: usize = 16;
/// Bytes of a qid on the wire.
pub const QID_SIZE: usize = 13;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Qid {
    pub ty: u8,
    pub version: u32,
    pub path: u64,
}

/// The fields of Tsetattr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAttr {
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: (u64, u64),
    pub mtime: (u64, u64),
}

/// A decoded T-message; strings borrow from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tmessage<'a> {
    Version { msize: u32, version: &'a [u8] },
    Auth,
    Attach { fid: u32 },
    Flush,
    Walk { fid: u32, newfid: u32, names: Vec<&'a [u8]> },
    Read { fid: u32, offset: u64, count: u32 },
    Write { fid: u32, offset: u64, data: &'a [u8] },
    Clunk { fid: u32 },
    Remove { fid: u32 },
    Statfs { fid: u32 },
    Lopen { fid: u32, flags: u32 },
    Lcreate { fid: u32, name: &'a [u8], flags: u32, mode: u32 },
    Symlink { fid: u32, name: &'a [u8], target: &'a [u8] },
    Mknod { dfid: u32, name: &'a [u8], mode: u32 },
    Rename { fid: u32, dfid: u32, name: &'a [u8] },
    Readlink { fid: u32 },
    Getattr { fid: u32 },
    Setattr { fid: u32, attr: SetAttr },
    XattrWalk { fid: u32, newfid: u32, name: &'a [u8] },
    XattrCreate { fid: u32, name: &'a [u8], size: u64, flags: u32 },
    Readdir { fid: u32, offset: u64, count: u32 },
    Fsync { fid: u32, datasync: bool },
    Lock { fid: u32 },
    GetLock { fid: u32, ty: u8, start: u64, length: u64, proc_id: u32, client_id: &'a [u8] },
    Link { dfid: u32, fid: u32, name: &'a [u8] },
    Mkdir { dfid: u32, name: &'a [u8], mode: u32 },
    Renameat { olddirfid: u32, oldname: &'a [u8], newdirfid: u32, newname: &'a [u8] },
    Unlinkat { dirfid: u32, name: &'a [u8], flags: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than its header")]
    Short,
    #[error("size field {0} does not match the message")]
    Size(u32),
    #[error("truncated or malformed body")]
    Body,
    #[error("unknown message type {0}")]
    Unknown(u8),
}

/// A bounds-checked cursor over untrusted bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Body);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn string(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() { Ok(()) } else { Err(WireError::Body) }
    }
}

/// Reads the header of `msg`: (size, type, tag). `msg` must be exactly `size` bytes.
pub fn header(msg: &[u8]) -> Result<(u8, u16), WireError> {
    if msg.len() < HEADER {
        return Err(WireError::Short);
    }
    let mut r = Reader::new(msg);
    let size = r.u32()?;
    if size as usize != msg.len() {
        return Err(WireError::Size(size));
    }
    Ok((r.u8()?, r.u16()?))
}

/// Decodes the T-message `msg` (the whole message, header included).
pub fn parse(msg: &[u8]) -> Result<Tmessage<'_>, WireError> {
    let (ty, _tag) = header(msg)?;
    let mut r = Reader::new(&msg[HEADER..]);
    let m = match ty {
        op::TVERSION => Tmessage::Version { msize: r.u32()?, version: r.string()? },
        op::TAUTH => {
            r.u32()?;
            r.string()?;
            r.string()?;
            r.u32()?;
            Tmessage::Auth
        }
        op::TATTACH => {
            let fid = r.u32()?;
            // afid, uname, aname, n_uname
            r.u32()?;
            r.string()?;
            r.string()?;
            r.u32()?;
            Tmessage::Attach { fid }
        }
        op::TFLUSH => {
            r.u16()?;
            Tmessage::Flush
        }
        op::TWALK => {
            let (fid, newfid, n) = (r.u32()?, r.u32()?, r.u16()?);
            if usize::from(n) > MAXWELEM {
                return Err(WireError::Body);
            }
            let names = (0..n).map(|_| r.string()).collect::<Result<_, _>>()?;
            Tmessage::Walk { fid, newfid, names }
        }
        op::TREAD => Tmessage::Read { fid: r.u32()?, offset: r.u64()?, count: r.u32()? },
        op::TWRITE => {
            let (fid, offset, count) = (r.u32()?, r.u64()?, r.u32()?);
            Tmessage::Write { fid, offset, data: r.take(count as usize)? }
        }
        op::TCLUNK => Tmessage::Clunk { fid: r.u32()? },
        op::TREMOVE => Tmessage::Remove { fid: r.u32()? },
        op::TSTATFS => Tmessage::Statfs { fid: r.u32()? },
        op::TLOPEN => Tmessage::Lopen { fid: r.u32()?, flags: r.u32()? },
        op::TLCREATE => {
            let m = Tmessage::Lcreate { fid: r.u32()?, name: r.string()?, flags: r.u32()?, mode: r.u32()? };
            // gid
            r.u32()?;
            m
        }
        op::TSYMLINK => {
            let m = Tmessage::Symlink { fid: r.u32()?, name: r.string()?, target: r.string()? };
            r.u32()?;
            m
        }
        op::TMKNOD => {
            let m = Tmessage::Mknod { dfid: r.u32()?, name: r.string()?, mode: r.u32()? };
            // major, minor, gid
            r.u32()?;
            r.u32()?;
            r.u32()?;
            m
        }
        op::TRENAME => Tmessage::Rename { fid: r.u32()?, dfid: r.u32()?, name: r.string()? },
        op::TREADLINK => Tmessage::Readlink { fid: r.u32()? },
        op::TGETATTR => {
            let fid = r.u32()?;
            // request mask: we always return the basic set
            r.u64()?;
            Tmessage::Getattr { fid }
        }
        op::TSETATTR => Tmessage::Setattr {
            fid: r.u32()?,
            attr: SetAttr {
                valid: r.u32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                size: r.u64()?,
                atime: (r.u64()?, r.u64()?),
                mtime: (r.u64()?, r.u64()?),
            },
        },
        op::TXATTRWALK => Tmessage::XattrWalk { fid: r.u32()?, newfid: r.u32()?, name: r.string()? },
        op::TXATTRCREATE => Tmessage::XattrCreate { fid: r.u32()?, name: r.string()?, size: r.u64()?, flags: r.u32()? },
        op::TREADDIR => Tmessage::Readdir { fid: r.u32()?, offset: r.u64()?, count: r.u32()? },
        op::TFSYNC => Tmessage::Fsync { fid: r.u32()?, datasync: r.u32()? != 0 },
        op::TLOCK => {
            let fid = r.u32()?;
            r.u8()?;
            r.u32()?;
            r.u64()?;
            r.u64()?;
            r.u32()?;
            r.string()?;
            Tmessage::Lock { fid }
        }
        op::TGETLOCK => Tmessage::GetLock {
            fid: r.u32()?,
            ty: r.u8()?,
            start: r.u64()?,
            length: r.u64()?,
            proc_id: r.u32()?,
            client_id: r.string()?,
        },
        op::TLINK => Tmessage::Link { dfid: r.u32()?, fid: r.u32()?, name: r.string()? },
        op::TMKDIR => {
            let m = Tmessage::Mkdir { dfid: r.u32()?, name: r.string()?, mode: r.u32()? };
            r.u32()?;
            m
        }
        op::TRENAMEAT => Tmessage::Renameat {
            olddirfid: r.u32()?,
            oldname: r.string()?,
            newdirfid: r.u32()?,
            newname: r.string()?,
        },
        op::TUNLINKAT => Tmessage::Unlinkat { dirfid: r.u32()?, name: r.string()?, flags: r.u32()? },
        other => return Err(WireError::Unknown(other)),
    };
    r.end()?;
    Ok(m)
}

/// An R-message under construction.
pub struct Reply {
    buf: Vec<u8>,
}

impl Reply {
    pub fn new(ty: u8, tag: u16) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        buf.push(ty);
        buf.extend_from_slice(&tag.to_le_bytes());
        Self { buf }
    }

    pub fn error(tag: u16, errno: i32) -> Vec<u8> {
        Reply::new(op::RLERROR, tag).u32(errno as u32).finish()
    }

    pub fn u8(mut self, v: u8) -> Self {
        self.buf.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string; the caller keeps it under 64 KiB (names, link targets, version strings).
    pub fn string(self, s: &[u8]) -> Self {
        let n = s.len().min(usize::from(u16::MAX));
        self.u16(n as u16).bytes(&s[..n])
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn qid(self, q: Qid) -> Self {
        self.u8(q.ty).u32(q.version).u64(q.path)
    }

    /// Fills in the size field.
    pub fn finish(mut self) -> Vec<u8> {
        let size = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&size.to_le_bytes());
        self.buf
    }
}

/// Builds a T-message (for tests).
#[cfg(test)]
pub fn tmsg(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    Reply::new(ty, tag).bytes(body).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_and_write() {
        let body = [&1u32.to_le_bytes()[..], &2u32.to_le_bytes(), &2u16.to_le_bytes(), b"\x01\x00a\x02\x00bc"].concat();
        let m = tmsg(op::TWALK, 5, &body);
        assert_eq!(header(&m), Ok((op::TWALK, 5)));
        assert_eq!(parse(&m), Ok(Tmessage::Walk { fid: 1, newfid: 2, names: vec![b"a", b"bc"] }));
        let body = [&1u32.to_le_bytes()[..], &9u64.to_le_bytes(), &3u32.to_le_bytes(), b"xyz"].concat();
        assert_eq!(parse(&tmsg(op::TWRITE, 1, &body)), Ok(Tmessage::Write { fid: 1, offset: 9, data: b"xyz" }));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(&[1, 2, 3]), Err(WireError::Short));
        let mut m = tmsg(op::TCLUNK, 1, &7u32.to_le_bytes());
        m[0] = 99;
        assert_eq!(parse(&m), Err(WireError::Size(99)));
        assert_eq!(parse(&tmsg(op::TCLUNK, 1, &[7, 0, 0])), Err(WireError::Body));
        assert_eq!(parse(&tmsg(op::TCLUNK, 1, &[7, 0, 0, 0, 0])), Err(WireError::Body));
        assert_eq!(parse(&tmsg(200, 1, &[])), Err(WireError::Unknown(200)));
        // A write whose count is larger than the data.
        let body = [&1u32.to_le_bytes()[..], &0u64.to_le_bytes(), &100u32.to_le_bytes(), b"xy"].concat();
        assert_eq!(parse(&tmsg(op::TWRITE, 1, &body)), Err(WireError::Body));
        // Too many walk names.
        let body = [&1u32.to_le_bytes()[..], &2u32.to_le_bytes(), &17u16.to_le_bytes()].concat();
        assert_eq!(parse(&tmsg(op::TWALK, 1, &body)), Err(WireError::Body));
    }

    #[test]
    fn reply_size() {
        let r = Reply::new(op::TVERSION + 1, NOTAG).u32(8192).string(b"9P2000.L").finish();
        assert_eq!(r.len(), 7 + 4 + 2 + 8);
        assert_eq!(u32::from_le_bytes(r[..4].try_into().unwrap()) as usize, r.len());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes never panic the parser.
            #[test]
            fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = parse(&bytes);
            }

            /// A valid header with an arbitrary body of any known type never panics, and
            /// a parsed walk never has more than MAXWELEM names.
            #[test]
            fn any_body(ty in proptest::sample::select(vec![
                    op::TVERSION, op::TAUTH, op::TATTACH, op::TFLUSH, op::TWALK, op::TREAD, op::TWRITE,
                    op::TCLUNK, op::TREMOVE, op::TSTATFS, op::TLOPEN, op::TLCREATE, op::TSYMLINK,
                    op::TMKNOD, op::TRENAME, op::TREADLINK, op::TGETATTR, op::TSETATTR, op::TXATTRWALK,
                    op::TXATTRCREATE, op::TREADDIR, op::TFSYNC, op::TLOCK, op::TGETLOCK, op::TLINK,
                    op::TMKDIR, op::TRENAMEAT, op::TUNLINKAT]),
                    body in proptest::collection::vec(any::<u8>(), 0..120)) {
                if let Ok(Tmessage::Walk { names, .. }) = parse(&tmsg(ty, 1, &body)) {
                    prop_assert!(names.len() <= MAXWELEM);
                }
            }
        }
    }
}
