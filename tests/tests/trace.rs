//! Timelines: a QD8 O_DIRECT read workload (blktest's `qd` mode) is traced, and the
//! timeline is checked the way a reader uses it: every request has its whole chain, SQE
//! to "CQE seen", in causal order on one clock, joined by flow arrows.
//!
//! Under `vmm run --trace` the chain crosses the guest, the virtqueue and the VMM (pop,
//! host I/O, used entry, interrupt decision). Under QEMU (`scripts/qemu.sh` with
//! QEMU_TRACE does the same) the guest's RAM is kept in a file and `vmm trace-import`
//! reads the kernel's rings from it: the guest's events only, on the guest's clock.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;
use tests::{on_both_platforms, rootfs, scratch_dir, vmm_bin, Platform};

/// One timeline event the checks need.
#[derive(Debug, Clone)]
struct Ev {
    name: String,
    ts: f64,
    pid: u64,
}

/// Every request's events by kind (a shared event counts for each request it names).
fn chains(events: &[Value]) -> HashMap<u64, HashMap<String, Vec<Ev>>> {
    let mut by: HashMap<u64, HashMap<String, Vec<Ev>>> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let ev = Ev { name: e["args"]["kind"].as_str().expect("a kind").to_owned(), ts: e["ts"].as_f64().expect("a ts"), pid: e["pid"].as_u64().expect("a pid") };
        let ids: Vec<u64> = match (&e["args"]["req"], &e["args"]["reqs"]) {
            (Value::Number(n), _) => vec![n.as_u64().expect("an id")],
            (_, Value::Array(list)) => list.iter().map(|v| v.as_u64().expect("an id")).collect(),
            _ => continue,
        };
        for id in ids {
            by.entry(id).or_default().entry(ev.name.clone()).or_default().push(ev.clone());
        }
    }
    by
}

/// Runs 64 QD8 reads traced on `p`; the timeline's JSON and vmm's report (stderr).
fn traced_qd8(p: Platform) -> (Value, String) {
    let dir = scratch_dir(&format!("trace-qd8-{p:?}"));
    let img = dir.join("disk.img");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&img, data).expect("write the disk image");
    let json = dir.join("trace.json");
    let (disk, trace, rootfs) = (img.display().to_string(), json.display().to_string(), rootfs());
    let rootfs = rootfs.to_str().unwrap();
    let workload = "init=/bin/blktest -- /dev/vda qd 8 64";
    let report = match p {
        Platform::Vmm => {
            let args = ["--vcpus", "2", "--disk", &disk, "--initrd", rootfs, "--timeout", "100", "--trace", &trace];
            let out = tests::boot(p, workload, &args);
            out.assert_stdout("trace: on, ").assert_stdout("blktest: qd 8: 64 reads ok").assert_init_status(p, 0);
            out.stderr
        }
        Platform::QemuTcg => {
            let memory = dir.join("ram");
            let backend = format!("memory-backend-file,id=ram0,size=256M,mem-path={},share=on", memory.display());
            let drive = format!("file={disk},if=none,format=raw,id=d0");
            let args = ["-object", &backend, "-machine", "memory-backend=ram0", "-initrd", rootfs, "-drive", &drive, "-device", "virtio-blk-device,drive=d0"];
            let out = tests::boot_smp(p, &format!("trace=2M {workload}"), &args, "2");
            out.assert_stdout("trace: on, ").assert_stdout("blktest: qd 8: 64 reads ok").assert_init_status(p, 0);
            let import = Command::new(vmm_bin()).arg("trace-import").arg(&memory).arg(&json).output().expect("run vmm trace-import");
            let report = String::from_utf8_lossy(&import.stderr).into_owned();
            assert!(import.status.success(), "vmm trace-import failed: {report}");
            report
        }
    };
    let text = std::fs::read_to_string(&json).expect("the trace file");
    let _ = std::fs::remove_dir_all(&dir);
    (serde_json::from_str(&text).expect("the trace is JSON"), report)
}

