//! The local APIC's MSRs: IA32_APIC_BASE (0x1b, SDM Vol. 3A 11.4.4), IA32_TSC_DEADLINE (0x6e0,
//! 11.5.4.1) and the x2APIC registers 0x800-0x8ff (11.12.1, Table 11-6), with the TSC-to-clock
//! conversion the deadline needs.
//!
//! An `Err` is the #GP the CPU raises: x2APIC MSRs outside x2APIC mode, reads of write-only
//! registers (EOI, SELF IPI), writes of read-only ones (ID, LDR, ...), the registers x2APIC
//! dropped (DFR, APR, ICR high), non-zero EOI/ESR writes, reserved bits in the upper half of a
//! 32-bit register or in SELF IPI, and the invalid APIC-base transitions (x2APIC straight to
//! xAPIC, disabled straight to x2APIC, EXTD without EN). Warts: other reserved bits of x2APIC
//! registers are dropped silently (as KVM does) rather than raising #GP; MAXPHYADDR is taken as
//! 52 for the APIC-base reserved bits; a moved APIC base is only reported ([`Lapic::mmio_base`]).

use super::regs::*;
use super::{Lapic, LapicOutput};

/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
const MSR_X2APIC_FIRST: u32 = 0x800;
const MSR_X2APIC_LAST: u32 = 0x8ff;
/// x2APIC SELF IPI register, as an xAPIC-layout offset.
const REG_SELF_IPI: u32 = 0x3f0;

pub(crate) const BASE_BSP: u64 = 1 << 8;
pub(crate) const BASE_EXTD: u64 = 1 << 10;
pub(crate) const BASE_ENABLE: u64 = 1 << 11;
pub(crate) const BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why an APIC MSR access raises #GP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApicMsrError {
    /// Not an MSR of the local APIC.
    #[error("MSR {0:#x} is not a local APIC MSR")]
    NotApic(u32),
    /// An x2APIC MSR while the APIC is not in x2APIC mode.
    #[error("x2APIC MSR {0:#x} outside x2APIC mode")]
    NotX2apic(u32),
    /// No such register, or not readable / writable.
    #[error("x2APIC MSR {0:#x} does not allow this access")]
    Access(u32),
    /// Reserved bits set, or an invalid mode transition.
    #[error("invalid value {value:#x} for MSR {index:#x}")]
    Value {
        /// The MSR.
        index: u32,
        /// The value written.
        value: u64,
    },
}

/// How the vCPU's TSC relates to the clock: `tsc = tsc_at_zero + ns * hz / 10^9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    /// TSC frequency.
    pub hz: u64,
    /// TSC value at clock time 0.
    pub tsc_at_zero: u64,
}

impl Default for TscClock {
    /// 1 GHz from 0.
    fn default() -> Self {
        Self {
            hz: 1_000_000_000,
            tsc_at_zero: 0,
        }
    }
}

impl TscClock {
    /// The TSC at clock time `ns`.
    pub fn tsc_at(&self, ns: u64) -> u64 {
        let ticks = u128::from(ns) * u128::from(self.hz) / 1_000_000_000;
        self.tsc_at_zero
            .wrapping_add(u64::try_from(ticks).unwrap_or(u64::MAX))
    }

    /// The first clock time at which the TSC reaches `tsc` (0 if it already had at time 0).
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let Some(ticks) = tsc.checked_sub(self.tsc_at_zero) else {
            return 0;
        };
        let ns = (u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(self.hz.max(1)));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// The x2APIC logical ID derived from the APIC ID (SDM 11.12.10.2): cluster in bits 16-31,
/// one bit of 16 below.
pub(crate) fn x2apic_ldr(id: u32) -> u32 {
    ((id >> 4) << 16) | (1 << (id & 0xf))
}

impl Lapic {
    /// The TSC conversion used for IA32_TSC_DEADLINE.
    pub fn tsc_clock(&self) -> TscClock {
        self.tsc
    }

    /// Sets the TSC conversion (the vCPU owner calls this when the guest writes its TSC).
    pub fn set_tsc_clock(&mut self, tsc: TscClock) {
        self.tsc = tsc;
    }

