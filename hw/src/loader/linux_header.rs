//! The setup header of a Linux bzImage (Documentation/arch/x86/boot.rst, "The real-mode kernel
//! header"), read and checked before anything is loaded.
//!
//! The header sits at file offset 0x1f1 and ends at `0x202 + byte[0x201]` (the operand of the
//! short jump at 0x200); the loader copies exactly that span into boot_params. Every field is
//! read through the bounds-checked readers, so a short or lying file is an error, never a panic.
//!
//! What is required, and why:
//! - boot flag 0xAA55 at 0x1fe and "HdrS" at 0x202: the signatures of a setup header;
//! - protocol 2.06 or newer: 2.06 is the first version that states the command-line limit
//!   (`cmdline_size`); earlier kernels also predate relocation (2.05) and the 32-bit-clean
//!   initrd limit, so nothing older can be loaded safely the way this loader loads;
//! - `LOADED_HIGH`: the protected-mode kernel runs at 1 MiB or above (a zImage does not);
//! - `relocatable_kernel`: the loader may choose the load address (aligned to
//!   `kernel_alignment`) when `pref_address` is not RAM;
//! - `XLF_KERNEL_64` in `xloadflags` (protocol 2.12): the kernel has the 64-bit entry point at
//!   load address + 0x200, the only entry this loader uses. So in practice 2.12 is the oldest
//!   kernel that loads; a 2.06..2.11 header parses and is refused as having no 64-bit entry.

use super::bytes::{slice, u16_at, u32_at, u64_at};
use super::error::LoaderError;

/// Offset of the setup header in the file and in boot_params.
pub const HEADER_START: u64 = 0x1f1;
/// The end of boot_params' room for the header (the struct's `_pad7` follows).
pub const HEADER_AREA_END: u64 = 0x290;
/// "HdrS", little-endian, at 0x202.
pub const HDRS_MAGIC: u32 = 0x5372_6448;
/// The boot flag at 0x1fe.
pub const BOOT_FLAG: u16 = 0xaa55;
/// The oldest protocol this loader reads (see the module documentation for why).
pub const MIN_PROTOCOL: u16 = 0x0206;
/// The protocol that introduced `xloadflags` and with it `XLF_KERNEL_64`.
pub const XLOADFLAGS_PROTOCOL: u16 = 0x020c;
/// `loadflags` bit: the protected-mode kernel is loaded at 0x100000 or above.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags` bit set by the loader: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// `xloadflags` bit: the kernel has the 64-bit entry point at offset 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit: kernel, boot_params, command line and initrd may lie above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Offset of the 64-bit entry point (`startup_64`) in the protected-mode kernel.
pub const STARTUP_64_OFFSET: u64 = 0x200;

/// Field offsets of the setup header, the same in the file and in boot_params.
pub mod field {
    /// Sectors of real-mode setup code after the boot sector (0 means 4).
    pub const SETUP_SECTS: u64 = 0x1f1;
    /// Protected-mode kernel size in 16-byte paragraphs.
    pub const SYSSIZE: u64 = 0x1f4;
    /// 0xAA55.
    pub const BOOT_FLAG: u64 = 0x1fe;
    /// A short jump (0xEB, offset) over the header.
    pub const JUMP: u64 = 0x200;
    /// "HdrS".
    pub const HEADER: u64 = 0x202;
    /// Protocol version, major in the high byte.
    pub const VERSION: u64 = 0x206;
    /// Boot loader identifier (written by the loader).
    pub const TYPE_OF_LOADER: u64 = 0x210;
    /// Load flags.
    pub const LOADFLAGS: u64 = 0x211;
    /// The 32-bit entry (written by the loader: the load address).
    pub const CODE32_START: u64 = 0x214;
    /// Initrd address, low 32 bits (written by the loader).
    pub const RAMDISK_IMAGE: u64 = 0x218;
    /// Initrd size, low 32 bits (written by the loader).
    pub const RAMDISK_SIZE: u64 = 0x21c;
    /// End of the setup heap, from the real-mode code's start, minus 0x200 (loader).
    pub const HEAP_END_PTR: u64 = 0x224;
    /// Command line address, low 32 bits (loader).
    pub const CMD_LINE_PTR: u64 = 0x228;
    /// Highest address the initrd may occupy (inclusive).
    pub const INITRD_ADDR_MAX: u64 = 0x22c;
    /// Alignment the kernel must be loaded at, if relocated.
    pub const KERNEL_ALIGNMENT: u64 = 0x230;
    /// Nonzero if the kernel is relocatable.
    pub const RELOCATABLE_KERNEL: u64 = 0x234;
    /// Extended load flags.
    pub const XLOADFLAGS: u64 = 0x236;
    /// Longest command line, without its NUL.
    pub const CMDLINE_SIZE: u64 = 0x238;
    /// Physical address of a setup_data chain (the loader writes 0: none).
    pub const SETUP_DATA: u64 = 0x250;
    /// Preferred load address.
    pub const PREF_ADDRESS: u64 = 0x258;
    /// Bytes of memory the kernel needs from its load address until it runs.
    pub const INIT_SIZE: u64 = 0x260;
}

const WHAT: &str = "Linux setup header";

