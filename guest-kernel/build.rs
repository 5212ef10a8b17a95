//! Links the kernel at its fixed addresses (see linker.ld), and builds the vDSO
//! (`vdso/`): its Rust source compiled for the bare-metal target, position-independent,
//! then linked by rust-lld into the shared object the kernel embeds.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
    for f in ["vdso/vdso.rs", "vdso/vdso.lds", "vdso/vdso.ver"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    build_vdso(Path::new(&dir), &out);
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn build_vdso(dir: &Path, out: &Path) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let obj = out.join("vdso.o");
    run(Command::new(&rustc)
        .args(["--edition", "2024", "--crate-type", "lib", "--crate-name", "vdso", "--emit", "obj"])
        .args(["--target", "x86_64-unknown-none", "-C", "relocation-model=pic", "-C", "code-model=small"])
        .args(["-C", "opt-level=2", "-C", "panic=abort", "-C", "debuginfo=0"])
        .arg("-o")
        .arg(&obj)
        .arg(dir.join("vdso/vdso.rs")));
    // rust-lld ships with the toolchain, in the host's rustlib directory.
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("rustc --print sysroot").stdout;
    let host = std::env::var("HOST").expect("cargo sets HOST");
    let lld = PathBuf::from(String::from_utf8(sysroot).expect("UTF-8 path").trim()).join(format!("lib/rustlib/{host}/bin/rust-lld"));
    let mut link = Command::new(lld);
    link.args(["-flavor", "gnu", "-shared", "-soname=linux-vdso.so.1", "--hash-style=both", "--build-id=none"])
        .args(["-z", "max-page-size=4096", "-z", "defs", "-z", "norelro", "--no-undefined", "--eh-frame-hdr"])
        .arg(format!("-T{}", dir.join("vdso/vdso.lds").display()))
        .arg(format!("--version-script={}", dir.join("vdso/vdso.ver").display()));
    for f in ["clock_gettime", "gettimeofday", "time", "getcpu"] {
        link.arg(format!("--defsym={f}=__vdso_{f}"));
    }
    run(link.arg("-o").arg(out.join("vdso.so")).arg(&obj));
}