    /// The IA32_APIC_BASE value.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// RDMSR of an APIC MSR.
    pub fn read_msr(&mut self, index: u32, now_ns: u64) -> Result<u64, ApicMsrError> {
        match index {
            MSR_APIC_BASE => Ok(self.apic_base),
            MSR_TSC_DEADLINE => Ok(self.timer.tsc_deadline()),
            MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => {
                if !self.x2apic() {
                    return Err(ApicMsrError::NotX2apic(index));
                }
                let reg = (index - MSR_X2APIC_FIRST) << 4;
                match reg {
                    REG_ID => Ok(u64::from(self.id)),
                    REG_LDR => Ok(u64::from(self.ldr)),
                    REG_ICR_LOW => Ok(self.icr),
                    REG_VERSION
                    | REG_TPR
                    | REG_PPR
                    | REG_SVR
                    | REG_ESR
                    | REG_TIMER_INITIAL
                    | REG_TIMER_CURRENT
                    | REG_TIMER_DIVIDE
                    | 0x100..=0x270
                    | 0x320..=0x370 => Ok(u64::from(self.read_reg(reg, now_ns))),
                    _ => Err(ApicMsrError::Access(index)),
                }
            }
            _ => Err(ApicMsrError::NotApic(index)),
        }
    }

    /// WRMSR of an APIC MSR; the output, if any, is for the bus as with MMIO writes.
    pub fn write_msr(
        &mut self,
        index: u32,
        value: u64,
        now_ns: u64,
    ) -> Result<Option<LapicOutput>, ApicMsrError> {
        let bad_value = ApicMsrError::Value { index, value };
        match index {
            MSR_APIC_BASE => self.write_apic_base(value).map(|()| None),
            MSR_TSC_DEADLINE => {
                let at = self.tsc.ns_at(value);
                self.timer.write_tsc_deadline(value, at);
                Ok(None)
            }
            MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => {
                if !self.x2apic() {
                    return Err(ApicMsrError::NotX2apic(index));
                }
                let reg = (index - MSR_X2APIC_FIRST) << 4;
                if reg == REG_ICR_LOW {
                    self.icr = value & (0xffff_ffff_0000_0000 | u64::from(ICR_LOW_WRITABLE));
                    return Ok(self.send_icr());
                }
                let Ok(v) = u32::try_from(value) else {
                    return Err(bad_value);
                };
                match reg {
                    REG_EOI | REG_ESR if v != 0 => Err(bad_value),
                    REG_SELF_IPI if v > 0xff => Err(bad_value),
                    REG_SELF_IPI => {
                        // Always fixed, edge, to this APIC (SDM 11.12.11).
                        self.set_irr(v as u8, false);
                        Ok(None)
                    }
                    REG_EOI
                    | REG_ESR
                    | REG_TPR
                    | REG_SVR
                    | REG_TIMER_INITIAL
                    | REG_TIMER_DIVIDE
                    | 0x320..=0x370 => Ok(self.write_reg(reg, v, now_ns)),
                    _ => Err(ApicMsrError::Access(index)),
                }
            }
            _ => Err(ApicMsrError::NotApic(index)),
        }
    }

    fn write_apic_base(&mut self, value: u64) -> Result<(), ApicMsrError> {
        let bad = ApicMsrError::Value {
            index: MSR_APIC_BASE,
            value,
        };
        if value & !(BASE_ADDR_MASK | BASE_BSP | BASE_EXTD | BASE_ENABLE) != 0 {
            return Err(bad);
        }
        let enable = value & BASE_ENABLE != 0;
        let extd = value & BASE_EXTD != 0;
        let was_enabled = self.hw_enabled();
        let was_x2apic = self.x2apic();
        let invalid = match (enable, extd) {
            // EXTD without EN is not a state.
            (false, true) => true,
            // x2APIC goes back through disabled, and disabled through xAPIC (SDM 11.12.5).
            (true, false) => was_x2apic,
            (true, true) => !was_enabled,
            (false, false) => false,
        };
        if invalid {
            return Err(bad);
        }
        // The BSP flag is the processor's, not software's.
        self.apic_base = (value & !BASE_BSP) | (self.apic_base & BASE_BSP);
        if was_enabled && !enable {
            // A globally disabled APIC loses its state (SDM 11.4.3).
            self.reset();
        }
        if self.x2apic() && !was_x2apic {
            self.ldr = x2apic_ldr(self.id);
        }
        Ok(())
    }
}
