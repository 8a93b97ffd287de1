//! Tests of the Linux loader's refusals: every malformed header, protocol, placement and
//! command-line error, each before guest memory is touched; an ELF vmlinux; and mutated
//! headers that must never panic.

use super::linux::{BOOT_CS, ZERO_PAGE_ADDR};
use super::linux_header::{field, SetupHeader};
use super::linux_tests::{payload, Bz, Guest, PREF, RAM};
use super::linux_zeropage::offset;
use super::*;
use crate::e820::{E820Entry, E820Kind};

fn bad(what: &str) -> impl Fn(&LoaderError) -> bool + '_ {
    move |e| matches!(e, LoaderError::BadHeader { what: w } if w.contains(what))
}

fn unsupported(what: &str) -> impl Fn(&LoaderError) -> bool + '_ {
    move |e| matches!(e, LoaderError::UnsupportedFormat(w) if w.contains(what))
}

/// A header variant and the check its error must pass.
type Case = (Bz, Box<dyn Fn(&LoaderError) -> bool>);

#[test]
fn malformed_headers_are_refused_with_a_reason() {
    let cases: Vec<Case> = vec![
        (
            Bz {
                boot_flag: 0x1234,
                ..Bz::default()
            },
            Box::new(bad("0xAA55")),
        ),
        (
            Bz {
                jump: [0x90, 0x6a],
                ..Bz::default()
            },
            Box::new(bad("short jump")),
        ),
        (
            Bz {
                jump: [0xeb, 0x90],
                ..Bz::default()
            },
            Box::new(bad("longer than boot_params")),
        ),
        (
            Bz {
                jump: [0xeb, 0x30],
                ..Bz::default()
            },
            Box::new(bad("shorter than its protocol")),
        ),
        (
            Bz {
                version: 0x0205,
                ..Bz::default()
            },
            Box::new(unsupported("older than 2.06")),
        ),
        (
            Bz {
                version: 0x020b,
                ..Bz::default()
            },
            Box::new(unsupported("64-bit entry")),
        ),
        (
            Bz {
                loadflags: 0,
                ..Bz::default()
            },
            Box::new(unsupported("zImage")),
        ),
        (
            Bz {
                relocatable: 0,
                ..Bz::default()
            },
            Box::new(unsupported("not relocatable")),
        ),
        (
            Bz {
                xloadflags: 0x7e,
                ..Bz::default()
            },
            Box::new(unsupported("XLF_KERNEL_64")),
        ),
        (
            Bz {
                kernel_alignment: 0x30_0000,
                ..Bz::default()
            },
            Box::new(bad("power of two")),
        ),
        (
            Bz {
                kernel_alignment: 0,
                ..Bz::default()
            },
            Box::new(bad("power of two")),
        ),
        (
            Bz {
                syssize: Some(0),
                ..Bz::default()
            },
            Box::new(bad("syssize is 0")),
        ),
        (
            Bz {
                syssize: Some(0x20),
                ..Bz::default()
            },
            Box::new(bad("before its 64-bit entry")),
        ),
        (
            Bz {
                syssize: Some(0x101),
                ..Bz::default()
            },
            Box::new(
                |e: &LoaderError| matches!(e, LoaderError::Truncated { what } if what.contains("syssize")),
            ),
        ),
    ];
    let g = Guest::new();
    for (i, (bz, expect)) in cases.iter().enumerate() {
        let err = g.load(&bz.build(&payload()), "", None).unwrap_err();
        assert!(expect(&err), "case {i}: {err}");
        assert!(!err.to_string().is_empty());
        // Nothing was written: the boot area is still zero.
        assert_eq!(g.u64(ZERO_PAGE_ADDR + 0x1f0), 0, "case {i}");
    }
    // A file cut inside the header.
    let image = Bz::default().build(&payload());
    assert!(matches!(
        SetupHeader::parse(&image[..0x250]),
        Err(LoaderError::Truncated { .. })
    ));
    let mut no_magic = image.clone();
    no_magic[0x202] = b'X';
    assert!(bad("HdrS")(&SetupHeader::parse(&no_magic).unwrap_err()));
}

#[test]
fn command_line_over_cmdline_size_is_refused() {
    let g = Guest::new();
    let bz = Bz {
        cmdline_size: 16,
        ..Bz::default()
    };
    let image = bz.build(&payload());
    assert_eq!(
        g.load(&image, "console=ttyS0 abc", None),
        Err(LoaderError::CmdlineTooLong { len: 17, max: 16 })
    );
    g.load(&image, "console=ttyS0 ab", None).unwrap();
    // A limit above the boot area's page is capped by the page.
    let bz = Bz {
        cmdline_size: u32::MAX,
        ..Bz::default()
    };
    assert_eq!(
        g.load(&bz.build(&payload()), &"x".repeat(4096), None),
        Err(LoaderError::CmdlineTooLong {
            len: 4096,
            max: 4095
        })
    );
}

