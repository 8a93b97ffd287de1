//! The Fixed ACPI Description Table: where the fixed power-management hardware is.
//!
//! Spec: ACPI 6.5, 5.2.9 ("Fixed ACPI Description Table (FADT)"), table 5.9 for the field
//! offsets, 5.2.9.1 for the flags, 5.2.9.3 for IAPC_BOOT_ARCH, 5.2.3.2 for the Generic Address
//! Structure.
//!
//! tandem's FADT is revision 6 (ACPI 6.0 layout, 276 bytes) and *not* hardware-reduced: the
//! classic fixed hardware is the simplest thing Linux powers off with. It names
//! - the DSDT (32- and 64-bit pointers, equal) and the FACS (required without HW_REDUCED);
//! - the PM1a event block (4 bytes: PM1_STS, PM1_EN) and control block (2 bytes: PM1_CNT),
//!   both as the 32-bit port fields and as equal X_ Generic Address Structures (ACPICA warns
//!   when the two disagree);
//! - optionally the PM timer (4 bytes, 32-bit counter: TMR_VAL_EXT set) and a reset register
//!   (8-bit I/O, RESET_REG_SUP set);
//! - the SCI's ISA IRQ;
//! - SMI_CMD = 0, ACPI_ENABLE = ACPI_DISABLE = 0: no SMM, the machine is always in ACPI mode
//!   (SCI_EN reads 1), so ACPICA's `acpi_hw_get_mode()` answers "ACPI mode" without touching a
//!   port (ACPI 2.0 clarified that SMI_CMD 0 means no mode transition);
//! - no GPE blocks, no PM1b/PM2 blocks, no C-states (P_LVL2/3 latencies above the limits mean
//!   "not supported");
//! - Preferred_PM_Profile 0 (Unspecified): a virtual machine has no form factor to declare, and
//!   Linux only uses the profile to choose cpufreq policy defaults, which do not apply here;
//! - IAPC_BOOT_ARCH = LEGACY_DEVICES | 8042 | VGA_NOT_PRESENT: the board has ISA devices
//!   (COM1, the RTC, the i8042) at their fixed ports that the DSDT does not describe, so the OS
//!   must probe them (Linux otherwise marks the i8042 "firmware absent" and never probes it, and
//!   then cannot reset through it); there is no VGA, so the OS must not probe for one; MSI and
//!   ASPM bits are clear; the CMOS RTC is present;
//! - CENTURY = the CMOS index of the century byte (0x32 on the board's RTC);
//! - flags WBINVD (required), PROC_C1, PWR_BUTTON and SLP_BUTTON (no fixed-feature buttons: the
//!   OS must not expect power or sleep button events from PM1), RESET_REG_SUP when a reset
//!   register is given, TMR_VAL_EXT when a PM timer is.
//!
//! Known warts: no FIRMWARE_CTRL above 4 GiB (the whole blob must sit below 4 GiB); no hypervisor
//! vendor identity.

use super::sdt::{put, seal};
use super::AcpiError;

/// The FADT's signature ("FACP", for historical reasons).
pub const SIGNATURE: [u8; 4] = *b"FACP";
/// Major revision: the ACPI 6.0 layout.
pub const REVISION: u8 = 6;
/// Minor revision (FADT Minor Version field).
pub const MINOR_REVISION: u8 = 0;
/// Length of a revision-6 FADT.
pub const FADT_LEN: usize = 276;

