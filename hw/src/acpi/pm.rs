//! The ACPI fixed power-management hardware: PM1a event and control blocks, PM timer, reset
//! register; a write of SLP_TYP(S5) | SLP_EN powers the machine off.
//!
//! Spec: ACPI 6.5, 4.8.3 ("PM1 Event Grouping": PM1_STS and PM1_EN, 4.8.3.1), 4.8.3.2
//! ("PM1 Control Grouping": PM1_CNT with SCI_EN, BM_RLD, GBL_RLS, SLP_TYP, SLP_EN), 4.8.3.3
//! (the PM timer, 3.579545 MHz), 4.8.3.6 (the reset register), and 7.4.2 for sleeping through
//! SLP_TYP/SLP_EN.
//!
//! One device, one contiguous port block of [`PM_BLOCK_LEN`] bytes (the board maps it at
//! [`PM_BASE`], 0x600 as QEMU's PIIX4 and ICH9 do), laid out as
//! - +0x0 PM1a_EVT_BLK: PM1_STS (16 bits, write 1 to clear), PM1_EN (16 bits);
//! - +0x4 PM1a_CNT_BLK: PM1_CNT (16 bits);
//! - +0x8 PM_TMR_BLK: the 32-bit PM timer, read-only, counting host time at 3.579545 MHz from
//!   the clock's origin;
//! - +0xc the reset register (8 bits): writing [`RESET_VALUE`] posts [`MachineRequest::Reset`];
//! - the rest reads 0 and ignores writes.
//!
//! A board that wants the blocks at scattered ports maps this one device once per block with
//! `PortBus::register_with_offset(port, len, pm, OFFSET)` using the offsets above.
//!
//! Behaviour: SCI_EN always reads 1 (the machine is always in ACPI mode; the FADT has no
//! SMI_CMD, so the OS never tries to switch). A PM1_CNT write with SLP_EN and SLP_TYP ==
//! [`S5_SLP_TYP`] posts [`MachineRequest::PowerOff`]; SLP_EN with any other type is ignored
//! (no other sleep state is offered in the DSDT, so only a misbehaving OS writes one) and the
//! machine keeps running, which ACPICA reports as a failed sleep. SLP_EN and GBL_RLS are
//! write-only and read 0. PM1_EN keeps the defined enable bits (including GBL_EN, so ACPICA
//! does not log "no response from Global Lock hardware"; nothing else ever owns the lock).
//! Accesses of any width are split into bytes, as an ISA bus would; SLP_TYP and SLP_EN share
//! the high byte of PM1_CNT, so a byte or word write behaves the same.
//! Known warts: no status bit is ever set and no SCI is ever raised (no power button, no RTC
//! alarm, no timer-overflow event, no wake), so the device needs no interrupt line; the PM timer
//! read by bytes can tear across a carry between two accesses (word and dword reads are
//! consistent); the timer keeps counting while the machine is paused, as the board's clocks do.

use std::sync::Arc;

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::{MachineRequest, PortDevice, RunControl};

use crate::timer::clock::Clock;

pub use super::dsdt::S5_SLP_TYP;

/// The board's base port for the block.
pub const PM_BASE: u16 = 0x600;
/// Ports the device decodes.
pub const PM_BLOCK_LEN: u16 = 0x10;
/// Offset of the PM1a event block (PM1_STS, PM1_EN).
pub const EVT_OFFSET: u16 = 0x0;
/// Offset of the PM1a control block (PM1_CNT).
pub const CNT_OFFSET: u16 = 0x4;
/// Offset of the PM timer.
pub const TMR_OFFSET: u16 = 0x8;
/// Offset of the reset register.
pub const RESET_OFFSET: u16 = 0xc;
/// The value written to the reset register to reset the machine.
pub const RESET_VALUE: u8 = 0x01;
/// The PM timer's frequency.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_EN bits that exist: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN, PCIEXP_WAKE_DIS.
pub const PM1_EN_MASK: u16 = 0x4721;
/// PM1_CNT: SCI_EN, the ACPI-mode bit.
pub const SCI_EN: u16 = 1 << 0;
/// PM1_CNT: SLP_TYP field shift.
pub const SLP_TYP_SHIFT: u16 = 10;
/// PM1_CNT: SLP_TYP field mask (bits 10-12).
pub const SLP_TYP_MASK: u16 = 0x7 << SLP_TYP_SHIFT;
/// PM1_CNT: SLP_EN, write-only: enter the sleep state in SLP_TYP.
pub const SLP_EN: u16 = 1 << 13;
/// PM1_CNT bits stored and read back: BM_RLD, the "ignored" bit 9, SLP_TYP.
const PM1_CNT_STORED: u16 = (1 << 1) | (1 << 9) | SLP_TYP_MASK;

