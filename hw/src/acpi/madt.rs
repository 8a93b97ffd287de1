//! The Multiple APIC Description Table: the interrupt controllers and how ISA IRQs reach them.
//!
//! Spec: ACPI 6.5, 5.2.12 ("Multiple APIC Description Table (MADT)"): the header, the local
//! APIC address and flags (PCAT_COMPAT: the board also has a pair of 8259s, which the OS must
//! mask when it uses the APICs), then entries: 5.2.12.2 Processor Local APIC (type 0, 8 bytes),
//! 5.2.12.3 I/O APIC (type 1, 12 bytes), 5.2.12.5 Interrupt Source Override (type 2, 10 bytes),
//! 5.2.12.7 Local APIC NMI (type 4, 6 bytes).
//!
//! Entries: one enabled Local APIC per CPU (processor UID = APIC ID = CPU index), the I/O APIC
//! with GSI base 0, the override ISA IRQ 0 -> GSI 2 (the PIT's output is wired to I/O APIC pin 2
//! on PCs, pin 0 being the 8259's INTR), an override for the SCI (active-high, level-triggered,
//! as the ACPI spec asks of the SCI on its ISA IRQ; without it Linux assumes active-low level,
//! which an I/O APIC model would see as asserted while the line is idle), and LINT1 of every
//! CPU as NMI, as on every PC.
//! Known warts: at most 255 CPUs (xAPIC IDs 0-254, 255 is the broadcast ID; no x2APIC entries);
//! the board must give CPU n APIC ID n; one I/O APIC only.

use super::sdt::table;
use super::AcpiError;

/// The MADT's signature ("APIC").
pub const SIGNATURE: [u8; 4] = *b"APIC";
/// Revision 5 (ACPI 6.2+ layout; the entries used here are unchanged since ACPI 1.0).
pub const REVISION: u8 = 5;
/// MADT flag: the board also has dual 8259s.
pub const PCAT_COMPAT: u32 = 1;

/// Entry type: Processor Local APIC.
pub const TYPE_LOCAL_APIC: u8 = 0;
/// Entry type: I/O APIC.
pub const TYPE_IO_APIC: u8 = 1;
/// Entry type: Interrupt Source Override.
pub const TYPE_INTERRUPT_OVERRIDE: u8 = 2;
/// Entry type: Local APIC NMI.
pub const TYPE_LOCAL_APIC_NMI: u8 = 4;

/// Local APIC flag: the CPU is usable.
pub const LAPIC_ENABLED: u32 = 1;
/// MPS INTI flags: polarity and trigger as the bus defines them (ISA: active-high, edge).
pub const INTI_CONFORMS: u16 = 0;
/// MPS INTI flags: active-high polarity.
pub const INTI_ACTIVE_HIGH: u16 = 0b01;
/// MPS INTI flags: level-triggered.
pub const INTI_LEVEL: u16 = 0b11 << 2;
/// Processor UID meaning "all processors" in a Local APIC NMI entry.
pub const ALL_PROCESSORS: u8 = 0xff;
/// Most CPUs an xAPIC MADT can list.
pub const MAX_CPUS: u32 = 255;

/// What the MADT describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadtParams {
    /// Number of CPUs, APIC IDs 0..cpus.
    pub cpus: u32,
    /// Physical address of every local APIC.
    pub lapic_address: u32,
    /// The I/O APIC's ID.
    pub ioapic_id: u8,
    /// Physical address of the I/O APIC.
    pub ioapic_address: u32,
    /// The SCI's ISA IRQ (identity-mapped to the same GSI, level/high).
    pub sci_irq: u8,
}

/// An Interrupt Source Override entry: ISA `irq` arrives at `gsi` with `flags`.
fn interrupt_override(irq: u8, gsi: u32, flags: u16) -> [u8; 10] {
    let mut e = [0u8; 10];
    e[0] = TYPE_INTERRUPT_OVERRIDE;
    e[1] = 10;
    e[2] = 0; // bus: ISA
    e[3] = irq;
    e[4..8].copy_from_slice(&gsi.to_le_bytes());
    e[8..10].copy_from_slice(&flags.to_le_bytes());
    e
}