/// FIRMWARE_CTRL: 32-bit FACS address.
pub const FIRMWARE_CTRL: usize = 36;
/// DSDT: 32-bit DSDT address.
pub const DSDT: usize = 40;
/// Preferred_PM_Profile.
pub const PREFERRED_PM_PROFILE: usize = 45;
/// SCI_INT: the SCI's ISA IRQ (a GSI if no override names it).
pub const SCI_INT: usize = 46;
/// SMI_CMD: the SMI command port, 0 when there is no SMM mode transition.
pub const SMI_CMD: usize = 48;
/// PM1a_EVT_BLK: port of the PM1a event block.
pub const PM1A_EVT_BLK: usize = 56;
/// PM1a_CNT_BLK: port of the PM1a control block.
pub const PM1A_CNT_BLK: usize = 64;
/// PM_TMR_BLK: port of the PM timer.
pub const PM_TMR_BLK: usize = 76;
/// PM1_EVT_LEN: bytes of the PM1 event block.
pub const PM1_EVT_LEN: usize = 88;
/// PM1_CNT_LEN: bytes of the PM1 control block.
pub const PM1_CNT_LEN: usize = 89;
/// PM_TMR_LEN: bytes of the PM timer (4 or 0).
pub const PM_TMR_LEN: usize = 91;
/// P_LVL2_LAT: C2 latency in µs (> 100 means no C2).
pub const P_LVL2_LAT: usize = 96;
/// P_LVL3_LAT: C3 latency in µs (> 1000 means no C3).
pub const P_LVL3_LAT: usize = 98;
/// CENTURY: CMOS index of the century byte.
pub const CENTURY: usize = 108;
/// IAPC_BOOT_ARCH flags.
pub const IAPC_BOOT_ARCH: usize = 109;
/// Flags.
pub const FLAGS: usize = 112;
/// RESET_REG: Generic Address Structure of the reset register.
pub const RESET_REG: usize = 116;
/// RESET_VALUE: the byte to write there.
pub const RESET_VALUE: usize = 128;
/// FADT Minor Version.
pub const MINOR_VERSION: usize = 131;
/// X_FIRMWARE_CTRL: 64-bit FACS address.
pub const X_FIRMWARE_CTRL: usize = 132;
/// X_DSDT: 64-bit DSDT address.
pub const X_DSDT: usize = 140;
/// X_PM1a_EVT_BLK (GAS).
pub const X_PM1A_EVT_BLK: usize = 148;
/// X_PM1a_CNT_BLK (GAS).
pub const X_PM1A_CNT_BLK: usize = 172;
/// X_PM_TMR_BLK (GAS).
pub const X_PM_TMR_BLK: usize = 208;

/// Flags bit: WBINVD works (required of IA-PC).
pub const FLAG_WBINVD: u32 = 1 << 0;
/// Flags bit: C1 is supported on all processors.
pub const FLAG_PROC_C1: u32 = 1 << 2;
/// Flags bit: the power button, if any, is a control-method device (no fixed button).
pub const FLAG_PWR_BUTTON: u32 = 1 << 4;
/// Flags bit: the sleep button, if any, is a control-method device (no fixed button).
pub const FLAG_SLP_BUTTON: u32 = 1 << 5;
/// Flags bit: the PM timer is 32 bits wide.
pub const FLAG_TMR_VAL_EXT: u32 = 1 << 8;
/// Flags bit: RESET_REG is supported.
pub const FLAG_RESET_REG_SUP: u32 = 1 << 10;
/// Flags bit: hardware-reduced ACPI (not set by tandem).
pub const FLAG_HW_REDUCED_ACPI: u32 = 1 << 20;

/// IAPC_BOOT_ARCH: ISA/LPC devices the OS must probe for.
pub const BOOT_ARCH_LEGACY_DEVICES: u16 = 1 << 0;
/// IAPC_BOOT_ARCH: an 8042 keyboard controller is present.
pub const BOOT_ARCH_8042: u16 = 1 << 1;
/// IAPC_BOOT_ARCH: no VGA; do not probe for it.
pub const BOOT_ARCH_VGA_NOT_PRESENT: u16 = 1 << 2;

/// Generic Address Structure address space: system I/O ports.
pub const GAS_SYSTEM_IO: u8 = 1;
/// GAS access size: byte.
pub const GAS_ACCESS_BYTE: u8 = 1;
/// GAS access size: 16-bit word.
pub const GAS_ACCESS_WORD: u8 = 2;
/// GAS access size: 32-bit dword.
pub const GAS_ACCESS_DWORD: u8 = 3;

/// A Generic Address Structure (5.2.3.2) of an I/O-port register.
pub fn io_gas(port: u16, bit_width: u8, access_size: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = GAS_SYSTEM_IO;
    g[1] = bit_width;
    g[2] = 0;
    g[3] = access_size;
    put(&mut g, 4, &u64::from(port).to_le_bytes());
    g
}