/// The PM register block.
pub struct Pm {
    control: Arc<RunControl>,
    clock: Arc<dyn Clock>,
    enable: u16,
    cnt: u16,
}

impl Pm {
    /// A block posting power-off and reset to `control`, timing its PM timer with `clock`.
    pub fn new(control: Arc<RunControl>, clock: Arc<dyn Clock>) -> Self {
        Self {
            control,
            clock,
            enable: 0,
            cnt: 0,
        }
    }

    /// Back to the power-on state (enables and SLP_TYP cleared), for a machine reset.
    pub fn reset(&mut self) {
        self.enable = 0;
        self.cnt = 0;
    }

    /// The PM timer's count now: 3.579545 MHz ticks of the clock, modulo 2^32.
    pub fn timer(&self) -> u32 {
        let ticks = u128::from(self.clock.now_ns()) * u128::from(PM_TIMER_HZ) / 1_000_000_000;
        // The counter wraps at 32 bits (TMR_VAL_EXT).
        ticks as u32
    }

    /// PM1_CNT as the guest reads it.
    pub fn pm1_cnt(&self) -> u16 {
        self.cnt | SCI_EN
    }

    /// PM1_EN as the guest reads it.
    pub fn pm1_en(&self) -> u16 {
        self.enable
    }

    fn write_cnt(&mut self, value: u16) {
        self.cnt = value & PM1_CNT_STORED;
        if value & SLP_EN != 0 {
            let typ = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
            if typ == u16::from(S5_SLP_TYP) {
                self.control.request(MachineRequest::PowerOff);
            }
        }
    }