on_both_platforms!(qd8_reads_have_their_whole_chain_on_one_clock, |p| {
    let (trace, report) = traced_qd8(p);
    assert!(!report.contains("NEGATIVE"), "the clock check failed: {report}");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let vmm = p == Platform::Vmm;

    // The tracks: per guest CPU, per guest task, per virtqueue, per VMM thread.
    let names: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["ph"] == "M" && (e["name"] == "process_name" || e["name"] == "thread_name"))
        .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap().to_owned()))
        .collect();
    for want in ["guest CPUs", "guest tasks", "virtqueues", "VMM threads", "CPU 0", "CPU 1", "task 1"] {
        assert!(names.iter().any(|(_, n)| n == want), "no track {want:?}: {names:?}");
    }
    if vmm {
        assert!(names.iter().any(|(pid, n)| *pid == 3 && n.starts_with("virtio-blk@") && n.contains(" q")), "no virtqueue name: {names:?}");
        assert!(names.iter().any(|(pid, n)| *pid == 4 && n.starts_with("virtio-blk@")), "no VMM worker track: {names:?}");
    } else {
        assert!(trace["otherData"]["clock"].as_str().is_some_and(|c| c.contains("virtual clock")), "the clock is labelled");
    }

    // Every read: the whole chain. One request per read, each a READ of 4 KiB.
    let by = chains(events);
    let mut reads = Vec::new();
    for (id, chain) in by.iter().filter(|(_, c)| c.contains_key("sqe")) {
        let event = |kind: &str| events.iter().find(|e| e["args"]["kind"] == kind && e["args"]["req"] == *id).expect("an event");
        assert_eq!(event("sqe")["args"]["opcode"], 22, "request {id} is a READ");
        assert_eq!(event("cqe")["args"]["res"], 4096, "request {id}'s result");
        reads.push(event("sqe")["args"]["user_data"].as_u64().unwrap() >> 8);
        let first = |kind: &str| -> &Ev {
            chain.get(kind).and_then(|v| v.first()).unwrap_or_else(|| panic!("request {id} has no {kind:?}: {:?}", chain.keys()))
        };
        let either = |a: &str, b: &str| -> &Ev {
            chain.get(a).or_else(|| chain.get(b)).and_then(|v| v.first()).unwrap_or_else(|| panic!("request {id} has neither {a:?} nor {b:?}"))
        };
        // Causal order on one clock: guest -> VMM -> guest.
        let mut order = vec![first("sqe"), first("prep"), first("issue"), first("publish")];
        if vmm {
            order.extend([first("pop"), first("host submit"), first("host complete"), first("used")]);
            assert!(first("used").ts <= either("irq inject", "irq suppressed").ts, "request {id}: interrupt decided before its used entry");
            assert!(first("pop").pid == 4, "request {id}: the VMM's events on its tracks");
        }
        order.extend([first("used seen"), first("cqe"), first("cqe seen")]);
        for w in order.windows(2) {
            assert!(w[0].ts <= w[1].ts, "request {id}: {} at {} after {} at {}", w[0].name, w[0].ts, w[1].name, w[1].ts);
        }
        assert!(first("publish").ts <= either("kick", "kick suppressed").ts, "request {id}: kicked before it was published");
        assert!(first("irq").ts <= first("used seen").ts, "request {id}: reaped before the interrupt that reaped it");
        assert!(first("publish").pid == 3 && first("irq").pid == 1 && first("cqe").pid == 2, "request {id}: tracks");
    }
    reads.sort_unstable();
    assert_eq!(reads, (0..64).collect::<Vec<u64>>(), "one request per read");

    // Flow arrows: one start and one finish per edge, never backwards in time; 8 edges
    // per request at least (12 with the VMM's events).
    let mut flows: HashMap<u64, (Option<f64>, Option<f64>)> = HashMap::new();
    for e in events {
        match e["ph"].as_str() {
            Some("s") => flows.entry(e["id"].as_u64().unwrap()).or_default().0 = e["ts"].as_f64(),
            Some("f") => flows.entry(e["id"].as_u64().unwrap()).or_default().1 = e["ts"].as_f64(),
            _ => {}
        }
    }
    assert!(flows.len() >= 64 * if vmm { 12 } else { 8 }, "{} flow arrows for 64 requests", flows.len());
    for (id, (s, f)) in &flows {
        let (s, f) = (s.unwrap_or_else(|| panic!("flow {id} has no start")), f.unwrap_or_else(|| panic!("flow {id} has no end")));
        assert!(s <= f, "flow {id} runs backwards: {s} -> {f}");
    }
    // Each request is one span from its SQE to its CQE.
    assert_eq!(events.iter().filter(|e| e["ph"] == "b" && e["cat"] == "request").count(), 64);
    assert!(report.contains("64 requests (64 complete chains), 0 dropped"), "the summary: {report}");
});

// Input that is not a memory image with trace rings: a one-line error, exit 2.
#[test]
fn trace_import_without_rings_is_a_clear_error() {
    let dir = scratch_dir("trace-import-empty");
    let memory = dir.join("ram");
    std::fs::write(&memory, vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(vmm_bin()).arg("trace-import").arg(&memory).arg(dir.join("t.json")).output().expect("run vmm");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no trace rings") && err.lines().count() == 1, "stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
