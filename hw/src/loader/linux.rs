//! The Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry: a bzImage, or
//! an uncompressed ELF vmlinux, loaded and entered at `startup_64` in long mode.
//!
//! A bzImage's setup header is checked ([`linux_header`](super::linux_header)); its
//! protected-mode kernel (the file from `(setup_sects + 1) * 512`, `syssize * 16` bytes) is
//! copied to `pref_address` or the lowest aligned address that holds `init_size` bytes
//! ([`linux_place`](super::linux_place)); the real-mode setup code is not loaded, since the
//! 64-bit entry never runs it. The initrd goes high below `initrd_addr_max`. boot_params
//! ([`linux_zeropage`](super::linux_zeropage)) goes at [`ZERO_PAGE_ADDR`] and the command line
//! at [`CMDLINE_ADDR`] (with the address of the ACPI RSDP if the BIOS area holds one, found as
//! the kernel itself would find it), inside the loader's boot area, which also gets the identity map of the
//! first 4 GiB, the TSS and the boot stack (see [`boot_setup`](super::boot_setup)).
//!
//! The CPU at entry, as the 64-bit protocol asks: long mode with paging on the identity map
//! (which covers the kernel's `init_size`, boot_params and the command line), RSI = the
//! address of boot_params, interrupts off, and a GDT with `__BOOT_CS` = [`BOOT_CS`] (0x10, a
//! flat 64-bit execute/read code segment, loaded in CS) and `__BOOT_DS` = [`BOOT_DS`] (0x18,
//! flat read/write data, in DS, ES, SS, and FS and GS too). The protocol states those two
//! selectors for the 32-bit entry and repeats them for the 64-bit one; the layout is that of the
//! kernel's own boot GDT (0x08 a 32-bit code segment, 0x10, 0x18, then the TSS at 0x20), so the
//! multiboot GDT (whose 0x10 is data) is overwritten for a Linux boot. Every other general
//! register is zero; RSP is the loader's boot stack (the protocol asks for none: the kernel
//! sets up its own before using one).
//!
//! ELF vmlinux convention: an ELF64 executable carrying a note owned by "Linux" (every vmlinux
//! since 4.18 has the build-salt note) is loaded at its segments' physical addresses by the ELF
//! parser and entered at `e_entry` (vmlinux's `phys_startup_64`) exactly like a bzImage's
//! `startup_64`, with RSI = boot_params. It has no setup header, so boot_params gets a
//! synthesized one ([`linux_zeropage::vmlinux_header`](super::linux_zeropage)). Other ELF64
//! files keep the multiboot-style convention of the ELF loader.
//!
//! Errors: a malformed header is [`LoaderError::BadHeader`] or [`LoaderError::Truncated`]; an
//! old protocol, a zImage, a kernel that is not relocatable or has no 64-bit entry is
//! [`LoaderError::UnsupportedFormat`]; a kernel or initrd that does not fit is
//! [`LoaderError::DoesNotFit`]; a command line over the kernel's `cmdline_size` is
//! [`LoaderError::CmdlineTooLong`] with that limit. Nothing is written unless all checks pass.

use std::ops::Range;

use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::{CpuState, Segment};

use super::boot_setup::{self, CMDLINE_MAX, GDT_ADDR, INFO_ADDR, STACK_TOP};
use super::bytes::slice;
use super::error::LoaderError;
use super::linux_header::{SetupHeader, HEADER_START, STARTUP_64_OFFSET};
use super::linux_place::{place_initrd, place_kernel, FOUR_GIB};
use super::linux_zeropage::{self as zeropage, BootInfo};
use super::plan::{Chunk, LoadPlan};
use super::{BootMemory, LoadedKernel};
use crate::acpi::{rsdp, ACPI_TABLES_BASE, RSDP_SCAN_END};

/// Where boot_params is written (the page the multiboot information uses otherwise).
pub const ZERO_PAGE_ADDR: u64 = INFO_ADDR;
/// Where the NUL-terminated command line is written.
pub const CMDLINE_ADDR: u64 = boot_setup::CMDLINE_ADDR;
/// The kernel's 32-bit code selector (`__KERNEL32_CS` in its boot GDT).
pub const KERNEL32_CS: u16 = 0x08;
/// `__BOOT_CS`: the code selector at entry.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: the data selector at entry.
pub const BOOT_DS: u16 = 0x18;

/// The 64-bit code segment CS holds at entry.
pub fn boot_code_segment() -> Segment {
    Segment::flat(BOOT_CS, true, true)
}

/// The flat data segment DS, ES, SS, FS and GS hold at entry.
pub fn boot_data_segment() -> Segment {
    Segment::flat(BOOT_DS, false, false)
}

/// The entry state: long mode on the boot area's tables, CS = 0x10, data segments 0x18,
/// RSI = `zero_page`, every other general register zero but RSP, interrupts off.
pub fn entry_state(entry: u64, zero_page: u64) -> CpuState {
    let mut s = boot_setup::long_mode_state(entry, 0);
    s.gpr = [0; 16];
    s.gpr[reg::RSI] = zero_page;
    s.gpr[reg::RSP] = STACK_TOP;
    s.rflags = bits::RFLAGS_FIXED;
    let data = boot_data_segment();
    for (i, seg) in s.seg.iter_mut().enumerate() {
        *seg = if i == sreg::CS {
            boot_code_segment()
        } else {
            data
        };
    }
    s
}