#[test]
fn kernel_or_initrd_that_does_not_fit_is_refused() {
    let g = Guest::new();
    let bz = Bz {
        init_size: RAM as u32,
        ..Bz::default()
    };
    let err = g.load(&bz.build(&payload()), "", None).unwrap_err();
    assert!(
        matches!(
            err,
            LoaderError::DoesNotFit {
                addr: PREF,
                len: RAM,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("init_size"), "{err}");
    // An initrd larger than the RAM left beside the kernel.
    let big = vec![0u8; (RAM - PREF) as usize];
    let err = g
        .load(&Bz::default().build(&payload()), "", Some(&big))
        .unwrap_err();
    assert!(matches!(err, LoaderError::DoesNotFit { .. }), "{err}");
    assert!(err.to_string().contains("initrd"), "{err}");
    // An initrd_addr_max below all RAM but the kernel's.
    let bz = Bz {
        initrd_addr_max: 0xf_ffff,
        ..Bz::default()
    };
    let err = g.load(&bz.build(&payload()), "", Some(&[1])).unwrap_err();
    assert!(matches!(err, LoaderError::DoesNotFit { .. }), "{err}");
    assert_eq!(g.u64(ZERO_PAGE_ADDR + 0x1f0), 0, "nothing written");
}

#[test]
fn too_many_e820_entries_are_refused() {
    let mut g = Guest::new();
    let hole = E820Entry {
        addr: 0xf0000,
        size: 1,
        kind: E820Kind::Reserved,
    };
    g.e820.extend(std::iter::repeat_n(hole, 129 - g.e820.len()));
    let mem = BootMemory {
        space: &g.space,
        e820: &g.e820,
        ram_size: RAM,
    };
    let image = Bz::default().build(&payload());
    assert_eq!(
        load_kernel(&mem, &image, "", None, None),
        Err(LoaderError::E820TooLarge {
            entries: 129,
            max: 128
        })
    );
}

/// An ELF64 vmlinux: one PT_LOAD of `code` at `addr` (virtual address high, as the kernel's),
/// and with `note` a PT_NOTE holding a "Linux" note.
fn vmlinux(code: &[u8], addr: u64, note: bool) -> Vec<u8> {
    let phnum: u16 = if note { 2 } else { 1 };
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(b"\x7fELF\x02\x01");
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[24..32].copy_from_slice(&addr.to_le_bytes()); // e_entry: phys_startup_64
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&phnum.to_le_bytes());
    let data_off = 64 + 56 * u64::from(phnum);
    let linux_note: Vec<u8> = [6u32, 4, 0x100]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .chain(*b"Linux\0\0\0")
        .chain([0; 4])
        .collect();
    let mut ph = |p_type: u32, off: u64, vaddr: u64, paddr: u64, len: u64| {
        let mut h = vec![0u8; 56];
        h[0..4].copy_from_slice(&p_type.to_le_bytes());
        for (at, v) in [(8, off), (16, vaddr), (24, paddr), (32, len), (40, len)] {
            h[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&h);
    };
    ph(
        1,
        data_off,
        0xffff_ffff_8000_0000 + addr,
        addr,
        code.len() as u64,
    );
    if note {
        ph(
            4,
            data_off + code.len() as u64,
            0,
            0,
            linux_note.len() as u64,
        );
    }
    f.extend_from_slice(code);
    if note {
        f.extend_from_slice(&linux_note);
    }
    f
}

#[test]
fn elf_vmlinux_is_entered_with_boot_params() {
    let g = Guest::new();
    let k = g
        .load(
            &vmlinux(&[0xf4; 64], PREF, true),
            "console=ttyS0",
            Some(&[9; 100]),
        )
        .unwrap();
    assert_eq!(k.format, "vmlinux");
    assert_eq!(k.state.rip, PREF);
    assert_eq!(
        k.state.gpr[tandem_target_x86_64::cpu_state::reg::RSI],
        ZERO_PAGE_ADDR
    );
    assert_eq!(
        k.state.seg[tandem_target_x86_64::cpu_state::sreg::CS].selector,
        BOOT_CS
    );
    assert_eq!(g.u16(ZERO_PAGE_ADDR + field::BOOT_FLAG), 0xaa55);
    assert_eq!(g.u32(ZERO_PAGE_ADDR + field::HEADER), 0x5372_6448);
    assert_eq!(g.u16(ZERO_PAGE_ADDR + field::VERSION), 0x020f);
    assert_eq!(g.u8(ZERO_PAGE_ADDR + field::TYPE_OF_LOADER), 0xff);
    assert_eq!(g.zp32(field::CMDLINE_SIZE), 2047);
    assert_eq!(g.zp32(field::CMD_LINE_PTR), 0x9000);
    assert_eq!(g.zp32(field::RAMDISK_SIZE), 100);
    assert_eq!(
        usize::from(g.u8(ZERO_PAGE_ADDR + offset::E820_ENTRIES)),
        g.e820.len()
    );
    // Without the note it is an ordinary ELF64 kernel (multiboot-style registers).
    let k = g
        .load(&vmlinux(&[0xf4; 64], PREF, false), "", None)
        .unwrap();
    assert_eq!(k.format, "elf64");
    assert_eq!(
        k.state.gpr[tandem_target_x86_64::cpu_state::reg::RSI],
        0x2bad_b002
    );
}

#[test]
fn mutated_headers_never_panic() {
    let g = Guest::new();
    let base = Bz::default().build(&payload());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..4000 {
        let mut m = base.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bytes of the header (0x1f1..0x26c), keeping "HdrS" so the Linux loader runs.
            let at = 0x1f1 + (x as usize >> 8) % (0x26c - 0x1f1);
            if !(0x202..0x206).contains(&at) {
                m[at] = x as u8;
            }
        }
        let _ = g.load(&m, "console=ttyS0", Some(&[1, 2, 3]));
    }
}
