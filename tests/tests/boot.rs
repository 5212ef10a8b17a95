//! The guest kernel boots and behaves the same under `vmm run` (KVM) and QEMU (TCG).

use tests::{boot, on_both_platforms, Platform};

on_both_platforms!(banner_memory_map_and_cmdline, |p| {
    let out = boot(p, "loglevel=info foo=\"a b\" -- x y", &[]);
    out.assert_status(0)
        .assert_stdout("guest-kernel 0.1.0: booted by PVH")
        .assert_stdout("memory map (255 MiB usable):")
        .assert_stdout("0x0000100000-0x0010000000 ram")
        .assert_stdout("command line: loglevel=info foo=\"a b\" -- x y")
        .assert_stdout("guest-kernel: done, exiting");
});

on_both_platforms!(exit_status_reaches_the_host, |p| {
    // QEMU reports (status << 1) | 1 in an 8-bit exit code, so statuses above 127 cannot pass it.
    for status in [0, 1, 42, 127] {
        let out = boot(p, &format!("test=exit:{status}"), &[]);
        out.assert_status(status).assert_stdout(&format!("ktest exit: exiting with status {status}"));
        assert!(!out.stdout.contains("done, exiting"), "kernel went on after exit\n{out}");
    }
});

on_both_platforms!(panic_prints_message_and_location, |p| {
    let out = boot(p, "test=panic", &[]);
    out.assert_status(101)
        .assert_stdout("kernel panic at guest-kernel/src/ktest.rs:")
        .assert_stdout("panic requested on the command line");
});

on_both_platforms!(page_fault_is_reported, |p| {
    let out = boot(p, "test=fault", &[]);
    out.assert_status(101)
        .assert_stdout("exception #PF page fault (vector 14)")
        .assert_stdout("cr2=0xffffa000dead0000")
        .assert_stdout("rip=0xffffffff8");
});

on_both_platforms!(invalid_opcode_is_reported, |p| {
    boot(p, "test=ud", &[]).assert_status(101).assert_stdout("exception #UD invalid opcode (vector 6)");
});

on_both_platforms!(timer_interrupts_arrive, |p| {
    let out = boot(p, "test=timer", &[]);
    out.assert_status(0).assert_stdout("ktest timer: 10 ticks");
});

on_both_platforms!(initrd_is_passed_as_a_module, |p| {
    let dir = std::env::temp_dir().join(format!("initrd-test-{}-{p:?}", std::process::id()));
    std::fs::write(&dir, vec![0x5a; 12345]).expect("write initrd");
    let path = dir.to_str().expect("utf-8");
    let extra = match p {
        Platform::Vmm => ["--initrd", path],
        Platform::QemuTcg => ["-initrd", path],
    };
    let out = boot(p, "", &extra);
    let _ = std::fs::remove_file(&dir);
    // Not a cpio archive: reported, and with no root filesystem there is no init to run.
    out.assert_status(0).assert_stdout("initrd: 12345 bytes at 0x").assert_stdout("not a usable initramfs: bad cpio magic");
});

on_both_platforms!(virtio_devices_on_the_cmdline_are_parsed, |p| {
    let out = boot(p, "virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=4K@0xfeb00c00:11", &[]);
    out.assert_status(0)
        .assert_stdout("virtio-mmio: 0x200 bytes at 0xfeb00e00, irq 12")
        .assert_stdout("virtio-mmio: 0x1000 bytes at 0xfeb00c00, irq 11");
});

on_both_platforms!(bad_cmdline_words_are_reported, |p| {
    let out = boot(p, "loglevel=loud", &[]);
    out.assert_status(0).assert_stdout("cannot parse \"loglevel=loud\"");
});

on_both_platforms!(two_vcpus_boot, |p| {
    let extra: &[&str] = match p {
        Platform::Vmm => &["--vcpus", "2"],
        Platform::QemuTcg => &[],
    };
    tests::boot_smp(p, "test=timer", extra, "2")
        .assert_status(0)
        .assert_stdout("smp: 2 of 2 CPUs online")
        .assert_stdout("ktest timer: 10 ticks");
});

on_both_platforms!(one_vcpu_is_one_cpu, |p| {
    boot(p, "test=timer", &[]).assert_status(0).assert_stdout("smp: 1 of 1 CPUs online");
});

// As many vCPUs as host cores and more (the host has 2): every one comes up.
on_both_platforms!(eight_vcpus_boot, |p| {
    let extra: &[&str] = match p {
        Platform::Vmm => &["--vcpus", "8"],
        Platform::QemuTcg => &[],
    };
    tests::boot_smp(p, "test=timer", extra, "8").assert_status(0).assert_stdout("smp: 8 of 8 CPUs online");
});

on_both_platforms!(kernel_threads_take_turns_through_a_wait_queue, |p| {
    let out = boot(p, "test=kthread", &[]);
    out.assert_status(0)
        .assert_stdout("ktest kthread: thread 0 round 0")
        .assert_stdout("ktest kthread: thread 1 round 4")
        .assert_stdout("ktest kthread: 10 turns");
    let order: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("ktest kthread: thread")).collect();
    assert_eq!(order.len(), 10, "{out}");
    for (i, line) in order.iter().enumerate() {
        assert!(line.contains(&format!("thread {} round {}", i % 2, i / 2)), "out of turn: {line}\n{out}");
    }
});
