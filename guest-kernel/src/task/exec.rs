//! Loading a static x86-64 ELF executable (ET_EXEC or static-PIE) into a new address
//! space, with the initial stack the System V ABI and Linux define: argc, argv, envp, and
//! the auxiliary vector.

use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::gdt::{USER_CS, USER_DS};
use crate::arch::interrupts::TrapFrame;
use crate::errno::{KResult, E2BIG, EACCES, ENOEXEC};
use crate::fs;
use super::cred::{self, Cred};
use crate::mm::uaccess;
use crate::mm::user::{Backing, UserSpace, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mm::{page_down, page_up};

pub const STACK_TOP: u64 = 0x7fff_ffff_f000;
const STACK_SIZE: u64 = 8 << 20;
/// Where a static-PIE executable is placed (Linux uses a similar base).
const PIE_BASE: u64 = 0x5555_5555_4000;
/// Most bytes of arguments and environment accepted.
const ARG_MAX: usize = 128 * 1024;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_EXECFN: u64 = 31;
const AT_SYSINFO_EHDR: u64 = 33;

/// A loaded program, ready to run.
pub struct Image {
    pub mm: UserSpace,
    pub frame: TrapFrame,
    pub name: String,
    /// The credentials the program runs with (`Cred::exec`).
    pub cred: Cred,
    /// Whether they differ from the caller's ids or add capabilities (AT_SECURE).
    pub secure: bool,
}

struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The credentials a program with attributes `st` runs with: a set-user-ID file gives
/// its owner as the effective uid, a set-group-ID (and group-executable) one its group,
/// unless no_new_privs is set; then capabilities as `Cred::exec` says.
fn exec_cred(st: &fs::Stat) -> (Cred, bool) {
    let old = cred::current();
    let nnp = super::sched::try_current().is_some_and(|t| t.process.attrs.no_new_privs.load(core::sync::atomic::Ordering::Relaxed));
    let setuid = (st.mode & 0o4000 != 0 && !nnp).then_some(st.uid);
    let setgid = (st.mode & 0o2010 == 0o2010 && !nnp).then_some(st.gid);
    let mut new = (*old).clone();
    new.exec(setuid, setgid);
    let secure = new.secure_exec(&old);
    (new, secure)
}

/// Loads `path` (resolved from `cwd`) with the given arguments and environment.
pub fn load(path: &str, cwd: &str, argv: &[&[u8]], envp: &[&[u8]]) -> KResult<Image> {
    let node = fs::lookup(cwd, path, true)?;
    if !node.is_executable() {
        return Err(EACCES);
    }
    fs::perm::permission(&*node, fs::perm::MAY_EXEC)?;
    let (cred, secure) = exec_cred(&node.stat());
    let bytes = node.contents()?;
    let elf: &[u8] = &bytes;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        log::debug!("exec {path}: not an ELF executable");
        return Err(ENOEXEC);
    }
    let (etype, machine) = (u16_at(elf, 16), u16_at(elf, 18));
    if elf[4] != 2 || elf[5] != 1 || machine != 62 || (etype != ET_EXEC && etype != ET_DYN) || u16_at(elf, 54) != 56 {
        return Err(ENOEXEC);
    }
    let (entry, phoff, phnum) = (u64_at(elf, 24), u64_at(elf, 32) as usize, u16_at(elf, 56) as usize);
    let phdrs_end = phoff.checked_add(phnum * 56).ok_or(ENOEXEC)?;
    if phdrs_end > elf.len() {
        return Err(ENOEXEC);
    }
    let phdrs: Vec<Phdr> = (0..phnum)
        .map(|i| {
            let h = &elf[phoff + i * 56..];
            Phdr {
                p_type: u32_at(h, 0),
                flags: u32_at(h, 4),
                offset: u64_at(h, 8),
                vaddr: u64_at(h, 16),
                filesz: u64_at(h, 32),
                memsz: u64_at(h, 40),
            }
        })
        .collect();
    if phdrs.iter().any(|p| p.p_type == PT_INTERP) {
        log::warn!("exec {path}: dynamically linked executables are not supported");
        return Err(ENOEXEC);
    }
    let bias = if etype == ET_DYN { PIE_BASE } else { 0 };

    let mut mm = UserSpace::new()?;
    let exe = if path.starts_with('/') { String::from(path) } else { alloc::format!("{}/{path}", cwd.trim_end_matches('/')) };
    let mut last_end = 0u64;
    let mut image_end = 0u64;
    let mut phdr_addr = 0u64;
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.memsz > 0) {
        let file_end = p.offset.checked_add(p.filesz).ok_or(ENOEXEC)?;
        if file_end > elf.len() as u64 || p.filesz > p.memsz {
            return Err(ENOEXEC);
        }
        let start = bias.checked_add(p.vaddr).ok_or(ENOEXEC)?;
        let end = start.checked_add(p.memsz).ok_or(ENOEXEC)?;
        let prot = (if p.flags & 4 != 0 { PROT_READ } else { 0 })
            | (if p.flags & 2 != 0 { PROT_WRITE } else { 0 })
            | (if p.flags & 1 != 0 { PROT_EXEC } else { 0 });
        let (mut first_page, end_page) = (page_down(start), page_up(end));
        if first_page < last_end {
            // This segment shares a page with the previous one: that page gets both
            // segments' permissions.
            let prev = mm.vma(first_page).map_or(0, |v| v.prot);
            mm.protect(first_page, last_end, prev | prot)?;
            first_page = last_end;
        }
        if first_page < end_page {
            mm.map_fixed(first_page, end_page, prot, Backing::Private).map_err(|_| ENOEXEC)?;
        }
        uaccess::copy_to_new_image(&mut mm, start, &elf[p.offset as usize..file_end as usize])?;
        if first_page < end_page {
            mm.label(first_page, end_page, &exe, p.offset.wrapping_add(first_page).wrapping_sub(start));
        }
        if p.offset <= phoff as u64 && phdrs_end as u64 <= file_end {
            phdr_addr = start + (phoff as u64 - p.offset);
        }
        last_end = last_end.max(end_page);
        image_end = image_end.max(end);
    }
    if let Some(p) = phdrs.iter().find(|p| p.p_type == PT_PHDR) {
        phdr_addr = bias + p.vaddr;
    }
    if image_end == 0 {
        return Err(ENOEXEC);
    }
    mm.exe = exe;
    mm.brk_start = page_up(image_end);
    mm.brk = mm.brk_start;

    mm.map_fixed(STACK_TOP - STACK_SIZE, STACK_TOP, PROT_READ | PROT_WRITE, Backing::Private)?;
    let vdso = crate::mm::vdso::map(&mut mm)?;
    let auxv = [
        (AT_SYSINFO_EHDR, vdso),
        (AT_PHDR, phdr_addr),
        (AT_PHENT, 56),
        (AT_PHNUM, phnum as u64),
        (AT_PAGESZ, 4096),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, bias + entry),
        (AT_UID, u64::from(cred.uid)),
        (AT_EUID, u64::from(cred.euid)),
        (AT_GID, u64::from(cred.gid)),
        (AT_EGID, u64::from(cred.egid)),
        (AT_SECURE, u64::from(secure)),
        (AT_HWCAP, u64::from(crate::arch::cpu::cpuid(1, 0)[3])),
        (AT_CLKTCK, 100),
    ];
    let sp = build_stack(&mut mm, path.as_bytes(), argv, envp, &auxv)?;
    let frame = TrapFrame {
        rip: bias + entry,
        rsp: sp,
        cs: u64::from(USER_CS),
        ss: u64::from(USER_DS),
        rflags: 0x202,
        ..TrapFrame::default()
    };
    let name = String::from(path.rsplit('/').next().unwrap_or(path));
    Ok(Image { mm, frame, name, cred, secure })
}

