//! Credentials (Linux's `struct cred`), as far as they exist here: every task is root,
//! with no groups or capabilities to tell apart, so a task's credentials are a constant.
//! io_uring's personalities (IORING_REGISTER_PERSONALITY) keep a snapshot of them for
//! their requests; once tasks have their own ids, `current` is where they are read.

/// A snapshot of a task's ids, taken when something must act for it later.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
}

impl Cred {
    /// uid and gid 0 throughout (what getuid and friends answer).
    pub const ROOT: Cred = Cred { uid: 0, gid: 0, euid: 0, egid: 0, suid: 0, sgid: 0, fsuid: 0, fsgid: 0 };
}

/// The calling task's credentials.
pub fn current() -> Cred {
    Cred::ROOT
}
