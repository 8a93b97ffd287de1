//! The ACPI tables checked by an independent reader: ACPICA's `iasl` disassembles each table
//! tandem builds, must report no error, and compiling its disassembly back must give the same
//! bytes (up to the checksum and the creator fields, which iasl rewrites as its own).
//!
//! `iasl` comes from Debian's `acpica-tools`; where it is absent the test says so and is counted
//! as skipped. The RSDP is not given to iasl (it disassembles only tables with the standard
//! header or the FACS); the unit tests in hw/src/acpi check it. The DSDT is checked with and
//! without the PCI root bridge.

mod common;

use std::path::Path;
use std::process::Command;

use tandem_hw::acpi::{AcpiConfig, AcpiTables, PciAcpi, ACPI_TABLES_BASE, ACPI_TABLES_MAX_LEN};
use tandem_hw::pci::{PciIrqRouting, PciWindow, PC_MMIO_WINDOW};

/// Runs iasl in `dir`: (exit status success, stdout and stderr).
fn run_iasl(dir: &Path, args: &[&str]) -> (bool, String) {
    match Command::new("iasl").args(args).current_dir(dir).output() {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, format!("running iasl: {e}")),
    }
}

/// Words iasl uses when a table is wrong (bad checksum, truncated subtable, unknown field).
const COMPLAINTS: [&str; 6] = [
    "Error",
    "Invalid",
    "Incorrect",
    "terminates",
    "Unknown",
    "Warning",
];

/// Checks every table built from `config` in `dir`; returns the DSDT's disassembly.
fn check_tables(dir: &Path, config: AcpiConfig) -> String {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let t = AcpiTables::build(config, ACPI_TABLES_BASE).unwrap();
    let b = t.bytes();
    assert!(b.len() <= ACPI_TABLES_MAX_LEN);
    let mut dsdt_dsl = String::new();
    let tables: Vec<(&str, &[u8])> = vec![
        ("facs", &b[t.facs_offset()..t.facs_offset() + 64]),
        ("xsdt", t.table_at(t.xsdt_offset()).unwrap()),
        ("facp", t.table_at(t.fadt_offset()).unwrap()),
        ("apic", t.table_at(t.madt_offset()).unwrap()),
        ("dsdt", t.table_at(t.dsdt_offset()).unwrap()),
    ];
    for (name, bytes) in tables {
        std::fs::write(dir.join(format!("{name}.dat")), bytes).unwrap();
        let (ok, log) = run_iasl(dir, &["-d", &format!("{name}.dat")]);
        assert!(ok, "iasl -d {name}.dat failed:\n{log}");
        let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).unwrap();
        for bad in COMPLAINTS {
            assert!(!dsl.contains(bad), "{name}.dsl mentions {bad:?}:\n{dsl}");
            assert!(
                !log.contains(bad),
                "iasl -d {name}.dat says {bad:?}:\n{log}"
            );
        }
        if name == "dsdt" {
            assert!(
                dsl.contains("Name (_S5, Package (0x04)"),
                "no _S5 package in:\n{dsl}"
            );
            dsdt_dsl = dsl.clone();
        }

        // Compile the disassembly back: iasl's reading of every field must give our bytes.
        let (ok, log) = run_iasl(dir, &["-p", &format!("re_{name}"), &format!("{name}.dsl")]);
        assert!(ok, "iasl {name}.dsl failed:\n{log}");
        assert!(log.contains(" 0 Errors, 0 Warnings"), "{log}");
        let again = std::fs::read(dir.join(format!("re_{name}.aml"))).unwrap();
        assert_eq!(
            again.len(),
            bytes.len(),
            "{name}: length after a round trip"
        );
        for (i, (x, y)) in bytes.iter().zip(&again).enumerate() {
            // The checksum (9) and creator ID and revision (28..36) are iasl's own.
            let ignored = name != "facs" && (i == 9 || (28..36).contains(&i));
            assert!(
                ignored || x == y,
                "{name}: byte {i:#x} is {x:#04x}, iasl made {y:#04x}"
            );
        }
    }
    dsdt_dsl
}

#[test]
fn iasl_disassembles_every_table_without_errors() {
    let test = "acpi_tables::iasl_disassembles_every_table_without_errors";
    if Command::new("iasl").arg("-v").output().is_err() {
        common::skipped(test, "iasl not installed (apt-get install acpica-tools)");
        return;
    }
    for cpus in [1, 4, 255] {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("acpi_tables_{cpus}"));
        check_tables(&dir, AcpiConfig::pc(cpus));
    }
}

#[test]
fn iasl_reads_the_dsdt_with_the_pci_root_bridge() {
    let test = "acpi_tables::iasl_reads_the_dsdt_with_the_pci_root_bridge";
    if Command::new("iasl").arg("-v").output().is_err() {
        common::skipped(test, "iasl not installed (apt-get install acpica-tools)");
        return;
    }
    let cases = [
        (1, PC_MMIO_WINDOW, PciIrqRouting::IOAPIC),
        (255, PC_MMIO_WINDOW, PciIrqRouting::PIC),
        (
            2,
            PciWindow {
                base: 0x80_0000_0000,
                len: 0x40_0000_0000,
            },
            PciIrqRouting::IOAPIC,
        ),
    ];
    for (i, (cpus, mmio, routing)) in cases.into_iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("acpi_tables_pci_{i}"));
        let config = AcpiConfig {
            pci: Some(PciAcpi { mmio, routing }),
            ..AcpiConfig::pc(cpus)
        };
        let dsl = check_tables(&dir, config);
        for want in [
            "Device (PCI0)",
            "EisaId (\"PNP0A03\")",
            "Name (_BBN, Zero)",
            "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
            "IO (Decode16,",
            "Name (_PRT, Package (0x80)",
            "Name (_S5, Package (0x04)",
        ] {
            assert!(dsl.contains(want), "no {want:?} in:\n{dsl}");
        }
        let memory = if mmio.base >> 32 == 0 {
            "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,"
        } else {
            "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,"
        };
        assert!(dsl.contains(memory), "no {memory:?} in:\n{dsl}");
        // Slot 31 INTD#: line (31 + 3) % 4 = 2.
        let last = format!(
            "0x001FFFFF, \n                        0x03, \n                        Zero, \n                        0x{:02X}",
            routing.gsis[2]
        );
        let compact: String = dsl.split_whitespace().collect();
        let want: String = last.split_whitespace().collect();
        assert!(compact.contains(&want), "no {want:?} in:\n{dsl}");
    }
}
