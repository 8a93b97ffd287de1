//! The vCPU's CPUID: KVM_GET_SUPPORTED_CPUID, filtered to what the machine models.

use kvm_bindings::{
    kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::Kvm;
use tandem_target_x86_64::cpuid::MachineFeatures;
use tandem_target_x86_64::{CpuidEntry, CpuidTable};

use crate::error::AccelError;

/// The table vCPU `index` reports.
pub fn table_for_vcpu(
    kvm: &Kvm,
    features: MachineFeatures,
    index: u32,
) -> Result<CpuId, AccelError> {
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| AccelError::Host {
            op: "KVM_GET_SUPPORTED_CPUID",
            source: std::io::Error::from_raw_os_error(e.errno()),
        })?;
    let mut table = CpuidTable {
        entries: supported.as_slice().iter().map(from_kvm).collect(),
    };
    table.filter_for_machine(features, index);
    let entries: Vec<kvm_cpuid_entry2> = table.entries.iter().map(to_kvm).collect();
    CpuId::from_entries(&entries)
        .map_err(|_| AccelError::Unsupported("CPUID table too large".into()))
}

fn from_kvm(e: &kvm_cpuid_entry2) -> CpuidEntry {
    CpuidEntry {
        function: e.function,
        index: e.index,
        indexed: e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0,
        eax: e.eax,
        ebx: e.ebx,
        ecx: e.ecx,
        edx: e.edx,
    }
}

fn to_kvm(e: &CpuidEntry) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function: e.function,
        index: e.index,
        flags: if e.indexed {
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        },
        eax: e.eax,
        ebx: e.ebx,
        ecx: e.ecx,
        edx: e.edx,
        ..Default::default()
    }
}