/// The MADT.
pub fn madt(p: &MadtParams) -> Result<Vec<u8>, AcpiError> {
    if p.cpus == 0 || p.cpus > MAX_CPUS {
        return Err(AcpiError::BadCpuCount(p.cpus));
    }
    let mut body = Vec::new();
    body.extend_from_slice(&p.lapic_address.to_le_bytes());
    body.extend_from_slice(&PCAT_COMPAT.to_le_bytes());
    for id in 0..p.cpus {
        // cpus <= 255 was checked, so the ID fits a byte.
        let id = id as u8;
        body.extend_from_slice(&[TYPE_LOCAL_APIC, 8, id, id]);
        body.extend_from_slice(&LAPIC_ENABLED.to_le_bytes());
    }
    body.extend_from_slice(&[TYPE_IO_APIC, 12, p.ioapic_id, 0]);
    body.extend_from_slice(&p.ioapic_address.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&interrupt_override(0, 2, INTI_CONFORMS));
    body.extend_from_slice(&interrupt_override(
        p.sci_irq,
        u32::from(p.sci_irq),
        INTI_ACTIVE_HIGH | INTI_LEVEL,
    ));
    body.extend_from_slice(&[TYPE_LOCAL_APIC_NMI, 6, ALL_PROCESSORS]);
    body.extend_from_slice(&INTI_CONFORMS.to_le_bytes());
    body.push(1); // LINT1
    table(SIGNATURE, REVISION, &body)
}

/// One MADT entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtEntry {
    /// Entry type.
    pub kind: u8,
    /// The whole entry, type and length bytes included.
    pub bytes: Vec<u8>,
}

/// Splits the entries of a MADT (after its 44 fixed bytes); None if an entry's length is
/// below 2 or runs past the table.
pub fn entries(madt: &[u8]) -> Option<Vec<MadtEntry>> {
    let mut rest = madt.get(44..)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(*rest.get(1)?);
        if len < 2 {
            return None;
        }
        let e = rest.get(..len)?;
        out.push(MadtEntry {
            kind: e[0],
            bytes: e.to_vec(),
        });
        rest = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::sdt::valid_table;
    use super::*;

    fn params(cpus: u32) -> MadtParams {
        MadtParams {
            cpus,
            lapic_address: 0xfee0_0000,
            ioapic_id: 0,
            ioapic_address: 0xfec0_0000,
            sci_irq: 9,
        }
    }

    #[test]
    fn entries_decode_to_cpus_ioapic_overrides_and_nmi() {
        let t = madt(&params(4)).unwrap();
        let (h, _) = valid_table(&t).unwrap();
        assert_eq!(&h.signature, b"APIC");
        assert_eq!(h.revision, 5);
        assert_eq!(h.length as usize, 44 + 4 * 8 + 12 + 2 * 10 + 6);
        assert_eq!(
            u32::from_le_bytes(t[36..40].try_into().unwrap()),
            0xfee0_0000
        );
        assert_eq!(u32::from_le_bytes(t[40..44].try_into().unwrap()), 1);
        let e = entries(&t).unwrap();
        assert_eq!(e.len(), 4 + 1 + 2 + 1);
        for (i, lapic) in e[..4].iter().enumerate() {
            assert_eq!(lapic.bytes, vec![0, 8, i as u8, i as u8, 1, 0, 0, 0]);
        }
        assert_eq!(
            e[4].bytes,
            vec![1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0]
        );
        assert_eq!(e[5].bytes, vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(e[6].bytes, vec![2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
        assert_eq!(e[7].bytes, vec![4, 6, 0xff, 0, 0, 1]);
    }

    #[test]
    fn cpu_count_is_checked() {
        assert!(matches!(madt(&params(0)), Err(AcpiError::BadCpuCount(0))));
        assert!(matches!(
            madt(&params(256)),
            Err(AcpiError::BadCpuCount(256))
        ));
        let t = madt(&params(255)).unwrap();
        let e = entries(&t).unwrap();
        assert_eq!(e.iter().filter(|e| e.kind == TYPE_LOCAL_APIC).count(), 255);
        assert_eq!(e[254].bytes[3], 254);
    }

    #[test]
    fn entry_walk_rejects_bad_lengths() {
        let mut t = madt(&params(1)).unwrap();
        t[45] = 0;
        assert!(entries(&t).is_none());
        t[45] = 200;
        assert!(entries(&t).is_none());
        assert!(entries(&t[..10]).is_none());
    }
}
