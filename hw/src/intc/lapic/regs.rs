//! The xAPIC register page (SDM Vol. 3A 11.4.1, Table 11-1 "Local APIC Register Address Map"):
//! register offsets, writable-bit masks, the 256-bit IRR/ISR/TMR, and the MMIO face of
//! [`Lapic`].
//!
//! Accesses: a register is a 32-bit value at a 16-byte aligned offset. Reads of 1, 2 or 4 bytes
//! inside a register's first dword return those bytes (KVM allows this; the SDM calls narrow
//! accesses model specific); any other read returns zeros. Only aligned 4-byte writes take
//! effect, as in KVM. Offsets with no register set ESR's "illegal register address" bit
//! (bit 7) and read 0. Warts: the MMIO page stays readable in x2APIC mode, where hardware makes
//! it inaccessible (the engine should stop routing it there); remote read (0xc0) reads 0.

use super::timer::TimerMode;
use super::{Lapic, LapicOutput};
use crate::intc::lapic::delivery::Ipi;

/// Default physical address of the xAPIC page.
pub const APIC_DEFAULT_BASE: u64 = 0xfee0_0000;
/// Size of the xAPIC page.
pub const APIC_MMIO_SIZE: u64 = 0x1000;
/// Version register: version 0x14 (integrated xAPIC), max LVT entry 5 (six LVTs, no CMCI),
/// no EOI-broadcast suppression (bit 24 clear).
pub const APIC_VERSION: u32 = 0x0005_0014;

pub(crate) const REG_ID: u32 = 0x20;
pub(crate) const REG_VERSION: u32 = 0x30;
pub(crate) const REG_TPR: u32 = 0x80;
pub(crate) const REG_APR: u32 = 0x90;
pub(crate) const REG_PPR: u32 = 0xa0;
pub(crate) const REG_EOI: u32 = 0xb0;
pub(crate) const REG_RRD: u32 = 0xc0;
pub(crate) const REG_LDR: u32 = 0xd0;
pub(crate) const REG_DFR: u32 = 0xe0;
pub(crate) const REG_SVR: u32 = 0xf0;
pub(crate) const REG_ISR: u32 = 0x100;
pub(crate) const REG_TMR: u32 = 0x180;
pub(crate) const REG_IRR: u32 = 0x200;
pub(crate) const REG_ESR: u32 = 0x280;
pub(crate) const REG_ICR_LOW: u32 = 0x300;
pub(crate) const REG_ICR_HIGH: u32 = 0x310;
pub(crate) const REG_LVT_TIMER: u32 = 0x320;
pub(crate) const REG_TIMER_INITIAL: u32 = 0x380;
pub(crate) const REG_TIMER_CURRENT: u32 = 0x390;
pub(crate) const REG_TIMER_DIVIDE: u32 = 0x3e0;

/// LVT indices, in register order from 0x320.
pub(crate) const LVT_TIMER: usize = 0;
pub(crate) const LVT_LINT0: usize = 3;
pub(crate) const LVT_LINT1: usize = 4;
pub(crate) const LVT_ERROR: usize = 5;
/// Number of LVT entries.
pub(crate) const LVT_COUNT: usize = 6;

/// LVT bit 16.
pub(crate) const LVT_MASKED: u32 = 1 << 16;
/// Writable LVT bits: timer (vector, mask, mode bits 17-18), thermal and perfmon (vector,
/// delivery mode, mask), LINT0/1 (plus polarity and trigger; Remote-IRR is read-only), error
/// (vector, mask). Delivery status (bit 12) is always 0: delivery is immediate.
pub(crate) const LVT_WRITABLE: [u32; LVT_COUNT] = [
    0x0007_00ff,
    0x0001_07ff,
    0x0001_07ff,
    0x0001_a7ff,
    0x0001_a7ff,
    0x0001_00ff,
];

/// SVR: vector, APIC software enable (bit 8), focus processor checking disable (bit 9).
pub(crate) const SVR_WRITABLE: u32 = 0x3ff;
pub(crate) const SVR_ENABLE: u32 = 1 << 8;
/// ICR low: vector, delivery mode, destination mode, level, trigger, shorthand.
pub(crate) const ICR_LOW_WRITABLE: u32 = 0x000c_cfff;

/// ESR bits (SDM 11.5.3).
pub(crate) const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
pub(crate) const ESR_RECV_ILLEGAL_VECTOR: u32 = 1 << 6;
pub(crate) const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

/// IRR, ISR or TMR: one bit per vector, read as eight 32-bit registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bitmap256([u32; 8]);

impl Bitmap256 {
    /// Sets the bit for `v`.
    pub fn set(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }

    /// Clears the bit for `v`.
    pub fn clear(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }

