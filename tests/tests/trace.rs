//! `vmm run --trace FILE.json`: a QD8 O_DIRECT read workload (blktest's `qd` mode) is
//! traced, and the timeline is checked the way a reader would use it: every request has
//! its whole chain, SQE to "CQE seen", across the guest, the virtqueue and the VMM, in
//! causal order on one clock, linked by flow arrows.

use std::collections::HashMap;

use serde_json::Value;
use tests::{Platform, kvm_available, rootfs, scratch_dir};

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
        let ev = Ev {
            name: e["name"].as_str().expect("a name").to_owned(),
            ts: e["ts"].as_f64().expect("a ts"),
            pid: e["pid"].as_u64().expect("a pid"),
        };
        let args = &e["args"];
        let ids: Vec<u64> = match (&args["req"], &args["reqs"]) {
            (Value::Number(n), _) => vec![n.as_u64().expect("an id")],
            (_, Value::Array(list)) => list.iter().map(|v| v.as_u64().expect("an id")).collect(),
            _ => continue,
        };
        for id in ids {
            by.entry(id)
                .or_default()
                .entry(ev.name.clone())
                .or_default()
                .push(ev.clone());
        }
    }
    by
}

#[test]
fn qd8_reads_have_their_whole_chain_on_one_clock() {
    if !kvm_available() {
        return;
    }
    let dir = scratch_dir("trace-qd8");
    let img = dir.join("disk.img");
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&img, data).expect("write the disk image");
    let json = dir.join("trace.json");
    let (disk, trace, rootfs) = (
        img.display().to_string(),
        json.display().to_string(),
        rootfs(),
    );
    let args = [
        "--vcpus",
        "2",
        "--disk",
        &disk,
        "--initrd",
        rootfs.to_str().unwrap(),
        "--timeout",
        "100",
        "--trace",
        &trace,
    ];
    let out = tests::boot(
        Platform::Vmm,
        "init=/bin/blktest -- /dev/vda qd 8 64",
        &args,
    );
    out.assert_stdout("trace: on, ")
        .assert_stdout("blktest: qd 8: 64 reads ok")
        .assert_init_status(Platform::Vmm, 0);
    assert!(
        out.stderr
            .contains("64 requests (64 complete chains), 0 dropped"),
        "vmm's summary\n{out}"
    );
    assert!(
        !out.stderr.contains("NEGATIVE"),
        "the clock check failed\n{out}"
    );

    let text = std::fs::read_to_string(&json).expect("the trace file");
    let trace: Value = serde_json::from_str(&text).expect("the trace is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");

    // The tracks: per guest CPU, per guest task, per virtqueue, per VMM thread.
    let names: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["ph"] == "M" && (e["name"] == "process_name" || e["name"] == "thread_name"))
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        "guest CPUs",
        "guest tasks",
        "virtqueues",
        "VMM threads",
        "CPU 0",
        "CPU 1",
    ] {
        assert!(
            names.iter().any(|(_, n)| n == want),
            "no track {want:?}: {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|(pid, n)| *pid == 3 && n.starts_with("virtio-blk@") && n.contains(" q")),
        "no virtqueue track: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|(pid, n)| *pid == 4 && n.starts_with("virtio-blk@")),
        "no VMM worker track: {names:?}"
    );

    // Every read: the whole chain. user_data 0..63 each once, every one a READ of 4 KiB.
    let by = chains(events);
    let mut seen_user_data = Vec::new();
    let mut requests = 0;
    for (id, chain) in &by {
        let Some(sqe) = chain.get("sqe") else {
            continue;
        };
        requests += 1;
        let sqe_event = events
            .iter()
            .find(|e| e["name"] == "sqe" && e["args"]["req"] == *id)
            .expect("the sqe event");
        assert_eq!(sqe_event["args"]["opcode"], 22, "request {id} is a READ");
        seen_user_data.push(sqe_event["args"]["user_data"].as_u64().unwrap());
        let first = |kind: &str| -> &Ev {
            chain
                .get(kind)
                .and_then(|v| v.first())
                .unwrap_or_else(|| panic!("request {id} has no {kind:?}: {:?}", chain.keys()))
        };
        let either = |a: &str, b: &str| -> &Ev {
            chain
                .get(a)
                .or_else(|| chain.get(b))
                .and_then(|v| v.first())
                .unwrap_or_else(|| panic!("request {id} has neither {a:?} nor {b:?}"))
        };
        let kick = either("kick", "kick suppressed");
        let irq_decision = either("irq inject", "irq suppressed");
        let cqe = first("cqe");
        let cqe_event = events
            .iter()
            .find(|e| e["name"] == "cqe" && e["args"]["req"] == *id)
            .unwrap();
        assert_eq!(cqe_event["args"]["res"], 4096, "request {id}'s result");
        // Causal order on one clock: guest -> VMM -> guest.
        let order = [
            &sqe[0],
            first("prep"),
            first("issue"),
            first("publish"),
            first("pop"),
            first("host submit"),
            first("host complete"),
            first("used"),
            first("used seen"),
            cqe,
            first("cqe seen"),
        ];
        for w in order.windows(2) {
            assert!(
                w[0].ts <= w[1].ts,
                "request {id}: {} at {} after {} at {}",
                w[0].name,
                w[0].ts,
                w[1].name,
                w[1].ts
            );
        }
        assert!(
            first("publish").ts <= kick.ts,
            "request {id}: kicked before it was published"
        );
        assert!(
            first("used").ts <= irq_decision.ts,
            "request {id}: interrupt decided before its used entry"
        );
        assert!(
            first("irq").ts <= first("used seen").ts,
            "request {id}: reaped before the interrupt that reaped it"
        );
        // Guest events on guest tracks, the VMM's on its own.
        assert!(
            first("pop").pid == 4
                && first("publish").pid == 3
                && first("irq").pid == 1
                && cqe.pid == 2,
            "request {id}: tracks"
        );
    }
    assert_eq!(requests, 64, "requests in the trace");
    seen_user_data.sort_unstable();
    assert_eq!(
        seen_user_data,
        (0..64).collect::<Vec<u64>>(),
        "one request per read"
    );

    // Flow arrows: one start and one finish per edge, never backwards in time; a dozen
    // edges per request at least.
    let mut flows: HashMap<u64, (Option<f64>, Option<f64>)> = HashMap::new();
    for e in events {
        let ts = e["ts"].as_f64();
        match e["ph"].as_str() {
            Some("s") => flows.entry(e["id"].as_u64().unwrap()).or_default().0 = ts,
            Some("f") => flows.entry(e["id"].as_u64().unwrap()).or_default().1 = ts,
            _ => {}
        }
    }
    assert!(
        flows.len() >= 64 * 12,
        "{} flow arrows for 64 requests",
        flows.len()
    );
    for (id, (s, f)) in &flows {
        let (s, f) = (
            s.unwrap_or_else(|| panic!("flow {id} has no start")),
            f.unwrap_or_else(|| panic!("flow {id} has no end")),
        );
        assert!(s <= f, "flow {id} runs backwards: {s} -> {f}");
    }
    // Each request is also one span from its SQE to its CQE.
    assert_eq!(
        events
            .iter()
            .filter(|e| e["ph"] == "b" && e["cat"] == "request")
            .count(),
        64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
