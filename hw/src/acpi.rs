//! ACPI: the firmware tables a kernel reads to find the CPUs, interrupt controllers and power
//! management hardware, and the PM device that powers the machine off.
//!
//! Spec: ACPI 6.5, chapter 5 (tables: RSDP 5.2.5, XSDT 5.2.8, FADT 5.2.9, FACS 5.2.10, DSDT
//! 5.2.11.1, MADT 5.2.12), chapter 4.8 (fixed PM hardware), 7.4.2 (`\_S5`), chapter 20 (AML).
//!
//! [`AcpiTables::build`] makes one blob, meant to be mapped read-only at a fixed guest-physical
//! address, holding, in this order (each table aligned as its consumer needs):
//!
//! | table | align | what |
//! | --- | --- | --- |
//! | RSDP | 16 | revision 2, XSDT address, both checksums ([`rsdp`]) |
//! | FACS | 64 | required by a non-hardware-reduced FADT ([`facs`]) |
//! | XSDT | 8 | FADT and MADT ([`xsdt`]) |
//! | FADT | 8 | revision 6, PM1a blocks, PM timer, reset register, SCI, DSDT, FACS ([`fadt`]) |
//! | MADT | 8 | a Local APIC per CPU, the I/O APIC, IRQ0 -> GSI 2, the SCI override ([`madt`]) |
//! | DSDT | 8 | `Name (_S5, Package (4) {5, 0, 0, 0})`, and `\_SB.PCI0` with a PCI bus ([`dsdt`], [`pci_root`]) |
//!
//! and [`pm::Pm`] is the port device behind the FADT's PM blocks: writing SLP_TYP 5 | SLP_EN
//! to PM1a_CNT posts [`tandem_softmmu::MachineRequest::PowerOff`], which ends the run.
//!
//! # How the board wires it (hw/src/pc.rs)
//!
//! 1. Tables: `let acpi = AcpiTables::build(AcpiConfig::pc(cpus), ACPI_TABLES_BASE)?;` then,
//!    before `map.build()`, `map.rom(ACPI_TABLES_BASE, acpi.bytes())?`. [`ACPI_TABLES_BASE`] is
//!    0xE0000, inside the legacy hole the board leaves unassigned and inside the area Linux
//!    scans for the RSDP (0xE0000-0xFFFFF on 16-byte boundaries, ACPI 5.2.5.1); the blob is
//!    under 8 KiB ([`ACPI_TABLES_MAX_LEN`] bounds it for any CPU count, PCI root included), so
//!    the ROM covers at most 0xE0000-0xE1FFF.
//! 2. e820: report the range as reserved, so the OS keeps it: widen the existing reserved entry
//!    0xF0000-0xFFFFF to start at 0xE0000 ([`ACPI_TABLES_BASE`]), i.e. `addr: 0xe_0000,
//!    size: 0x2_0000`.
//! 3. PM device: `ports.register(PM_BASE, PM_BLOCK_LEN, Arc::new(Mutex::new(Pm::new(
//!    control.clone(), clock.clone()))))?` — ports 0x600-0x60F: PM1a_EVT 0x600 (4 bytes),
//!    PM1a_CNT 0x604 (2), PM_TMR 0x608 (4), reset register 0x60C (1, value 1); see [`pm`].
//!    On a machine reset call `Pm::reset`.
//! 4. For a scan-free boot the Linux loader finds the RSDP in the BIOS area
//!    ([`rsdp::find`]) and puts its address in boot_params.acpi_rsdp_addr (offset 0x070, boot
//!    protocol 2.14+); older kernels scan and find it anyway.
//!
//! The board's facts the tables state, which must stay true: CPU n has APIC ID n; the local
//! APICs at 0xFEE00000; one I/O APIC (ID 0) at 0xFEC00000 with GSI base 0 and the PIT on pin 2;
//! the SCI on ISA IRQ 9 (level, active-high; the PM device never raises it); the CMOS century
//! byte at index 0x32; an i8042 present; no VGA.
//!
//! With [`AcpiConfig::pci`] set, the DSDT also describes PCI bus 0 (`\_SB.PCI0`: bus range,
//! windows, `_PRT`; see [`pci_root`]), which Linux needs to find the bus with ACPI on.
//!
//! Known warts: no RSDT (ACPI-1.0-only readers find nothing), no HPET, SRAT or MCFG (PCI
//! configuration is through ports 0xCF8/0xCFC only), no S3/S4, no x2APIC (at most 255 CPUs);
//! the whole blob must lie below 4 GiB (the FADT's 32-bit pointers are filled).