    /// Whether the bit for `v` is set.
    pub fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }

    /// The highest vector set.
    pub fn highest(&self) -> Option<u8> {
        (0..8u8).rev().find_map(|i| {
            let w = self.0[usize::from(i)];
            // leading_zeros of a non-zero u32 is at most 31, so this fits a u8.
            (w != 0).then(|| i * 32 + (31 - w.leading_zeros() as u8))
        })
    }

    /// Register `i` (0..8) of the bitmap: vectors `32*i..32*i+31`.
    pub fn word(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Lapic {
    /// Reads the register at 16-byte aligned `reg` offset in xAPIC layout. Offsets with no
    /// register read 0 and set ESR's illegal-register bit.
    pub fn read_reg(&mut self, reg: u32, now_ns: u64) -> u32 {
        match reg {
            REG_ID => (self.id & 0xff) << 24,
            REG_VERSION => APIC_VERSION,
            REG_TPR => u32::from(self.tpr),
            REG_APR => u32::from(self.arbitration_priority()),
            REG_PPR => u32::from(self.ppr()),
            REG_EOI | REG_RRD => 0,
            REG_LDR => self.ldr,
            REG_DFR => self.dfr,
            REG_SVR => self.svr,
            0x100..=0x170 => self.isr.word(((reg - REG_ISR) >> 4) as usize),
            0x180..=0x1f0 => self.tmr.word(((reg - REG_TMR) >> 4) as usize),
            0x200..=0x270 => self.irr.word(((reg - REG_IRR) >> 4) as usize),
            REG_ESR => self.esr,
            REG_ICR_LOW => self.icr as u32,
            REG_ICR_HIGH => (self.icr >> 32) as u32,
            0x320..=0x370 => self.lvt[((reg - REG_LVT_TIMER) >> 4) as usize],
            REG_TIMER_INITIAL => self.timer.initial(),
            REG_TIMER_CURRENT => self.timer.current(now_ns),
            REG_TIMER_DIVIDE => self.timer.divide(),
            _ => {
                self.raise_error(ESR_ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// Writes `value` to the register at `reg` (xAPIC layout). Read-only registers ignore the
    /// write; unknown offsets set ESR's illegal-register bit.
    pub fn write_reg(&mut self, reg: u32, value: u32, now_ns: u64) -> Option<LapicOutput> {
        match reg {
            REG_ID => self.id = value >> 24,
            REG_TPR => {
                self.tpr = value as u8;
                self.refresh_ppr();
            }
            REG_EOI => return self.eoi().map(LapicOutput::Eoi),
            REG_LDR => self.ldr = value & 0xff00_0000,
            // Bits 0-27 are reserved and read as ones.
            REG_DFR => self.dfr = value | 0x0fff_ffff,
            REG_SVR => self.write_svr(value),
            REG_ESR => {
                // A write latches the errors seen since the last one (SDM 11.5.3).
                self.esr = std::mem::take(&mut self.esr_pending);
            }
            REG_ICR_LOW => {
                let low = u64::from(value & ICR_LOW_WRITABLE);
                self.icr = (self.icr & !0xffff_ffff) | low;
                return self.send_icr();
            }
            REG_ICR_HIGH => {
                self.icr = (self.icr & 0xffff_ffff) | (u64::from(value & 0xff00_0000) << 32)
            }
            0x320..=0x370 => self.write_lvt(((reg - REG_LVT_TIMER) >> 4) as usize, value, now_ns),
            REG_TIMER_INITIAL => self.timer.write_initial(value, now_ns),
            REG_TIMER_DIVIDE => self.timer.write_divide(value, now_ns),
            REG_VERSION | REG_APR | REG_PPR | REG_RRD | REG_TIMER_CURRENT => {}
            0x100..=0x270 => {}
            _ => self.raise_error(ESR_ILLEGAL_REGISTER),
        }
        None
    }

    /// A guest load of `data.len()` bytes at `offset` in the xAPIC page.
    pub fn mmio_read(&mut self, offset: u64, data: &mut [u8], now_ns: u64) {
        data.fill(0);
        let within = (offset & 0xf) as usize;
        if offset >= APIC_MMIO_SIZE || !matches!(data.len(), 1 | 2 | 4) || within + data.len() > 4 {
            return;
        }
        let value = self.read_reg((offset & !0xf) as u32, now_ns).to_le_bytes();
        data.copy_from_slice(&value[within..within + data.len()]);
    }

    /// A guest store of `data` at `offset` in the xAPIC page.
    pub fn mmio_write(&mut self, offset: u64, data: &[u8], now_ns: u64) -> Option<LapicOutput> {
        let bytes: [u8; 4] = data.try_into().ok()?;
        if offset >= APIC_MMIO_SIZE || offset & 0xf != 0 {
            return None;
        }
        self.write_reg(offset as u32, u32::from_le_bytes(bytes), now_ns)
    }

    fn write_svr(&mut self, value: u32) {
        self.svr = value & SVR_WRITABLE;
        if self.svr & SVR_ENABLE == 0 {
            // Software disable masks every LVT entry (SDM 11.4.7.2).
            for lvt in &mut self.lvt {
                *lvt |= LVT_MASKED;
            }
        }
        self.refresh_ppr();
    }

    fn write_lvt(&mut self, index: usize, value: u32, now_ns: u64) {
        let Some(&writable) = LVT_WRITABLE.get(index) else {
            return;
        };
        let mut value = value & writable;
        if !self.sw_enabled() {
            // While software disabled the mask bits cannot be cleared.
            value |= LVT_MASKED;
        }
        if index == LVT_TIMER {
            // Expiries before this write are judged by the old entry.
            self.tick(now_ns);
            match TimerMode::from_lvt(value) {
                Some(mode) => self.timer.set_mode(mode, now_ns),
                // The reserved mode 0b11 keeps the current mode.
                None => value = (value & !(3 << 17)) | (self.lvt[LVT_TIMER] & (3 << 17)),
            }
        }
        // Remote-IRR of LINT0/1 is status, kept across writes.
        let keep = self.lvt[index] & !writable & (1 << 14);
        self.lvt[index] = value | keep;
    }

    pub(super) fn send_icr(&mut self) -> Option<LapicOutput> {
        let ipi = Ipi::from_icr(self.id, self.icr, self.x2apic())?;
        let fixed_like = matches!(
            ipi.message.delivery_mode,
            super::DeliveryMode::Fixed | super::DeliveryMode::LowestPriority
        );
        if fixed_like && ipi.message.vector < 16 {
            self.raise_error(ESR_SEND_ILLEGAL_VECTOR);
            return None;
        }
        Some(LapicOutput::Ipi(ipi))
    }
}