    fn read_byte(&self, offset: u16, timer: u32) -> u8 {
        let [cnt_lo, cnt_hi] = self.pm1_cnt().to_le_bytes();
        let [en_lo, en_hi] = self.enable.to_le_bytes();
        let t = timer.to_le_bytes();
        match offset {
            // PM1_STS: nothing ever sets a status bit.
            0 | 1 => 0,
            2 => en_lo,
            3 => en_hi,
            4 => cnt_lo,
            5 => cnt_hi,
            8..=11 => t[usize::from(offset - TMR_OFFSET)],
            _ => 0,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        let [cnt_lo, cnt_hi] = self.cnt.to_le_bytes();
        let [en_lo, en_hi] = self.enable.to_le_bytes();
        match offset {
            // PM1_STS: write 1 to clear; no bit is ever set, so there is nothing to clear.
            0 | 1 => {}
            2 => self.enable = u16::from_le_bytes([v, en_hi]) & PM1_EN_MASK,
            3 => self.enable = u16::from_le_bytes([en_lo, v]) & PM1_EN_MASK,
            4 => self.write_cnt(u16::from_le_bytes([v, cnt_hi])),
            5 => self.write_cnt(u16::from_le_bytes([cnt_lo, v])),
            RESET_OFFSET if v == RESET_VALUE => self.control.request(MachineRequest::Reset),
            _ => {}
        }
    }
}

impl PortDevice for Pm {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        // Sample the timer once so a word or dword read is consistent.
        let timer = self.timer();
        read_bytewise(offset, data, |o| self.read_byte(o, timer));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |o, v| self.write_byte(o, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timer::clock::ManualClock;

    fn pm() -> (Pm, Arc<RunControl>, Arc<ManualClock>) {
        let rc = Arc::new(RunControl::new());
        let clock = Arc::new(ManualClock::new());
        (Pm::new(rc.clone(), clock.clone()), rc, clock)
    }

    fn read16(pm: &mut Pm, off: u16) -> u16 {
        let mut d = [0u8; 2];
        pm.read(off, &mut d);
        u16::from_le_bytes(d)
    }

    #[test]
    fn slp_typ_s5_with_slp_en_powers_off() {
        let (mut pm, rc, _) = pm();
        // As ACPICA does: SLP_TYP first, then SLP_TYP | SLP_EN, as 16-bit writes.
        pm.write(CNT_OFFSET, &(5u16 << 10 | SCI_EN).to_le_bytes());
        assert_eq!(rc.pending(), None);
        pm.write(CNT_OFFSET, &(5u16 << 10 | SLP_EN | SCI_EN).to_le_bytes());
        assert_eq!(rc.pending(), Some(MachineRequest::PowerOff));
    }

    #[test]
    fn a_byte_write_of_the_high_half_powers_off_too() {
        let (mut pm, rc, _) = pm();
        pm.write(CNT_OFFSET + 1, &[((5u16 << 10 | SLP_EN) >> 8) as u8]);
        assert_eq!(rc.pending(), Some(MachineRequest::PowerOff));
    }

    #[test]
    fn other_values_do_not_power_off() {
        for typ in (0u16..8).filter(|&t| t != 5) {
            let (mut pm, rc, _) = pm();
            pm.write(CNT_OFFSET, &(typ << 10 | SLP_EN).to_le_bytes());
            assert_eq!(rc.pending(), None, "SLP_TYP {typ}");
        }
        let (mut pm, rc, _) = pm();
        // S5 without SLP_EN, SLP_EN written to the wrong register, S5 in the status and enable
        // registers, a reset value of the wrong kind.
        pm.write(CNT_OFFSET, &(5u16 << 10).to_le_bytes());
        pm.write(EVT_OFFSET, &(5u16 << 10 | SLP_EN).to_le_bytes());
        pm.write(EVT_OFFSET + 2, &(5u16 << 10 | SLP_EN).to_le_bytes());
        pm.write(RESET_OFFSET, &[0x06]);
        pm.write(TMR_OFFSET, &[0xff; 4]);
        assert_eq!(rc.pending(), None);
    }

    #[test]
    fn sci_en_reads_set_and_write_only_bits_read_clear() {
        let (mut pm, _, _) = pm();
        assert_eq!(read16(&mut pm, CNT_OFFSET), SCI_EN);
        // SLP_TYP 3 with SLP_EN and GBL_RLS: the type is kept, the write-only bits are not.
        pm.write(
            CNT_OFFSET,
            &(3u16 << 10 | SLP_EN | 1 << 2 | 1 << 1).to_le_bytes(),
        );
        assert_eq!(read16(&mut pm, CNT_OFFSET), 3 << 10 | 1 << 1 | SCI_EN);
        // Clearing SCI_EN is refused: the machine stays in ACPI mode.
        pm.write(CNT_OFFSET, &0u16.to_le_bytes());
        assert_eq!(read16(&mut pm, CNT_OFFSET), SCI_EN);
        pm.reset();
        assert_eq!(read16(&mut pm, CNT_OFFSET), SCI_EN);
    }

    #[test]
    fn enable_keeps_defined_bits_and_status_reads_zero() {
        let (mut pm, _, _) = pm();
        pm.write(EVT_OFFSET + 2, &0xffffu16.to_le_bytes());
        assert_eq!(read16(&mut pm, EVT_OFFSET + 2), PM1_EN_MASK);
        assert_eq!(pm.pm1_en(), PM1_EN_MASK);
        pm.write(EVT_OFFSET, &0xffffu16.to_le_bytes());
        assert_eq!(read16(&mut pm, EVT_OFFSET), 0);
        // A dword read of the event block: status low, enable high.
        let mut d = [0u8; 4];
        pm.read(EVT_OFFSET, &mut d);
        assert_eq!(u32::from_le_bytes(d), u32::from(PM1_EN_MASK) << 16);
        pm.reset();
        assert_eq!(pm.pm1_en(), 0);
    }

    #[test]
    fn timer_counts_at_3_579545_mhz() {
        let (mut pm, _, clock) = pm();
        let mut d = [0u8; 4];
        pm.read(TMR_OFFSET, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0);
        clock.set(1_000_000_000);
        pm.read(TMR_OFFSET, &mut d);
        assert_eq!(u32::from_le_bytes(d), 3_579_545);
        // Wraps at 32 bits: 2^32 ticks is about 1199.9 s.
        clock.set(2_000_000_000_000);
        assert_eq!(
            pm.timer(),
            (2_000_000_000_000u128 * 3_579_545 / 1_000_000_000) as u32
        );
        clock.set(u64::MAX);
        let _ = pm.timer();
    }

    #[test]
    fn reset_register_posts_reset() {
        let (mut pm, rc, _) = pm();
        pm.write(RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
    }

    #[test]
    fn odd_accesses_do_not_panic() {
        let (mut pm, _, _) = pm();
        for off in [0u16, 5, 0xe, 0xf, 0x10, 0xffff] {
            let mut d = [0u8; 8];
            pm.read(off, &mut d);
            pm.write(off, &[0; 8]);
            pm.read(off, &mut []);
            pm.write(off, &[]);
        }
    }
}