/// The checked fields of a bzImage's setup header and where its parts lie in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupHeader {
    /// Protocol version (0x020f is 2.15).
    pub version: u16,
    /// Setup sectors, with 0 already read as 4.
    pub setup_sects: u8,
    /// File offset one past the header (`0x202 + byte[0x201]`).
    pub header_end: u64,
    /// File offset of the protected-mode kernel (`(setup_sects + 1) * 512`).
    pub kernel_offset: u64,
    /// Its length in bytes (`syssize * 16`).
    pub kernel_len: u64,
    /// `loadflags` as in the file.
    pub loadflags: u8,
    /// `xloadflags` (0 before 2.12).
    pub xloadflags: u16,
    /// Highest byte address the initrd may use.
    pub initrd_addr_max: u32,
    /// Load alignment (a power of two).
    pub kernel_alignment: u32,
    /// The command line's limit, NUL excluded.
    pub cmdline_size: u32,
    /// Preferred load address (1 MiB before 2.10).
    pub pref_address: u64,
    /// Memory needed from the load address (0 before 2.10).
    pub init_size: u32,
}

fn bad(what: &'static str) -> LoaderError {
    LoaderError::BadHeader { what }
}

impl SetupHeader {
    /// Reads and checks the setup header of `image` (see the module documentation).
    pub fn parse(image: &[u8]) -> Result<Self, LoaderError> {
        if u16_at(image, field::BOOT_FLAG, WHAT)? != BOOT_FLAG {
            return Err(bad("Linux boot flag at 0x1fe is not 0xAA55"));
        }
        if u32_at(image, field::HEADER, WHAT)? != HDRS_MAGIC {
            return Err(bad("no \"HdrS\" signature at 0x202"));
        }
        let jump = slice(image, field::JUMP, 2, WHAT)?;
        if jump[0] != 0xeb {
            return Err(bad(
                "Linux setup header does not start with a short jump at 0x200",
            ));
        }
        let header_end = 0x202 + u64::from(jump[1]);
        if header_end > HEADER_AREA_END {
            return Err(bad("Linux setup header is longer than boot_params holds"));
        }
        slice(image, HEADER_START, header_end - HEADER_START, WHAT)?;
        let version = u16_at(image, field::VERSION, WHAT)?;
        if version < MIN_PROTOCOL {
            return Err(LoaderError::UnsupportedFormat(
                "Linux boot protocol older than 2.06 (no cmdline_size, not relocatable)",
            ));
        }
        // The header must hold every field its version declares: to init_size from 2.10,
        // to cmdline_size from 2.06.
        let needed = if version >= 0x020a { 0x264 } else { 0x23c };
        if header_end < needed {
            return Err(bad(
                "Linux setup header is shorter than its protocol version requires",
            ));
        }
        let u8_at = |off: u64| slice(image, off, 1, WHAT).map(|b| b[0]);
        let loadflags = u8_at(field::LOADFLAGS)?;
        if loadflags & LOADED_HIGH == 0 {
            return Err(LoaderError::UnsupportedFormat(
                "Linux zImage (LOADED_HIGH clear: its kernel runs below 1 MiB)",
            ));
        }
        if u8_at(field::RELOCATABLE_KERNEL)? == 0 {
            return Err(LoaderError::UnsupportedFormat(
                "Linux kernel that is not relocatable (relocatable_kernel is 0)",
            ));
        }
        let xloadflags = if version >= XLOADFLAGS_PROTOCOL {
            u16_at(image, field::XLOADFLAGS, WHAT)?
        } else {
            0
        };
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LoaderError::UnsupportedFormat(
                "Linux kernel without a 64-bit entry point (XLF_KERNEL_64 clear or protocol before 2.12)",
            ));
        }
        let kernel_alignment = u32_at(image, field::KERNEL_ALIGNMENT, WHAT)?;
        if !kernel_alignment.is_power_of_two() {
            return Err(bad("Linux kernel_alignment is not a power of two"));
        }
        let setup_sects = match u8_at(field::SETUP_SECTS)? {
            // Protocol: "if this field is 0, the real value is 4".
            0 => 4,
            n => n,
        };
        let kernel_offset = (u64::from(setup_sects) + 1) * 512;
        let syssize = u32_at(image, field::SYSSIZE, WHAT)?;
        if syssize == 0 {
            return Err(bad("Linux syssize is 0: no protected-mode kernel"));
        }
        let kernel_len = u64::from(syssize) * 16;
        slice(
            image,
            kernel_offset,
            kernel_len,
            "Linux protected-mode kernel (syssize)",
        )?;
        if kernel_len <= STARTUP_64_OFFSET {
            return Err(bad(
                "Linux protected-mode kernel ends before its 64-bit entry at 0x200",
            ));
        }
        let (pref_address, init_size) = if version >= 0x020a {
            (
                u64_at(image, field::PREF_ADDRESS, WHAT)?,
                u32_at(image, field::INIT_SIZE, WHAT)?,
            )
        } else {
            (0x10_0000, 0)
        };
        Ok(Self {
            version,
            setup_sects,
            header_end,
            kernel_offset,
            kernel_len,
            loadflags,
            xloadflags,
            initrd_addr_max: u32_at(image, field::INITRD_ADDR_MAX, WHAT)?,
            kernel_alignment,
            cmdline_size: u32_at(image, field::CMDLINE_SIZE, WHAT)?,
            pref_address,
            init_size,
        })
    }

    /// Bytes of memory the kernel occupies from its load address until it has unpacked
    /// itself: `init_size`, or the file's kernel if that is larger.
    pub fn memory_len(&self) -> u64 {
        self.kernel_len.max(u64::from(self.init_size))
    }
}
