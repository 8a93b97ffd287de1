//! The CPUID table a vCPU reports, and the filter that makes it say only what the machine models.
//!
//! The KVM engine starts from KVM_GET_SUPPORTED_CPUID; the JIT will start from its own list of
//! implemented features. Either way [`CpuidTable::filter_for_machine`] removes what the board
//! does not provide (no APIC without an irqchip, no hypervisor paravirtual interfaces we do not
//! back) and fills in the per-vCPU fields (APIC ID, logical processor count).

/// One CPUID leaf/subleaf.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidEntry {
    /// Leaf (EAX input).
    pub function: u32,
    /// Subleaf (ECX input), meaningful when `indexed`.
    pub index: u32,
    /// The leaf's output depends on ECX.
    pub indexed: bool,
    /// Output EAX.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
}

/// What the board provides that CPUID advertises.
#[derive(Debug, Clone, Copy)]
pub struct MachineFeatures {
    /// A local APIC exists (in-kernel irqchip, or the userspace LAPIC when there is one).
    pub apic: bool,
    /// x2APIC mode is modelled.
    pub x2apic: bool,
    /// Number of vCPUs.
    pub cpus: u32,
}

/// Hypervisor signature reported at leaf 0x4000_0000.
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"TandemTandem";

/// Leaf 1 ECX/EDX bits the filter touches.
pub mod leaf1 {
    #![allow(missing_docs)]
    pub const EDX_APIC: u32 = 1 << 9;
    pub const EDX_HTT: u32 = 1 << 28;
    pub const ECX_X2APIC: u32 = 1 << 21;
    pub const ECX_TSC_DEADLINE: u32 = 1 << 24;
    pub const ECX_HYPERVISOR: u32 = 1 << 31;
}

/// A vCPU's CPUID table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuidTable {
    /// The leaves, in any order.
    pub entries: Vec<CpuidEntry>,
}

impl CpuidTable {
    /// The entry CPUID would return for (`function`, `index`), if the table has it.
    pub fn lookup(&self, function: u32, index: u32) -> Option<&CpuidEntry> {
        self.entries
            .iter()
            .find(|e| e.function == function && (!e.indexed || e.index == index))
    }

    /// Restricts the table to what `features` provides and sets the fields of vCPU `cpu_index`.
    pub fn filter_for_machine(&mut self, features: MachineFeatures, cpu_index: u32) {
        // Paravirtual leaves of the host hypervisor describe interfaces (kvmclock, PV EOI)
        // this machine does not promise; replace them with our signature and no features.
        self.entries
            .retain(|e| !(0x4000_0000..0x5000_0000).contains(&e.function));
        let sig = HYPERVISOR_SIGNATURE;
        let word = |i: usize| u32::from_le_bytes([sig[i], sig[i + 1], sig[i + 2], sig[i + 3]]);
        self.entries.push(CpuidEntry {
            function: 0x4000_0000,
            eax: 0x4000_0000,
            ebx: word(0),
            ecx: word(4),
            edx: word(8),
            ..Default::default()
        });
        for e in &mut self.entries {
            match e.function {
                1 => {
                    e.ecx |= leaf1::ECX_HYPERVISOR;
                    if !features.apic {
                        e.edx &= !leaf1::EDX_APIC;
                        e.ecx &= !(leaf1::ECX_X2APIC | leaf1::ECX_TSC_DEADLINE);
                    }
                    if !features.x2apic {
                        e.ecx &= !leaf1::ECX_X2APIC;
                    }
                    // EBX: [31:24] initial APIC ID, [23:16] logical processors per package.
                    e.ebx = (e.ebx & 0x0000_ffff)
                        | ((cpu_index & 0xff) << 24)
                        | ((features.cpus.clamp(1, 255)) << 16);
                    if features.cpus > 1 {
                        e.edx |= leaf1::EDX_HTT;
                    }
                }
                0xb | 0x1f => {
                    // x2APIC topology: EDX is the x2APIC ID of this vCPU.
                    e.edx = cpu_index;
                }
                _ => {}
            }
        }
    }
}

