//! The DSDT with the PCI root bridge read by an independent reader: ACPICA's `iasl` must
//! disassemble it without complaint, and compiling the disassembly back must give the same
//! bytes (up to the checksum and creator fields, which iasl rewrites). Where iasl is absent
//! (Debian's `acpica-tools`) the test prints a SKIPPED line, appended to `TANDEM_SKIP_LOG`
//! when set, as the integration tests do.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::pci_root::PciAcpi;
use super::{AcpiConfig, AcpiTables, ACPI_TABLES_BASE, ACPI_TABLES_MAX_LEN};
use crate::pci::{PciIrqRouting, PciWindow, PC_MMIO_WINDOW};

fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    println!("{line}");
    if let Ok(path) = std::env::var("TANDEM_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn iasl(dir: &Path, args: &[&str]) -> (bool, String) {
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

const COMPLAINTS: [&str; 6] = [
    "Error",
    "Invalid",
    "Incorrect",
    "terminates",
    "Unknown",
    "Warning",
];

fn check(dir: &Path, config: AcpiConfig) -> String {
    let t = AcpiTables::build(config, ACPI_TABLES_BASE).unwrap();
    assert!(t.bytes().len() <= ACPI_TABLES_MAX_LEN);
    let dsdt = t.table_at(t.dsdt_offset()).unwrap();
    std::fs::write(dir.join("dsdt.dat"), dsdt).unwrap();
    let (ok, log) = iasl(dir, &["-d", "dsdt.dat"]);
    assert!(ok, "iasl -d failed:\n{log}");
    let dsl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap();
    for bad in COMPLAINTS {
        assert!(!dsl.contains(bad), "dsdt.dsl mentions {bad:?}:\n{dsl}");
        assert!(!log.contains(bad), "iasl -d says {bad:?}:\n{log}");
    }
    let (ok, log) = iasl(dir, &["-p", "re_dsdt", "dsdt.dsl"]);
    assert!(ok, "iasl dsdt.dsl failed:\n{log}");
    assert!(log.contains(" 0 Errors, 0 Warnings"), "{log}");
    let again = std::fs::read(dir.join("re_dsdt.aml")).unwrap();
    assert_eq!(again.len(), dsdt.len(), "length after a round trip");
    for (i, (x, y)) in dsdt.iter().zip(&again).enumerate() {
        let ignored = i == 9 || (28..36).contains(&i);
        assert!(
            ignored || x == y,
            "byte {i:#x} is {x:#04x}, iasl made {y:#04x}\n{dsl}"
        );
    }
    dsl
}

#[test]
fn iasl_reads_the_dsdt_with_the_pci_root_bridge() {
    let test = "acpi::iasl_tests::iasl_reads_the_dsdt_with_the_pci_root_bridge";
    if Command::new("iasl").arg("-v").output().is_err() {
        skipped(test, "iasl not installed (apt-get install acpica-tools)");
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
        let dir = std::env::temp_dir().join(format!("tandem-hw-iasl-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = AcpiConfig {
            pci: Some(PciAcpi { mmio, routing }),
            ..AcpiConfig::pc(cpus)
        };
        let dsl = check(&dir, config);
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