pub mod aml;
pub mod dsdt;
pub mod facs;
pub mod fadt;
pub mod madt;
pub mod pci_root;
pub mod pm;
pub mod resource;
pub mod rsdp;
pub mod sdt;
pub mod xsdt;

use thiserror::Error;

use self::aml::AmlError;
use self::fadt::{FadtParams, BOOT_ARCH_8042, BOOT_ARCH_LEGACY_DEVICES, BOOT_ARCH_VGA_NOT_PRESENT};
use self::madt::MadtParams;
pub use self::pci_root::PciAcpi;
use self::pm::{CNT_OFFSET, EVT_OFFSET, PM_BASE, RESET_OFFSET, RESET_VALUE, TMR_OFFSET};

/// Where the board maps the tables: the start of the BIOS area Linux scans for the RSDP.
pub const ACPI_TABLES_BASE: u64 = 0xe_0000;
/// End (exclusive) of the area an IA-PC OS scans for the RSDP.
pub const RSDP_SCAN_END: u64 = 0x10_0000;
/// An upper bound on the blob's length for any valid configuration (255 CPUs and the PCI root
/// bridge included).
pub const ACPI_TABLES_MAX_LEN: usize = 0x2000;
/// The SCI's ISA IRQ on the PC board (as QEMU's PIIX4 and ICH9).
pub const PC_SCI_IRQ: u8 = 9;
/// The local APICs' physical address.
pub const PC_LAPIC_ADDRESS: u32 = 0xfee0_0000;
/// The I/O APIC's physical address.
pub const PC_IOAPIC_ADDRESS: u32 = 0xfec0_0000;
/// CMOS index of the RTC's century byte.
pub const PC_CMOS_CENTURY: u8 = 0x32;

/// Why the tables could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AcpiError {
    /// The MADT lists 1 to 255 CPUs.
    #[error("ACPI tables describe 1 to 255 CPUs, not {0}")]
    BadCpuCount(u32),
    /// The SCI must be an ISA IRQ other than 0 and 2 (the timer and the cascade).
    #[error("SCI IRQ {0} is not a usable ISA IRQ (1, 3-15)")]
    BadSciIrq(u8),
    /// The blob would extend past 4 GiB (or past the end of the address space).
    #[error("ACPI tables at {0:#x} would not lie below 4 GiB")]
    AboveFourGiB(u64),
    /// A table grew past what its length field holds.
    #[error("ACPI table {} too large", String::from_utf8_lossy(.0))]
    TableTooLarge([u8; 4]),
    /// The DSDT's AML could not be encoded.
    #[error("encoding AML")]
    Aml(#[from] AmlError),
}

/// What the tables describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Number of CPUs (APIC IDs 0..cpus), 1 to 255.
    pub cpus: u32,
    /// Physical address of the local APICs.
    pub lapic_address: u32,
    /// Physical address of the I/O APIC.
    pub ioapic_address: u32,
    /// The I/O APIC's ID.
    pub ioapic_id: u8,
    /// Port of the PM1a event block (4 bytes).
    pub pm1a_evt_port: u16,
    /// Port of the PM1a control block (2 bytes).
    pub pm1a_cnt_port: u16,
    /// Port of the 32-bit PM timer, if the board has one.
    pub pm_tmr_port: Option<u16>,
    /// Port of the 8-bit reset register and its reset value, if the board has one.
    pub reset: Option<(u16, u8)>,
    /// The SCI's ISA IRQ.
    pub sci_irq: u8,
    /// CMOS index of the century byte (0: none).
    pub cmos_century: u8,
    /// FADT IAPC_BOOT_ARCH flags (see [`fadt`]).
    pub iapc_boot_arch: u16,
    /// PCI bus 0, if the board has one: the DSDT then holds its root bridge.
    pub pci: Option<PciAcpi>,
}

