//! The CPUID each vCPU sees: KVM's supported list, with the topology leaves rewritten to
//! describe this VM instead of the host.
//!
//! KVM passes the host's topology through (logical processor counts, cache sharing,
//! cores per package); a guest that believed it would look for CPUs that do not exist.
//! Every vCPU is described as one core of one thread, `count` cores in one package, its
//! (x2)APIC id its index, as Firecracker and cloud-hypervisor do:
//! - leaf 1: initial APIC id (EBX[31:24]), logical processors per package (EBX[23:16]),
//!   HTT (EDX[28]) when there is more than one;
//! - leaf 4 (Intel's cache parameters): cores per package (EAX[31:26]) and the logical
//!   processors sharing each cache (EAX[25:14]): one for L1 and L2, all for L3;
//! - leaves 0xB and 0x1F (extended topology): an SMT level of one thread, a core level of
//!   `count` cores, the x2APIC id in EDX of every subleaf;
//! - AMD: 0x80000001 CmpLegacy (ECX[1]), 0x80000008 cores per package (ECX[7:0], with
//!   ECX[15:12] zero: derived from it), 0x8000001E extended APIC id and core id.

use kvm_bindings::{kvm_cpuid_entry2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

/// Leaves rewritten whole, with subleaves 0..[`TOPOLOGY_SUBLEAVES`].
const EXTENDED_TOPOLOGY: [u32; 2] = [0xb, 0x1f];
/// SMT, core, and the terminating invalid level.
const TOPOLOGY_SUBLEAVES: u32 = 3;
/// Level types of leaves 0xB/0x1F (ECX[15:8]).
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// Bits of an APIC id needed to number `count` cores: ceil(log2(count)).
fn id_bits(count: u8) -> u32 {
    u32::from(count.max(1)).next_power_of_two().trailing_zeros()
}

/// Rewrites the topology leaves of `entries` for vCPU `index` of `count`.
pub fn patch(entries: &mut Vec<kvm_cpuid_entry2>, index: u8, count: u8) {
    let id = u32::from(index);
    let n = u32::from(count.max(1));
    let present: Vec<u32> = EXTENDED_TOPOLOGY.into_iter().filter(|f| entries.iter().any(|e| e.function == *f)).collect();
    entries.retain(|e| !EXTENDED_TOPOLOGY.contains(&e.function));
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((n & 0xff) << 16);
                if n > 1 {
                    e.edx |= 1 << 28;
                } else {
                    e.edx &= !(1 << 28);
                }
            }
            4 if e.eax & 0x1f != 0 => {
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { n - 1 } else { 0 };
                e.eax = (e.eax & 0x0000_3fff) | (((n - 1) & 0x3f) << 26) | ((sharing & 0xfff) << 14);
            }
            0x8000_0001 => {
                if n > 1 {
                    e.ecx |= 1 << 1;
                } else {
                    e.ecx &= !(1 << 1);
                }
            }
            0x8000_0008 => e.ecx = (e.ecx & !0xf0ff) | ((n - 1) & 0xff),
            0x8000_001e => {
                e.eax = id;
                e.ebx = (e.ebx & !0xffff) | (id & 0xff); // one thread per core, core id = index
                e.ecx = 0; // node 0, one node
            }
            _ => {}
        }
    }
    for function in present {
        for sub in 0..TOPOLOGY_SUBLEAVES {
            let (eax, ebx, level) = match sub {
                0 => (0, 1, LEVEL_SMT),
                1 => (id_bits(count), n, LEVEL_CORE),
                _ => (0, 0, 0),
            };
            entries.push(kvm_cpuid_entry2 {
                function,
                index: sub,
                flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                eax,
                ebx,
                ecx: (level << 8) | sub,
                edx: id,
                ..Default::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 { function, index, eax, ebx, ecx, edx, ..Default::default() }
    }

    fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *entries.iter().find(|e| e.function == function && e.index == index).unwrap_or_else(|| panic!("no leaf {function:#x}.{index}"))
    }

    /// A host with 2 threads per core, 64 logical processors, L3 shared by 16 threads.
    fn host() -> Vec<kvm_cpuid_entry2> {
        vec![
            entry(0, 0, 0x1f, 0, 0, 0),
            entry(1, 0, 0x000a_0f10, 0x2a40_0800, 0xfef8_3203, 0x178b_fbff),
            entry(4, 0, (31 << 26) | (1 << 14) | (1 << 5) | 1, 0, 0, 0),
            entry(4, 1, (31 << 26) | (1 << 14) | (2 << 5) | 3, 0, 0, 0),
            entry(4, 2, (31 << 26) | (15 << 14) | (3 << 5) | 3, 0, 0, 0),
            entry(4, 3, 0, 0, 0, 0),
            entry(0xb, 0, 1, 2, 0x100, 0),
            entry(0xb, 1, 6, 64, 0x201, 0),
            entry(0x1f, 0, 1, 2, 0x100, 0),
            entry(0x1f, 1, 6, 64, 0x201, 0),
            entry(0x8000_0001, 0, 0, 0, 0x75c2_37ff, 0),
            entry(0x8000_0008, 0, 0x3030, 0, 0x703f, 0),
            entry(0x8000_001e, 0, 0x35, 0x0103, 0x0300, 0),
        ]
    }

    #[test]
    fn topology_follows_the_vcpu_count() {
        let mut e = host();
        patch(&mut e, 2, 3);
        let leaf1 = find(&e, 1, 0);
        assert_eq!(leaf1.ebx >> 24, 2, "initial APIC id");
        assert_eq!((leaf1.ebx >> 16) & 0xff, 3, "logical processors per package");
        assert_eq!(leaf1.ebx & 0xffff, 0x0800, "CLFLUSH size and brand kept");
        assert_ne!(leaf1.edx & (1 << 28), 0, "HTT");
        for (sub, sharing) in [(0, 0), (1, 0), (2, 2)] {
            let l4 = find(&e, 4, sub);
            assert_eq!(l4.eax >> 26, 2, "cores per package - 1");
            assert_eq!((l4.eax >> 14) & 0xfff, sharing, "subleaf {sub}");
            assert_eq!(l4.eax & 0x3fff, find(&host(), 4, sub).eax & 0x3fff, "cache type and level kept");
        }
        assert_eq!(find(&e, 4, 3).eax, 0, "the terminating subleaf is left alone");
        for f in [0xb, 0x1f] {
            let smt = find(&e, f, 0);
            assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 2));
            let core = find(&e, f, 1);
            assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (2, 3, 0x201, 2));
            let end = find(&e, f, 2);
            assert_eq!((end.eax, end.ebx, end.ecx & 0xff00, end.edx), (0, 0, 0, 2));
            assert!(e.iter().filter(|x| x.function == f).all(|x| x.flags == KVM_CPUID_FLAG_SIGNIFCANT_INDEX));
            assert_eq!(e.iter().filter(|x| x.function == f).count(), 3);
        }
        assert_eq!(find(&e, 0x8000_0008, 0).ecx & 0xf0ff, 2);
        assert_ne!(find(&e, 0x8000_0001, 0).ecx & 2, 0, "CmpLegacy");
        let ext = find(&e, 0x8000_001e, 0);
        assert_eq!((ext.eax, ext.ebx & 0xffff, ext.ecx), (2, 2, 0));
    }

    #[test]
    fn one_vcpu_is_one_core() {
        let mut e = host();
        patch(&mut e, 0, 1);
        let leaf1 = find(&e, 1, 0);
        assert_eq!((leaf1.ebx >> 16) & 0xffff, 1);
        assert_eq!(leaf1.edx & (1 << 28), 0, "no HTT");
        assert_eq!(find(&e, 4, 2).eax >> 14, 0);
        assert_eq!(find(&e, 0xb, 1).eax, 0);
        assert_eq!(find(&e, 0xb, 1).ebx, 1);
        assert_eq!(find(&e, 0x8000_0001, 0).ecx & 2, 0);
    }

    #[test]
    fn absent_leaves_are_not_invented() {
        let mut e: Vec<_> = host().into_iter().filter(|x| x.function != 0x1f).collect();
        patch(&mut e, 1, 4);
        assert!(e.iter().all(|x| x.function != 0x1f));
        assert_eq!(find(&e, 0xb, 1).eax, 2);
        assert_eq!(id_bits(5), 3);
        assert_eq!(id_bits(8), 3);
        assert_eq!(id_bits(9), 4);
    }

    /// KVM takes the rewritten list (skipped without /dev/kvm).
    #[test]
    fn kvm_accepts_it() {
        let Ok(kvm) = kvm_ioctls::Kvm::new() else { return };
        let vm = kvm.create_vm().unwrap();
        let supported = kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES).unwrap();
        for index in 0..2u8 {
            let vcpu = vm.create_vcpu(u64::from(index)).unwrap();
            let mut entries = supported.as_slice().to_vec();
            patch(&mut entries, index, 2);
            let cpuid = kvm_bindings::CpuId::from_entries(&entries).unwrap();
            vcpu.set_cpuid2(&cpuid).unwrap();
            let back = vcpu.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES).unwrap();
            if let Some(b) = back.as_slice().iter().find(|e| e.function == 0xb && e.index == 1) {
                assert_eq!((b.ebx, b.edx), (2, u32::from(index)));
            }
        }
    }
}