/// Writes strings, AT_RANDOM bytes, auxv, envp, argv and argc below `STACK_TOP`; returns
/// the initial stack pointer (16-byte aligned, pointing at argc).
fn build_stack(mm: &mut UserSpace, execfn: &[u8], argv: &[&[u8]], envp: &[&[u8]], auxv: &[(u64, u64)]) -> KResult<u64> {
    let strings: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum::<usize>() + execfn.len() + 1;
    if strings > ARG_MAX {
        return Err(E2BIG);
    }
    // The string area, built in kernel memory and copied once.
    let mut area = Vec::with_capacity(strings + 16);
    let area_start = (STACK_TOP - 8 - (strings as u64 + 16)) & !15;
    let place = |s: &[u8], area: &mut Vec<u8>| {
        let addr = area_start + area.len() as u64;
        area.extend_from_slice(s);
        area.push(0);
        addr
    };
    let argv_ptrs: Vec<u64> = argv.iter().map(|s| place(s, &mut area)).collect();
    mm.args = (area_start, area_start + area.len() as u64);
    let envp_ptrs: Vec<u64> = envp.iter().map(|s| place(s, &mut area)).collect();
    let execfn_ptr = place(execfn, &mut area);
    let random_ptr = area_start + area.len() as u64;
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    area.extend_from_slice(&random);
    uaccess::copy_to_new_image(mm, area_start, &area)?;

    let mut words: Vec<u64> = Vec::with_capacity(3 + argv.len() + envp.len() + 2 * (auxv.len() + 3));
    words.push(argv.len() as u64);
    words.extend(&argv_ptrs);
    words.push(0);
    words.extend(&envp_ptrs);
    words.push(0);
    for &(k, v) in auxv.iter().chain(&[(AT_RANDOM, random_ptr), (AT_EXECFN, execfn_ptr), (AT_NULL, 0)]) {
        words.push(k);
        words.push(v);
    }
    let sp = (area_start - words.len() as u64 * 8) & !15;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    uaccess::copy_to_new_image(mm, sp, &bytes)?;
    Ok(sp)
}