impl AcpiConfig {
    /// The PC board's configuration: APICs at their usual addresses, the [`pm::Pm`] block at
    /// [`pm::PM_BASE`], SCI on IRQ 9, legacy devices and an i8042 present, no VGA, no PCI
    /// (set [`AcpiConfig::pci`] for a board with a PCI bus).
    pub fn pc(cpus: u32) -> Self {
        Self {
            cpus,
            lapic_address: PC_LAPIC_ADDRESS,
            ioapic_address: PC_IOAPIC_ADDRESS,
            ioapic_id: 0,
            pm1a_evt_port: PM_BASE + EVT_OFFSET,
            pm1a_cnt_port: PM_BASE + CNT_OFFSET,
            pm_tmr_port: Some(PM_BASE + TMR_OFFSET),
            reset: Some((PM_BASE + RESET_OFFSET, RESET_VALUE)),
            sci_irq: PC_SCI_IRQ,
            cmos_century: PC_CMOS_CENTURY,
            iapc_boot_arch: BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT,
            pci: None,
        }
    }
}

/// The built tables: one blob and where each table lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    bytes: Vec<u8>,
    base: u64,
    rsdp: usize,
    facs: usize,
    xsdt: usize,
    fadt: usize,
    madt: usize,
    dsdt: usize,
}

/// `at` rounded up so that `base + at` is a multiple of `align` (a power of two).
fn align_offset(base: u64, at: usize, align: u64) -> Result<usize, AcpiError> {
    let addr = base
        .checked_add(at as u64)
        .ok_or(AcpiError::AboveFourGiB(base))?;
    let aligned = addr
        .checked_add(align - 1)
        .ok_or(AcpiError::AboveFourGiB(base))?
        & !(align - 1);
    usize::try_from(aligned - base).map_err(|_| AcpiError::AboveFourGiB(base))
}

impl AcpiTables {
    /// Builds every table for a blob that will be placed at guest-physical `base_addr` (any
    /// address: each table is aligned on absolute addresses; [`AcpiTables::rsdp_offset`] says
    /// where the RSDP ended up).
    pub fn build(config: AcpiConfig, base_addr: u64) -> Result<Self, AcpiError> {
        if config.sci_irq == 0 || config.sci_irq == 2 || config.sci_irq > 15 {
            return Err(AcpiError::BadSciIrq(config.sci_irq));
        }
        let madt = madt::madt(&MadtParams {
            cpus: config.cpus,
            lapic_address: config.lapic_address,
            ioapic_id: config.ioapic_id,
            ioapic_address: config.ioapic_address,
            sci_irq: config.sci_irq,
        })?;
        let dsdt = dsdt::dsdt(config.pci.as_ref())?;

        // Lay out first (every length is known without addresses), then fill in pointers.
        let rsdp_off = align_offset(base_addr, 0, 16)?;
        let facs_off = align_offset(base_addr, rsdp_off + rsdp::RSDP_LEN, facs::FACS_ALIGN)?;
        let xsdt_off = align_offset(base_addr, facs_off + facs::FACS_LEN, 8)?;
        let fadt_off = align_offset(base_addr, xsdt_off + xsdt::xsdt_len(2), 8)?;
        let madt_off = align_offset(base_addr, fadt_off + fadt::FADT_LEN, 8)?;
        let dsdt_off = align_offset(base_addr, madt_off + madt.len(), 8)?;
        let end = dsdt_off + dsdt.len();
        let addr32 = |off: usize| -> Result<u32, AcpiError> {
            base_addr
                .checked_add(off as u64)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or(AcpiError::AboveFourGiB(base_addr))
        };
        // The last byte must lie below 4 GiB too.
        addr32(end - 1)?;
        let addr = |off: usize| base_addr + off as u64;

        let fadt = fadt::fadt(&FadtParams {
            facs_addr: addr32(facs_off)?,
            dsdt_addr: addr32(dsdt_off)?,
            sci_irq: config.sci_irq,
            pm1a_evt_port: config.pm1a_evt_port,
            pm1a_cnt_port: config.pm1a_cnt_port,
            pm_tmr_port: config.pm_tmr_port,
            reset: config.reset,
            century: config.cmos_century,
            iapc_boot_arch: config.iapc_boot_arch,
        })?;
        let xsdt = xsdt::xsdt(&[addr(fadt_off), addr(madt_off)])?;
        let rsdp = rsdp::rsdp(addr(xsdt_off));

        let mut bytes = vec![0u8; end];
        for (off, t) in [
            (rsdp_off, &rsdp[..]),
            (facs_off, &facs::facs()[..]),
            (xsdt_off, &xsdt[..]),
            (fadt_off, &fadt[..]),
            (madt_off, &madt[..]),
            (dsdt_off, &dsdt[..]),
        ] {
            sdt::put(&mut bytes, off, t);
        }
        Ok(Self {
            bytes,
            base: base_addr,
            rsdp: rsdp_off,
            facs: facs_off,
            xsdt: xsdt_off,
            fadt: fadt_off,
            madt: madt_off,
            dsdt: dsdt_off,
        })
    }