/// The host's CPUID leaf 1: (eax, ebx, ecx, edx).
fn host_leaf1() -> [u32; 4] {
    let r = std::arch::x86_64::__cpuid(1);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The brand string of leaves 0x8000_0002..=0x8000_0004 (48 bytes, NUL-padded).
const BRAND: &[u8; 48] =
    b"tandem JIT x86-64-v2 CPU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The CPUID table of what the JIT implements: it advertises exactly that. The level is
/// x86-64-v2 (CMPXCHG16B, LAHF/SAHF, POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2) plus what the
/// instruction semantics already have (MOVBE, LZCNT, RDTSCP, 1 GiB pages); no XSAVE or AVX,
/// so the FXSAVE image is the whole extended state.
///
/// The model says GenuineIntel, family 6 model 26 (Nehalem, the first x86-64-v2 core, as
/// QEMU's `-cpu Nehalem`), for one reason: leaf 0x15 (TSC and core crystal clock) is how Linux
/// learns the TSC and local APIC timer frequencies without measuring them, and it reads that
/// leaf only on Intel CPUs. Measuring is what an emulator cannot do reliably: a vCPU thread
/// preempted between programming the PIT and reading the TSC makes Linux's PIT calibration
/// come out 4x low (seen on a loaded 2-core host), and the guest's clock then runs 4x fast.
/// The crystal is the 1 GHz that both the TSC and the APIC timer count.
pub fn jit_table() -> CpuidTable {
    let word = |s: &[u8], i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let vendor = b"GenuineIntel";
    let edx1 = 1 // FPU
        | (1 << 3) // PSE
        | (1 << 4) // TSC
        | (1 << 5) // MSR
        | (1 << 6) // PAE
        | (1 << 8) // CX8
        | (1 << 12) // MTRR
        | (1 << 13) // PGE
        | (1 << 15) // CMOV
        | (1 << 16) // PAT
        | (1 << 19) // CLFSH
        | (1 << 23) // MMX
        | (1 << 24) // FXSR
        | (1 << 25) // SSE
        | (1 << 26); // SSE2
    let ecx1 = 1 // SSE3
        | (1 << 9) // SSSE3
        | (1 << 13) // CX16
        | (1 << 19) // SSE4.1
        | (1 << 20) // SSE4.2
        | (1 << 22) // MOVBE
        | (1 << 23); // POPCNT
                     // x87/MMX/SSE instructions run on the host (crate::fpu): offer none of those the host
                     // lacks. Everything else here is the JIT's own semantics and offered on any host, so the
                     // table is the same on every host with these (every x86-64-v2 CPU, Intel or AMD).
    let host_edx = 1 // FPU
        | (1 << 15) // CMOV (FCMOVcc)
        | (1 << 23) // MMX
        | (1 << 24) // FXSR
        | (1 << 25) // SSE
        | (1 << 26); // SSE2
    let host_ecx = 1 // SSE3
        | (1 << 9) // SSSE3
        | (1 << 19) // SSE4.1
        | (1 << 20); // SSE4.2
    let host = host_leaf1();
    let (ecx1, edx1) = (ecx1 & (host[2] | !host_ecx), edx1 & (host[3] | !host_edx));
    // The local APIC is the board's model, not the host's: x2APIC and the TSC-deadline timer
    // are offered whatever the host has (filter_for_machine drops them without an APIC).
    let ecx1 = ecx1 | leaf1::ECX_X2APIC | leaf1::ECX_TSC_DEADLINE;
    let edx1 = edx1 | leaf1::EDX_APIC;
    let mut entries = vec![
        CpuidEntry {
            function: 0,
            eax: 0x16,
            ebx: word(vendor, 0),
            edx: word(vendor, 4),
            ecx: word(vendor, 8),
            ..Default::default()
        },
        CpuidEntry {
            function: 1,
            // Family 6, model 26 (extended model 1, model 0xa), stepping 5; CLFLUSH line 64.
            eax: 0x0001_06a5,
            ebx: 8 << 8,
            ecx: ecx1,
            edx: edx1,
            ..Default::default()
        },
        CpuidEntry {
            function: 7,
            // IA32_TSC_ADJUST (MSR 0x3b) exists; IA32_ARCH_CAPABILITIES (MSR 0x10a) is
            // readable.
            ebx: 1 << 1,
            edx: 1 << 29,
            ..Default::default()
        },
        CpuidEntry {
            function: 0x15,
            // TSC = crystal * EBX / EAX, crystal in ECX (Hz): 1 GHz, ratio 1.
            eax: 1,
            ebx: 1,
            ecx: 1_000_000_000,
            ..Default::default()
        },
        CpuidEntry {
            function: 0x16,
            // Base, maximum and bus frequencies in MHz.
            eax: 1000,
            ebx: 1000,
            ecx: 1000,
            ..Default::default()
        },
        CpuidEntry {
            function: 0x8000_0000,
            eax: 0x8000_0008,
            ..Default::default()
        },
        CpuidEntry {
            function: 0x8000_0001,
            ecx: 1 | (1 << 5), // LAHF/SAHF in long mode, LZCNT
            // SYSCALL, NX, 1 GiB pages, RDTSCP, LM
            edx: (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29),
            ..Default::default()
        },
        CpuidEntry {
            function: 0x8000_0007,
            // Invariant TSC: RDTSC follows host time at a constant rate.
            edx: 1 << 8,
            ..Default::default()
        },
        CpuidEntry {
            function: 0x8000_0008,
            // 40 physical, 48 linear address bits.
            eax: 0x3028,
            ..Default::default()
        },
    ];
    for (n, function) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let b = &BRAND[16 * n..16 * n + 16];
        entries.push(CpuidEntry {
            function,
            eax: word(b, 0),
            ebx: word(b, 4),
            ecx: word(b, 8),
            edx: word(b, 12),
            ..Default::default()
        });
    }
    CpuidTable { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CpuidTable {
        CpuidTable {
            entries: vec![
                CpuidEntry {
                    function: 1,
                    ebx: 0x0000_0800,
                    ecx: leaf1::ECX_X2APIC | leaf1::ECX_TSC_DEADLINE | 1,
                    edx: leaf1::EDX_APIC | 1,
                    ..Default::default()
                },
                CpuidEntry {
                    function: 0x4000_0001,
                    eax: 0xffff,
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn no_apic_means_no_apic_bits_and_no_host_pv_leaves() {
        let mut t = table();
        t.filter_for_machine(
            MachineFeatures {
                apic: false,
                x2apic: false,
                cpus: 1,
            },
            0,
        );
        let l1 = t.lookup(1, 0).unwrap();
        assert_eq!(l1.edx & leaf1::EDX_APIC, 0);
        assert_eq!(l1.ecx & leaf1::ECX_X2APIC, 0);
        assert_ne!(l1.ecx & leaf1::ECX_HYPERVISOR, 0);
        assert!(t.lookup(0x4000_0001, 0).is_none());
        let sig = t.lookup(0x4000_0000, 0).unwrap();
        assert_eq!(&sig.ebx.to_le_bytes(), b"Tand");
    }

    #[test]
    fn jit_table_advertises_x86_64_v2_and_no_xsave() {
        let t = jit_table();
        assert_ne!(t.lookup(0x8000_0001, 0).unwrap().edx & (1 << 29), 0);
        assert_eq!(t.lookup(0x8000_0001, 0).unwrap().ecx & 1, 1, "LAHF_LM");
        let l1 = t.lookup(1, 0).unwrap();
        // The JIT's own: CX16, MOVBE, POPCNT, whatever the host.
        let own = (1 << 13) | (1 << 22) | (1 << 23);
        assert_eq!(l1.ecx & own, own);
        // Run on the host: offered exactly where the host has them (every x86-64-v2 host).
        let host = host_leaf1();
        let on_host = 1 | (1 << 9) | (1 << 19) | (1 << 20);
        assert_eq!(
            l1.ecx & on_host,
            host[2] & on_host,
            "SSE3 SSSE3 SSE4.1 SSE4.2"
        );
        assert_eq!(l1.edx & (3 << 25), host[3] & (3 << 25), "SSE and SSE2");
        assert_eq!(l1.ecx & (1 << 26), 0, "no XSAVE");
        assert_eq!(l1.ecx & (1 << 28), 0, "no AVX");
        let tsc = t.lookup(0x15, 0).unwrap();
        assert_eq!(
            u64::from(tsc.ecx) * u64::from(tsc.ebx) / u64::from(tsc.eax),
            1_000_000_000,
            "the TSC counts host nanoseconds"
        );
        assert!(t.lookup(0, 0).unwrap().eax >= 0x15);
    }

    #[test]
    fn apic_id_is_the_vcpu_index() {
        let mut t = table();
        t.filter_for_machine(
            MachineFeatures {
                apic: true,
                x2apic: true,
                cpus: 2,
            },
            1,
        );
        let l1 = t.lookup(1, 0).unwrap();
        assert_eq!(l1.ebx >> 24, 1);
        assert_eq!((l1.ebx >> 16) & 0xff, 2);
        assert_ne!(l1.ecx & leaf1::ECX_X2APIC, 0);
    }
}
