//! boot_params, the "zero page" (Documentation/arch/x86/zero-page.rst and boot.rst): the page
//! a Linux kernel reads its boot information from, built here as bytes before any is written.
//!
//! The page starts all zero; the setup header is copied from the image (or, for an ELF
//! vmlinux, synthesized); then the loader's fields are filled: `type_of_loader` 0xff
//! ("undefined": tandem has no assigned ID), `loadflags` |= CAN_USE_HEAP with `heap_end_ptr`,
//! `code32_start` (the load address), `cmd_line_ptr`, `ramdisk_image`/`ramdisk_size` and their
//! `ext_*` high halves, `setup_data` 0 (no chain), and the e820 table with its count.
//! `acpi_rsdp_addr` gets the RSDP the loader found in the BIOS area (the kernel would find it
//! there too; the field only spares it the scan). Left zero: screen_info (no VGA console), EDD,
//! EFI and the sentinel at 0x1ef.

use std::ops::Range;

use super::error::LoaderError;
use super::linux_header::{field, CAN_USE_HEAP, HEADER_START};
use crate::e820::E820Entry;

/// Bytes in boot_params.
pub const ZERO_PAGE_SIZE: u64 = 0x1000;
/// Most e820 entries boot_params holds (`E820_MAX_ENTRIES_ZEROPAGE`).
pub const E820_MAX: usize = 128;
/// `heap_end_ptr` as the protocol's example loader sets it: setup code at X, its heap and
/// stack ending at X + 0xe000, minus the 0x200 the field is relative to. The 64-bit entry does
/// not run the real-mode setup code, so the value only has to be well-formed.
pub const HEAP_END_PTR: u16 = 0xe000 - 0x200;
/// `type_of_loader` for a loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;

/// Offsets of boot_params fields outside the setup header.
pub mod offset {
    /// acpi_rsdp_addr (64 bits; boot protocol 2.14+, ignored by older kernels).
    pub const ACPI_RSDP_ADDR: u64 = 0x070;
    /// ramdisk_image bits 63:32.
    pub const EXT_RAMDISK_IMAGE: u64 = 0x0c0;
    /// ramdisk_size bits 63:32.
    pub const EXT_RAMDISK_SIZE: u64 = 0x0c4;
    /// cmd_line_ptr bits 63:32.
    pub const EXT_CMD_LINE_PTR: u64 = 0x0c8;
    /// Number of entries in the e820 table.
    pub const E820_ENTRIES: u64 = 0x1e8;
    /// The e820 table: 20-byte entries (address u64, size u64, type u32).
    pub const E820_TABLE: u64 = 0x2d0;
    /// Bytes in one e820 table entry.
    pub const E820_ENTRY_SIZE: u64 = 20;
}

/// What the loader decided, to be written into boot_params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootInfo {
    /// Where the protected-mode kernel was loaded.
    pub load_addr: u64,
    /// Where the NUL-terminated command line is.
    pub cmdline_addr: u64,
    /// Where the initrd is, if any.
    pub initrd: Option<Range<u64>>,
    /// Where the ACPI RSDP is, if the machine has one.
    pub acpi_rsdp: Option<u64>,
}

/// Refuses a map boot_params cannot hold.
pub(crate) fn check_e820(e820: &[E820Entry]) -> Result<(), LoaderError> {
    if e820.len() > E820_MAX {
        return Err(LoaderError::E820TooLarge {
            entries: e820.len(),
            max: E820_MAX,
        });
    }
    Ok(())
}

struct Page(Vec<u8>);

impl Page {
    fn put(&mut self, off: u64, bytes: &[u8]) {
        // Every offset is a constant inside the page (checked by the tests).
        let at = off as usize;
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn u32(&mut self, off: u64, v: u32) {
        self.put(off, &v.to_le_bytes());
    }
    /// A 64-bit value split into its 32-bit field and the `ext_` field for the high half.
    fn split(&mut self, low: u64, high: u64, v: u64) {
        self.u32(low, v as u32);
        self.u32(high, (v >> 32) as u32);
    }
}

/// The whole zero page: `header` (the bytes of file offsets 0x1f1 up to the header's end,
/// at most 0x9f bytes, as `SetupHeader::parse` checked) then the loader's fields and `e820`
/// (at most [`E820_MAX`] entries, as [`check_e820`] checked).
pub(crate) fn build(header: &[u8], info: &BootInfo, e820: &[E820Entry]) -> Vec<u8> {
    let mut p = Page(vec![0; ZERO_PAGE_SIZE as usize]);
    p.put(HEADER_START, header);
    p.put(field::TYPE_OF_LOADER, &[LOADER_TYPE_UNDEFINED]);
    let flags = p.0[field::LOADFLAGS as usize] | CAN_USE_HEAP;
    p.put(field::LOADFLAGS, &[flags]);
    p.put(field::HEAP_END_PTR, &HEAP_END_PTR.to_le_bytes());
    // The kernel sits below 4 GiB (placement checked it).
    p.u32(field::CODE32_START, info.load_addr as u32);
    p.split(
        field::CMD_LINE_PTR,
        offset::EXT_CMD_LINE_PTR,
        info.cmdline_addr,
    );
    let (image, size) = info
        .initrd
        .as_ref()
        .map_or((0, 0), |r| (r.start, r.end - r.start));
    p.split(field::RAMDISK_IMAGE, offset::EXT_RAMDISK_IMAGE, image);
    p.split(field::RAMDISK_SIZE, offset::EXT_RAMDISK_SIZE, size);
    p.put(field::SETUP_DATA, &0u64.to_le_bytes());
    p.put(
        offset::ACPI_RSDP_ADDR,
        &info.acpi_rsdp.unwrap_or(0).to_le_bytes(),
    );
    let n = e820.len().min(E820_MAX);
    p.put(offset::E820_ENTRIES, &[n as u8]);
    for (i, e) in e820.iter().take(n).enumerate() {
        let at = offset::E820_TABLE + i as u64 * offset::E820_ENTRY_SIZE;
        p.put(at, &e.addr.to_le_bytes());
        p.put(at + 8, &e.size.to_le_bytes());
        p.u32(at + 16, e.kind as u32);
    }
    p.0
}

/// The setup header an ELF vmlinux gets (it has none of its own): the signatures, protocol
/// 2.15, LOADED_HIGH, the kernel's usual limits (`cmdline_size` 2047, `initrd_addr_max`
/// 0x7fffffff) so that code reading them sees what a bzImage of the same kernel declares.
pub(crate) fn vmlinux_header() -> Vec<u8> {
    let mut p = Page(vec![0; 0x264]);
    p.put(field::BOOT_FLAG, &0xaa55u16.to_le_bytes());
    // jmp short over the header, to 0x264 (the end of init_size).
    p.put(field::JUMP, &[0xeb, 0x62]);
    p.put(field::HEADER, b"HdrS");
    p.put(field::VERSION, &0x020fu16.to_le_bytes());
    p.put(field::LOADFLAGS, &[super::linux_header::LOADED_HIGH]);
    p.u32(field::INITRD_ADDR_MAX, 0x7fff_ffff);
    p.u32(field::CMDLINE_SIZE, VMLINUX_CMDLINE_SIZE);
    p.0.split_off(HEADER_START as usize)
}

/// The command-line limit of an ELF vmlinux: x86's COMMAND_LINE_SIZE (2048) less the NUL.
pub const VMLINUX_CMDLINE_SIZE: u32 = 2047;