    /// The blob, to be placed at the `base_addr` it was built for.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blob, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The address the blob was built for.
    pub fn base_addr(&self) -> u64 {
        self.base
    }

    /// Offset of the RSDP in the blob (16-byte aligned as an address).
    pub fn rsdp_offset(&self) -> usize {
        self.rsdp
    }

    /// Guest-physical address of the RSDP (for boot_params.acpi_rsdp_addr).
    pub fn rsdp_address(&self) -> u64 {
        self.base + self.rsdp as u64
    }

    /// Offset of the FACS in the blob.
    pub fn facs_offset(&self) -> usize {
        self.facs
    }

    /// Offset of the XSDT in the blob.
    pub fn xsdt_offset(&self) -> usize {
        self.xsdt
    }

    /// Offset of the FADT in the blob.
    pub fn fadt_offset(&self) -> usize {
        self.fadt
    }

    /// Offset of the MADT in the blob.
    pub fn madt_offset(&self) -> usize {
        self.madt
    }

    /// Offset of the DSDT in the blob.
    pub fn dsdt_offset(&self) -> usize {
        self.dsdt
    }

    /// The bytes of the table at `offset` (header length), if it fits in the blob.
    pub fn table_at(&self, offset: usize) -> Option<&[u8]> {
        sdt::valid_table(self.bytes.get(offset..)?).map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::sdt::{sums_to_zero, valid_table};
    use super::*;

    fn u32_at(t: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(t[o..o + 4].try_into().unwrap())
    }
    fn u64_at(t: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(t[o..o + 8].try_into().unwrap())
    }

    /// Finds the RSDP in `area` (mapped at `area_base`) the way Linux does: 16-byte steps,
    /// signature, then the 20-byte checksum and, for revision 2, the 36-byte one.
    fn scan_rsdp(area: &[u8], area_base: u64) -> Option<u64> {
        (0..area.len().saturating_sub(36))
            .step_by(16)
            .find_map(|o| {
                let r = &area[o..o + 36];
                (r[..8] == *b"RSD PTR " && sums_to_zero(&r[..20]) && sums_to_zero(r))
                    .then_some(area_base + o as u64)
            })
    }

    #[test]
    fn an_os_finds_every_table_from_the_scanned_area() {
        let t = AcpiTables::build(AcpiConfig::pc(2), ACPI_TABLES_BASE).unwrap();
        assert!(t.bytes().len() <= ACPI_TABLES_MAX_LEN);
        // The BIOS area as the guest sees it, with the blob at its base.
        let mut area = vec![0u8; (RSDP_SCAN_END - ACPI_TABLES_BASE) as usize];
        area[..t.bytes().len()].copy_from_slice(t.bytes());
        let rsdp = scan_rsdp(&area, ACPI_TABLES_BASE).unwrap();
        assert_eq!(rsdp, t.rsdp_address());
        assert_eq!(rsdp % 16, 0);
        let at = |addr: u64| &area[(addr - ACPI_TABLES_BASE) as usize..];
        let r = at(rsdp);
        assert_eq!(r[15], 2);
        let (xh, xsdt) = valid_table(at(u64_at(r, 24))).unwrap();
        assert_eq!(&xh.signature, b"XSDT");
        assert_eq!(xh.length, 36 + 16);
        let sigs: Vec<[u8; 4]> = (0..2)
            .map(|i| {
                valid_table(at(u64_at(xsdt, 36 + 8 * i)))
                    .unwrap()
                    .0
                    .signature
            })
            .collect();
        assert_eq!(sigs, vec![*b"FACP", *b"APIC"]);
        let (_, fadt) = valid_table(at(u64_at(xsdt, 36))).unwrap();
        let dsdt_addr = u64_at(fadt, fadt::X_DSDT);
        assert_eq!(u64::from(u32_at(fadt, fadt::DSDT)), dsdt_addr);
        let (dh, dsdt) = valid_table(at(dsdt_addr)).unwrap();
        assert_eq!(&dh.signature, b"DSDT");
        assert_eq!(&dsdt[36..41], b"\x08_S5_");
        let facs_addr = u64_at(fadt, fadt::X_FIRMWARE_CTRL);
        assert_eq!(u64::from(u32_at(fadt, fadt::FIRMWARE_CTRL)), facs_addr);
        assert_eq!(facs_addr % 64, 0);
        assert_eq!(&at(facs_addr)[..4], b"FACS");
        // The PM blocks are where the Pm device is mapped.
        assert_eq!(u32_at(fadt, fadt::PM1A_EVT_BLK), 0x600);
        assert_eq!(u32_at(fadt, fadt::PM1A_CNT_BLK), 0x604);
        assert_eq!(u32_at(fadt, fadt::PM_TMR_BLK), 0x608);
        assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), 9);
        assert_eq!(fadt[fadt::RESET_VALUE], pm::RESET_VALUE);
        assert_eq!(u64_at(fadt, fadt::RESET_REG + 4), 0x60c);
        assert_eq!(
            u16::from_le_bytes([fadt[109], fadt[110]]),
            BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 | BOOT_ARCH_VGA_NOT_PRESENT
        );
    }

    #[test]
    fn every_table_in_the_blob_is_valid_and_non_overlapping() {
        let t = AcpiTables::build(AcpiConfig::pc(8), ACPI_TABLES_BASE).unwrap();
        let mut spans = vec![(t.rsdp_offset(), 36), (t.facs_offset(), 64)];
        for (off, sig, rev) in [
            (t.xsdt_offset(), *b"XSDT", 1),
            (t.fadt_offset(), *b"FACP", 6),
            (t.madt_offset(), *b"APIC", 5),
            (t.dsdt_offset(), *b"DSDT", 2),
        ] {
            let table = t.table_at(off).unwrap();
            let h = sdt::parse_header(table).unwrap();
            assert_eq!((h.signature, h.revision), (sig, rev));
            assert!(sums_to_zero(table));
            spans.push((off, table.len()));
        }
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{spans:?}");
        }
        assert_eq!(spans.last().map(|s| s.0 + s.1), Some(t.bytes().len()));
        let madt = t.table_at(t.madt_offset()).unwrap();
        let lapics = madt::entries(madt)
            .unwrap()
            .iter()
            .filter(|e| e.kind == madt::TYPE_LOCAL_APIC)
            .count();
        assert_eq!(lapics, 8);
    }

    #[test]
    fn odd_bases_align_every_table_on_absolute_addresses() {
        for base in [0xe_0001u64, 0xe_0008, 0xe_0030, 0xf_fff0 - 0x400] {
            let t = AcpiTables::build(AcpiConfig::pc(1), base).unwrap();
            assert_eq!(t.rsdp_address() % 16, 0);
            assert_eq!((base + t.facs_offset() as u64) % 64, 0);
            for off in [
                t.xsdt_offset(),
                t.fadt_offset(),
                t.madt_offset(),
                t.dsdt_offset(),
            ] {
                assert_eq!((base + off as u64) % 8, 0);
                assert!(t.table_at(off).is_some());
            }
            let r = &t.bytes()[t.rsdp_offset()..];
            assert_eq!(u64_at(r, 24), base + t.xsdt_offset() as u64);
        }
    }

    #[test]
    fn bad_configurations_are_errors_not_panics() {
        let bad = |c: AcpiConfig, base: u64| AcpiTables::build(c, base).unwrap_err();
        assert_eq!(bad(AcpiConfig::pc(0), 0xe_0000), AcpiError::BadCpuCount(0));
        assert_eq!(
            bad(AcpiConfig::pc(300), 0xe_0000),
            AcpiError::BadCpuCount(300)
        );
        for irq in [0u8, 2, 16, 255] {
            let c = AcpiConfig {
                sci_irq: irq,
                ..AcpiConfig::pc(1)
            };
            assert_eq!(bad(c, 0xe_0000), AcpiError::BadSciIrq(irq));
        }
        for base in [0xffff_ff00u64, 0x1_0000_0000, u64::MAX - 8, u64::MAX] {
            assert!(matches!(
                bad(AcpiConfig::pc(1), base),
                AcpiError::AboveFourGiB(_)
            ));
        }
        // The most CPUs still fit the documented bound.
        let t = AcpiTables::build(AcpiConfig::pc(255), ACPI_TABLES_BASE).unwrap();
        assert!(t.bytes().len() <= ACPI_TABLES_MAX_LEN);
        assert!(!AcpiError::TableTooLarge(*b"DSDT").to_string().is_empty());
    }

    #[test]
    fn any_configuration_builds_valid_tables_or_fails_cleanly() {
        let bases = [
            0,
            1,
            15,
            0xe_0000,
            0xffff_e000,
            0xffff_f7ff,
            u64::MAX - 100,
            u64::MAX,
        ];
        for sci_irq in 0..=255u8 {
            for cpus in [0, 1, 2, 255, 256, u32::MAX] {
                for base in bases {
                    let c = AcpiConfig {
                        sci_irq,
                        ioapic_id: sci_irq,
                        pm1a_evt_port: u16::from(sci_irq) << 8,
                        pm_tmr_port: (sci_irq % 2 == 0).then_some(0xffff),
                        ..AcpiConfig::pc(cpus)
                    };
                    let Ok(t) = AcpiTables::build(c, base) else {
                        continue;
                    };
                    assert!(base + (t.bytes().len() as u64) <= 1 << 32);
                    assert_eq!(t.rsdp_address() % 16, 0);
                    for off in [
                        t.xsdt_offset(),
                        t.fadt_offset(),
                        t.madt_offset(),
                        t.dsdt_offset(),
                    ] {
                        assert!(t.table_at(off).is_some(), "cpus {cpus} base {base:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_pm_device_on_the_fadt_ports_powers_off() {
        use std::sync::{Arc, Mutex};
        use tandem_softmmu::{MachineRequest, PortBus, RunControl};

        let config = AcpiConfig::pc(1);
        let control = Arc::new(RunControl::new());
        let clock = Arc::new(crate::timer::clock::ManualClock::new());
        let mut ports = PortBus::new();
        let dev = Arc::new(Mutex::new(pm::Pm::new(control.clone(), clock)));
        ports.register(pm::PM_BASE, pm::PM_BLOCK_LEN, dev).unwrap();
        let mut cnt = [0u8; 2];
        ports.read(config.pm1a_cnt_port, &mut cnt);
        assert_eq!(u16::from_le_bytes(cnt) & pm::SCI_EN, pm::SCI_EN);
        let v = u16::from(dsdt::S5_SLP_TYP) << pm::SLP_TYP_SHIFT | pm::SLP_EN;
        ports.write(config.pm1a_cnt_port, &v.to_le_bytes());
        assert_eq!(control.pending(), Some(MachineRequest::PowerOff));
    }
}
