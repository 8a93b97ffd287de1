//! Model-specific register numbers the machine models, and where each lives in [`CpuState`].
//!
//! [`CpuState`]: crate::CpuState

#![allow(missing_docs)]

pub const IA32_TSC: u32 = 0x10;
pub const IA32_APIC_BASE: u32 = 0x1b;
pub const IA32_SYSENTER_CS: u32 = 0x174;
pub const IA32_SYSENTER_ESP: u32 = 0x175;
pub const IA32_SYSENTER_EIP: u32 = 0x176;
pub const IA32_MISC_ENABLE: u32 = 0x1a0;
pub const IA32_PAT: u32 = 0x277;
pub const IA32_EFER: u32 = 0xc000_0080;
pub const IA32_STAR: u32 = 0xc000_0081;
pub const IA32_LSTAR: u32 = 0xc000_0082;
pub const IA32_CSTAR: u32 = 0xc000_0083;
pub const IA32_FMASK: u32 = 0xc000_0084;
pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const IA32_TSC_AUX: u32 = 0xc000_0103;

/// The MSRs carried in `CpuState` besides EFER (which engines move with the control registers).
pub const STATE_MSRS: [u32; 13] = [
    IA32_SYSENTER_CS,
    IA32_SYSENTER_ESP,
    IA32_SYSENTER_EIP,
    IA32_STAR,
    IA32_LSTAR,
    IA32_CSTAR,
    IA32_FMASK,
    IA32_KERNEL_GS_BASE,
    IA32_TSC_AUX,
    IA32_PAT,
    IA32_MISC_ENABLE,
    IA32_TSC,
    IA32_APIC_BASE,
];

impl crate::CpuState {
    /// The value of a modelled MSR, or None if `CpuState` does not carry it.
    pub fn msr(&self, index: u32) -> Option<u64> {
        Some(match index {
            IA32_TSC => self.tsc,
            IA32_APIC_BASE => self.apic_base,
            IA32_SYSENTER_CS => self.sysenter_cs,
            IA32_SYSENTER_ESP => self.sysenter_esp,
            IA32_SYSENTER_EIP => self.sysenter_eip,
            IA32_MISC_ENABLE => self.misc_enable,
            IA32_PAT => self.pat,
            IA32_EFER => self.efer,
            IA32_STAR => self.star,
            IA32_LSTAR => self.lstar,
            IA32_CSTAR => self.cstar,
            IA32_FMASK => self.sfmask,
            IA32_KERNEL_GS_BASE => self.kernel_gs_base,
            IA32_TSC_AUX => self.tsc_aux,
            _ => return None,
        })
    }

    /// Sets a modelled MSR; false if `CpuState` does not carry it.
    pub fn set_msr(&mut self, index: u32, value: u64) -> bool {
        let slot = match index {
            IA32_TSC => &mut self.tsc,
            IA32_APIC_BASE => &mut self.apic_base,
            IA32_SYSENTER_CS => &mut self.sysenter_cs,
            IA32_SYSENTER_ESP => &mut self.sysenter_esp,
            IA32_SYSENTER_EIP => &mut self.sysenter_eip,
            IA32_MISC_ENABLE => &mut self.misc_enable,
            IA32_PAT => &mut self.pat,
            IA32_EFER => &mut self.efer,
            IA32_STAR => &mut self.star,
            IA32_LSTAR => &mut self.lstar,
            IA32_CSTAR => &mut self.cstar,
            IA32_FMASK => &mut self.sfmask,
            IA32_KERNEL_GS_BASE => &mut self.kernel_gs_base,
            IA32_TSC_AUX => &mut self.tsc_aux,
            _ => return false,
        };
        *slot = value;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_msr_round_trips() {
        let mut s = crate::CpuState::default();
        for (i, &m) in STATE_MSRS.iter().enumerate() {
            assert!(s.set_msr(m, 0x1000 + i as u64));
        }
        for (i, &m) in STATE_MSRS.iter().enumerate() {
            assert_eq!(s.msr(m), Some(0x1000 + i as u64));
        }
        assert_eq!(s.msr(0x1234), None);
        assert!(!s.set_msr(0x1234, 0));
    }
}