/// The first four GDT slots of a Linux boot: null, `__KERNEL32_CS`, `__BOOT_CS`, `__BOOT_DS`
/// (the TSS descriptor that follows is boot_setup's).
fn gdt() -> Vec<u8> {
    [
        0,
        Segment::flat(KERNEL32_CS, true, false).to_descriptor(),
        boot_code_segment().to_descriptor(),
        boot_data_segment().to_descriptor(),
    ]
    .iter()
    .flat_map(|d| d.to_le_bytes())
    .collect()
}

/// Loads a bzImage (the caller saw "HdrS" at 0x202). See the module documentation.
pub(crate) fn load_bzimage(
    mem: &BootMemory,
    image: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<LoadedKernel, LoaderError> {
    let h = SetupHeader::parse(image)?;
    let header = slice(
        image,
        HEADER_START,
        h.header_end - HEADER_START,
        "setup header",
    )?;
    let kernel = slice(
        image,
        h.kernel_offset,
        h.kernel_len,
        "protected-mode kernel",
    )?;
    check_cmdline(cmdline, h.cmdline_size)?;
    let len = h.memory_len();
    let load = place_kernel(mem, h.pref_address, h.kernel_alignment.into(), len)?;
    // Only the file's bytes are copied: the rest of init_size is the kernel's scratch space.
    let chunk = Chunk::new(load, kernel, h.kernel_len)?;
    let entry = load + STARTUP_64_OFFSET;
    let boot = Boot {
        format: "bzimage",
        chunks: &[chunk],
        entry,
        kernel: load..load + len,
        header,
        initrd_limit: u64::from(h.initrd_addr_max) + 1,
    };
    boot.run(mem, cmdline, initrd)
}

/// Loads an ELF vmlinux already parsed by the ELF loader (the caller saw its "Linux" note).
pub(crate) fn load_vmlinux(
    mem: &BootMemory,
    plan: &LoadPlan,
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<LoadedKernel, LoaderError> {
    check_cmdline(cmdline, zeropage::VMLINUX_CMDLINE_SIZE)?;
    for c in &plan.chunks {
        if c.end() > FOUR_GIB {
            return Err(LoaderError::DoesNotFit {
                addr: c.addr,
                len: c.mem_len,
                why: "it lies above 4 GiB, outside the identity map at entry",
            });
        }
        boot_setup::check_placement(mem, c.addr, c.mem_len, super::EntryMode::Long)?;
    }
    if plan.entry >= FOUR_GIB {
        return Err(LoaderError::EntryUnreachable { entry: plan.entry });
    }
    let start = plan.chunks.iter().map(|c| c.addr).min().unwrap_or(0);
    let header = zeropage::vmlinux_header();
    let boot = Boot {
        format: "vmlinux",
        chunks: &plan.chunks,
        entry: plan.entry,
        kernel: start..plan.end(),
        header: &header,
        initrd_limit: 0x8000_0000,
    };
    boot.run(mem, cmdline, initrd)
}

/// Refuses a command line longer than the kernel's limit or the boot area's page.
fn check_cmdline(cmdline: &str, cmdline_size: u32) -> Result<(), LoaderError> {
    let max = usize::try_from(cmdline_size).map_or(CMDLINE_MAX, |n| n.min(CMDLINE_MAX));
    if cmdline.len() > max {
        return Err(LoaderError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    Ok(())
}

/// A kernel placed and checked, ready for the initrd, boot_params and the writes.
struct Boot<'a> {
    format: &'static str,
    chunks: &'a [Chunk<'a>],
    entry: u64,
    /// The memory the kernel owns (its init_size, or its segments' span).
    kernel: Range<u64>,
    /// The setup header bytes for boot_params (file offsets 0x1f1 up).
    header: &'a [u8],
    /// One past the highest byte the initrd may use.
    initrd_limit: u64,
}

impl Boot<'_> {
    fn run(
        &self,
        mem: &BootMemory,
        cmdline: &str,
        initrd: Option<&[u8]>,
    ) -> Result<LoadedKernel, LoaderError> {
        zeropage::check_e820(mem.e820)?;
        let initrd = match initrd {
            Some(data) => Some((
                place_initrd(mem, data.len() as u64, self.initrd_limit, &self.kernel)?,
                data,
            )),
            None => None,
        };

        // All checks passed: write.
        for c in self.chunks {
            c.write(mem.space)?;
        }
        if let Some((at, data)) = &initrd {
            mem.space
                .load(at.start, data)
                .map_err(LoaderError::Memory)?;
        }
        boot_setup::write_tables(mem)?;
        mem.space
            .load(GDT_ADDR, &gdt())
            .map_err(LoaderError::Memory)?;
        let initrd = initrd.map(|(at, _)| at);
        let info = BootInfo {
            load_addr: self.kernel.start,
            cmdline_addr: CMDLINE_ADDR,
            initrd: initrd.clone(),
            acpi_rsdp: rsdp::find(ACPI_TABLES_BASE, RSDP_SCAN_END, |addr, buf| {
                mem.space.read(addr, buf).is_ok()
            }),
        };
        let page = zeropage::build(self.header, &info, mem.e820);
        mem.space
            .load(ZERO_PAGE_ADDR, &page)
            .map_err(LoaderError::Memory)?;
        let mut line = cmdline.as_bytes().to_vec();
        line.push(0);
        mem.space
            .load(CMDLINE_ADDR, &line)
            .map_err(LoaderError::Memory)?;
        Ok(LoadedKernel {
            state: entry_state(self.entry, ZERO_PAGE_ADDR),
            format: self.format,
            entry: self.entry,
            end: self.kernel.end,
            initrd,
        })
    }
}