/// What the FADT describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FadtParams {
    /// Physical address of the FACS (below 4 GiB).
    pub facs_addr: u32,
    /// Physical address of the DSDT (below 4 GiB).
    pub dsdt_addr: u32,
    /// The SCI's ISA IRQ.
    pub sci_irq: u8,
    /// Port of the PM1a event block (4 bytes).
    pub pm1a_evt_port: u16,
    /// Port of the PM1a control block (2 bytes).
    pub pm1a_cnt_port: u16,
    /// Port of the 32-bit PM timer, if any.
    pub pm_tmr_port: Option<u16>,
    /// Port of an 8-bit reset register and the value that resets, if any.
    pub reset: Option<(u16, u8)>,
    /// CMOS index of the century byte (0: none).
    pub century: u8,
    /// IAPC_BOOT_ARCH flags.
    pub iapc_boot_arch: u16,
}

/// Bytes of the PM1 event block (status + enable, 2 bytes each).
pub const PM1_EVT_BLOCK_LEN: u8 = 4;
/// Bytes of the PM1 control block.
pub const PM1_CNT_BLOCK_LEN: u8 = 2;
/// Bytes of the PM timer.
pub const PM_TMR_BLOCK_LEN: u8 = 4;

/// A revision-6 FADT.
pub fn fadt(p: &FadtParams) -> Result<Vec<u8>, AcpiError> {
    let mut t = vec![0u8; FADT_LEN];
    put(&mut t, FIRMWARE_CTRL, &p.facs_addr.to_le_bytes());
    put(&mut t, DSDT, &p.dsdt_addr.to_le_bytes());
    put(&mut t, PREFERRED_PM_PROFILE, &[0]);
    put(&mut t, SCI_INT, &u16::from(p.sci_irq).to_le_bytes());
    // SMI_CMD, ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT stay 0: see the module doc.
    put(&mut t, SMI_CMD, &0u32.to_le_bytes());
    put(
        &mut t,
        PM1A_EVT_BLK,
        &u32::from(p.pm1a_evt_port).to_le_bytes(),
    );
    put(
        &mut t,
        PM1A_CNT_BLK,
        &u32::from(p.pm1a_cnt_port).to_le_bytes(),
    );
    put(&mut t, PM1_EVT_LEN, &[PM1_EVT_BLOCK_LEN]);
    put(&mut t, PM1_CNT_LEN, &[PM1_CNT_BLOCK_LEN]);
    // Latencies over 100 µs (C2) and 1000 µs (C3) say those states do not exist, so the OS
    // idles with HLT (C1) only.
    put(&mut t, P_LVL2_LAT, &101u16.to_le_bytes());
    put(&mut t, P_LVL3_LAT, &1001u16.to_le_bytes());
    put(&mut t, CENTURY, &[p.century]);
    put(&mut t, IAPC_BOOT_ARCH, &p.iapc_boot_arch.to_le_bytes());
    let mut flags = FLAG_WBINVD | FLAG_PROC_C1 | FLAG_PWR_BUTTON | FLAG_SLP_BUTTON;
    if let Some(port) = p.pm_tmr_port {
        flags |= FLAG_TMR_VAL_EXT;
        put(&mut t, PM_TMR_BLK, &u32::from(port).to_le_bytes());
        put(&mut t, PM_TMR_LEN, &[PM_TMR_BLOCK_LEN]);
        put(&mut t, X_PM_TMR_BLK, &io_gas(port, 32, GAS_ACCESS_DWORD));
    }
    if let Some((port, value)) = p.reset {
        flags |= FLAG_RESET_REG_SUP;
        put(&mut t, RESET_REG, &io_gas(port, 8, GAS_ACCESS_BYTE));
        put(&mut t, RESET_VALUE, &[value]);
    }
    put(&mut t, FLAGS, &flags.to_le_bytes());
    put(&mut t, MINOR_VERSION, &[MINOR_REVISION]);
    put(
        &mut t,
        X_FIRMWARE_CTRL,
        &u64::from(p.facs_addr).to_le_bytes(),
    );
    put(&mut t, X_DSDT, &u64::from(p.dsdt_addr).to_le_bytes());
    // The event block is two 16-bit registers: ACPICA splits the GAS in halves and accesses
    // each as a word; the control block is one 16-bit register.
    put(
        &mut t,
        X_PM1A_EVT_BLK,
        &io_gas(p.pm1a_evt_port, 32, GAS_ACCESS_WORD),
    );
    put(
        &mut t,
        X_PM1A_CNT_BLK,
        &io_gas(p.pm1a_cnt_port, 16, GAS_ACCESS_WORD),
    );
    seal(&mut t, SIGNATURE, REVISION)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::sdt::valid_table;
    use super::*;

    fn u16_at(t: &[u8], o: usize) -> u16 {
        u16::from_le_bytes(t[o..o + 2].try_into().unwrap())
    }
    fn u32_at(t: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(t[o..o + 4].try_into().unwrap())
    }
    fn u64_at(t: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(t[o..o + 8].try_into().unwrap())
    }

    fn params() -> FadtParams {
        FadtParams {
            facs_addr: 0xe_0040,
            dsdt_addr: 0xe_0200,
            sci_irq: 9,
            pm1a_evt_port: 0x600,
            pm1a_cnt_port: 0x604,
            pm_tmr_port: Some(0x608),
            reset: Some((0x60c, 1)),
            century: 0x32,
            iapc_boot_arch: BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042,
        }
    }

    #[test]
    fn fields_sit_at_their_spec_offsets() {
        let t = fadt(&params()).unwrap();
        let (h, _) = valid_table(&t).unwrap();
        assert_eq!(&h.signature, b"FACP");
        assert_eq!(h.length, 276);
        assert_eq!(h.revision, 6);
        assert_eq!(u32_at(&t, 36), 0xe_0040);
        assert_eq!(u32_at(&t, 40), 0xe_0200);
        assert_eq!(u64_at(&t, 132), 0xe_0040);
        assert_eq!(u64_at(&t, 140), 0xe_0200);
        assert_eq!(u16_at(&t, 46), 9);
        assert_eq!(u32_at(&t, 48), 0, "SMI_CMD");
        assert_eq!(
            &t[52..56],
            &[0; 4],
            "ACPI_ENABLE/DISABLE, S4BIOS_REQ, PSTATE_CNT"
        );
        assert_eq!(u32_at(&t, 56), 0x600);
        assert_eq!(u32_at(&t, 60), 0, "PM1b_EVT_BLK");
        assert_eq!(u32_at(&t, 64), 0x604);
        assert_eq!(u32_at(&t, 68), 0, "PM1b_CNT_BLK");
        assert_eq!(u32_at(&t, 76), 0x608);
        assert_eq!(u32_at(&t, 80), 0, "GPE0_BLK");
        assert_eq!((t[88], t[89], t[91]), (4, 2, 4));
        assert_eq!(t[108], 0x32);
        assert_eq!(u16_at(&t, 109), 0x3);
        let flags = u32_at(&t, 112);
        assert_eq!(flags & FLAG_HW_REDUCED_ACPI, 0);
        assert_eq!(flags, 0x535);
        // RESET_REG: I/O, 8 bits, offset 0, byte access, port 0x60c; value 1.
        assert_eq!(&t[116..120], &[1, 8, 0, 1]);
        assert_eq!(u64_at(&t, 120), 0x60c);
        assert_eq!(t[128], 1);
        assert_eq!(t[131], 0);
        assert_eq!(&t[148..152], &[1, 32, 0, 2]);
        assert_eq!(u64_at(&t, 152), 0x600);
        assert_eq!(&t[172..176], &[1, 16, 0, 2]);
        assert_eq!(u64_at(&t, 176), 0x604);
        assert_eq!(&t[208..212], &[1, 32, 0, 3]);
        assert_eq!(u64_at(&t, 212), 0x608);
        assert_eq!(&t[244..276], &[0; 32], "sleep regs, hypervisor id");
    }

    #[test]
    fn optional_blocks_are_absent_when_not_given() {
        let t = fadt(&FadtParams {
            pm_tmr_port: None,
            reset: None,
            ..params()
        })
        .unwrap();
        assert!(valid_table(&t).is_some());
        assert_eq!(u32_at(&t, 76), 0);
        assert_eq!(t[91], 0);
        assert_eq!(&t[116..129], &[0; 13]);
        assert_eq!(&t[208..220], &[0; 12]);
        assert_eq!(u32_at(&t, 112) & (FLAG_TMR_VAL_EXT | FLAG_RESET_REG_SUP), 0);
    }
}
