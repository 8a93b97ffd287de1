//! Tests of the Linux loader: synthetic bzImages (a setup header with chosen fields and a
//! payload) loaded into a PC-like guest, boot_params read back from guest memory.

use std::sync::Arc;

use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpace, AddressSpaceBuilder};
use tandem_target_x86_64::cpu_state::{bits, reg, sreg};
use tandem_target_x86_64::CpuMode;

use super::boot_setup::{GDT_ADDR, PML4_ADDR};
use super::linux::*;
use super::linux_header::field;
use super::linux_zeropage::offset;
use super::*;
use crate::e820::E820Entry;
use crate::pc::RamLayout;

/// Guest RAM of the tests: room for a kernel at 16 MiB and an initrd above it.
pub(super) const RAM: u64 = 64 << 20;
/// Where the synthetic kernels prefer to be (as Debian's: CONFIG_PHYSICAL_START).
pub(super) const PREF: u64 = 16 << 20;

/// A guest with the PC's RAM layout and e820 map.
pub(super) struct Guest {
    pub space: AddressSpace,
    pub e820: Vec<E820Entry>,
}

impl Guest {
    pub fn new() -> Self {
        Self::with_rom(None)
    }

    /// The guest with `rom` (address, bytes) mapped as well.
    pub fn with_rom(rom: Option<(u64, &[u8])>) -> Self {
        let host = Arc::new(HostMemory::anonymous(RAM).unwrap());
        let mut b = AddressSpaceBuilder::new();
        b.ram(0, host.clone(), 0, 0xa_0000).unwrap();
        b.ram(0x10_0000, host, 0x10_0000, RAM - 0x10_0000).unwrap();
        if let Some((at, bytes)) = rom {
            b.rom(at, bytes).unwrap();
        }
        Self {
            space: b.build(),
            e820: RamLayout::new(RAM).e820(),
        }
    }

    pub fn load(
        &self,
        image: &[u8],
        cmdline: &str,
        initrd: Option<&[u8]>,
    ) -> Result<LoadedKernel, LoaderError> {
        let mem = BootMemory {
            space: &self.space,
            e820: &self.e820,
            ram_size: RAM,
        };
        load_kernel(&mem, image, cmdline, initrd, None)
    }

    pub fn bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.space.read(gpa, &mut b).unwrap();
        b
    }

    pub fn u8(&self, gpa: u64) -> u8 {
        self.bytes(gpa, 1)[0]
    }

    pub fn u16(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.bytes(gpa, 2).try_into().unwrap())
    }

    pub fn u32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.bytes(gpa, 4).try_into().unwrap())
    }

    pub fn u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.bytes(gpa, 8).try_into().unwrap())
    }

    /// A boot_params field.
    pub fn zp32(&self, off: u64) -> u32 {
        self.u32(ZERO_PAGE_ADDR + off)
    }
}

/// The setup header fields a test chooses; `Default` is a modern relocatable 64-bit kernel.
#[derive(Clone)]
pub(super) struct Bz {
    pub setup_sects: u8,
    pub boot_flag: u16,
    pub magic: [u8; 4],
    pub jump: [u8; 2],
    pub version: u16,
    pub loadflags: u8,
    pub initrd_addr_max: u32,
    pub kernel_alignment: u32,
    pub relocatable: u8,
    pub xloadflags: u16,
    pub cmdline_size: u32,
    pub pref_address: u64,
    pub init_size: u32,
    /// Overrides syssize (else the payload's length in paragraphs).
    pub syssize: Option<u32>,
}

impl Default for Bz {
    fn default() -> Self {
        Self {
            setup_sects: 2,
            boot_flag: 0xaa55,
            magic: *b"HdrS",
            jump: [0xeb, 0x6a],
            version: 0x020f,
            loadflags: 0x01,
            initrd_addr_max: 0x7fff_ffff,
            kernel_alignment: 0x20_0000,
            relocatable: 1,
            xloadflags: 0x7f,
            cmdline_size: 2047,
            pref_address: PREF,
            init_size: 0x20_0000,
            syssize: None,
        }
    }
}

impl Bz {
    /// The image: boot sector and setup sectors (header filled, the rest 0x5a), then `payload`
    /// padded to 16 bytes.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let sects = if self.setup_sects == 0 {
            4
        } else {
            self.setup_sects
        };
        let mut v = vec![0x5au8; (usize::from(sects) + 1) * 512];
        v[0x1f1..0x290].fill(0);
        let mut put =
            |off: u64, b: &[u8]| v[off as usize..off as usize + b.len()].copy_from_slice(b);
        put(field::SETUP_SECTS, &[self.setup_sects]);
        let paras = payload.len().div_ceil(16) as u32;
        put(field::SYSSIZE, &self.syssize.unwrap_or(paras).to_le_bytes());
        put(field::BOOT_FLAG, &self.boot_flag.to_le_bytes());
        put(field::JUMP, &self.jump);
        put(field::HEADER, &self.magic);
        put(field::VERSION, &self.version.to_le_bytes());
        put(0x20e, &0x1234u16.to_le_bytes()); // kernel_version: copied, never interpreted
        put(field::LOADFLAGS, &[self.loadflags]);
        put(field::CODE32_START, &0x10_0000u32.to_le_bytes());
        put(field::INITRD_ADDR_MAX, &self.initrd_addr_max.to_le_bytes());
        put(
            field::KERNEL_ALIGNMENT,
            &self.kernel_alignment.to_le_bytes(),
        );
        put(field::RELOCATABLE_KERNEL, &[self.relocatable, 21]);
        put(field::XLOADFLAGS, &self.xloadflags.to_le_bytes());
        put(field::CMDLINE_SIZE, &self.cmdline_size.to_le_bytes());
        put(field::PREF_ADDRESS, &self.pref_address.to_le_bytes());
        put(field::INIT_SIZE, &self.init_size.to_le_bytes());
        put(0x268, &0xdead_beefu32.to_le_bytes()); // kernel_info_offset: copied
        v.extend_from_slice(payload);
        v.resize(v.len().next_multiple_of(16), 0);
        v
    }
}

/// A protected-mode kernel: 0x1000 bytes of a pattern, `startup_64` marked at 0x200.
pub(super) fn payload() -> Vec<u8> {
    let mut p: Vec<u8> = (0..0x1000u32).map(|i| (i * 7) as u8).collect();
    p[0x200] = 0xf4;
    p
}

#[test]
fn bzimage_is_loaded_and_boot_params_filled() {
    let g = Guest::new();
    let bz = Bz::default();
    let image = bz.build(&payload());
    let initrd: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let k = g
        .load(&image, "console=ttyS0 quiet", Some(&initrd))
        .unwrap();

    assert_eq!(k.format, "bzimage");
    assert_eq!(k.entry, PREF + 0x200);
    assert_eq!(k.end, PREF + 0x20_0000);
    assert_eq!(g.bytes(PREF, 0x1000), payload());

    // The copied header: every byte from 0x1f1 to its end, except the loader's fields.
    let zp = g.bytes(ZERO_PAGE_ADDR, 0x1000);
    let written = [0x210..0x212, 0x214..0x21c + 4, 0x224..0x22c, 0x250..0x258];
    for off in 0x1f1..0x26c {
        if !written.iter().any(|r| r.contains(&off)) {
            assert_eq!(zp[off], image[off], "header byte {off:#x}");
        }
    }
    assert_eq!(zp[0x26c..0x290], [0; 0x24], "nothing past the header's end");
    assert_eq!(zp[0x1ef], 0, "sentinel");
    assert_eq!(g.u8(ZERO_PAGE_ADDR + field::TYPE_OF_LOADER), 0xff);
    assert_eq!(g.u8(ZERO_PAGE_ADDR + field::LOADFLAGS), 0x81);
    assert_eq!(g.u16(ZERO_PAGE_ADDR + field::HEAP_END_PTR), 0xde00);
    assert_eq!(g.zp32(field::CODE32_START), PREF as u32);
    assert_eq!(g.zp32(field::CMD_LINE_PTR), CMDLINE_ADDR as u32);
    assert_eq!(g.zp32(offset::EXT_CMD_LINE_PTR), 0);
    assert_eq!(g.bytes(CMDLINE_ADDR, 20), b"console=ttyS0 quiet\0");
    assert_eq!(g.u64(ZERO_PAGE_ADDR + field::SETUP_DATA), 0);
    assert_eq!(
        g.u64(ZERO_PAGE_ADDR + offset::ACPI_RSDP_ADDR),
        0,
        "no ACPI tables"
    );

    // The initrd: page-aligned, as high as RAM allows, its bytes in place.
    let at = u64::from(g.zp32(field::RAMDISK_IMAGE));
    assert_eq!(at, (RAM - 10_000) & !0xfff);
    assert_eq!(g.zp32(field::RAMDISK_SIZE), 10_000);
    assert_eq!(g.zp32(offset::EXT_RAMDISK_IMAGE), 0);
    assert_eq!(g.zp32(offset::EXT_RAMDISK_SIZE), 0);
    assert_eq!(g.bytes(at, 10_000), initrd);
    assert_eq!(k.initrd, Some(at..at + 10_000));

    // The e820 table.
    assert_eq!(
        usize::from(g.u8(ZERO_PAGE_ADDR + offset::E820_ENTRIES)),
        g.e820.len()
    );
    for (i, e) in g.e820.iter().enumerate() {
        let a = ZERO_PAGE_ADDR + offset::E820_TABLE + 20 * i as u64;
        assert_eq!(
            (g.u64(a), g.u64(a + 8), g.u32(a + 16)),
            (e.addr, e.size, e.kind as u32)
        );
    }
}

#[test]
fn entry_state_follows_the_64_bit_protocol() {
    let g = Guest::new();
    let k = g.load(&Bz::default().build(&payload()), "", None).unwrap();
    let s = &k.state;
    assert_eq!(s.mode(), CpuMode::Long64);
    assert_eq!(s.rip, PREF + 0x200);
    assert_eq!(s.gpr[reg::RSI], ZERO_PAGE_ADDR);
    for r in [reg::RAX, reg::RBX, reg::RBP, reg::RDI] {
        assert_eq!(s.gpr[r], 0);
    }
    assert_eq!(s.rflags & bits::RFLAGS_IF, 0, "interrupts off");
    assert_eq!(s.cr3, PML4_ADDR);
    assert_eq!(s.seg[sreg::CS].selector, BOOT_CS);
    for r in [sreg::DS, sreg::ES, sreg::SS] {
        assert_eq!(s.seg[r].selector, BOOT_DS);
    }
    // The GDT holds what the registers cache: 64-bit code at 0x10, flat data at 0x18.
    assert_eq!(g.u64(GDT_ADDR + 0x10), 0x00af_9b00_0000_ffff);
    assert_eq!(g.u64(GDT_ADDR + 0x18), 0x00cf_9300_0000_ffff);
    assert_eq!(g.u64(GDT_ADDR + 0x10), s.seg[sreg::CS].to_descriptor());
    assert_eq!(g.u64(GDT_ADDR + 0x18), s.seg[sreg::DS].to_descriptor());
    assert_eq!(g.u64(GDT_ADDR + 0x08), 0x00cf_9b00_0000_ffff);
    // Identity map of the kernel: the PD entry of 16 MiB maps 16 MiB.
    assert_eq!(g.u64(0x4000 + 8 * 8), (16 << 20) | 0x87);
    assert_eq!(k.initrd, None);
    assert_eq!(g.zp32(field::RAMDISK_IMAGE), 0);
    assert_eq!(g.zp32(field::RAMDISK_SIZE), 0);
}

#[test]
fn setup_sects_zero_means_four() {
    let g = Guest::new();
    let bz = Bz {
        setup_sects: 0,
        ..Bz::default()
    };
    let image = bz.build(&payload());
    assert_eq!(image.len(), 5 * 512 + 0x1000);
    g.load(&image, "", None).unwrap();
    assert_eq!(g.bytes(PREF, 0x1000), payload());
    // The header keeps the file's 0.
    assert_eq!(g.u8(ZERO_PAGE_ADDR + field::SETUP_SECTS), 0);
}

#[test]
fn kernel_goes_to_pref_address_else_lowest_aligned_ram() {
    let g = Guest::new();
    // pref_address beyond RAM: the lowest 2 MiB-aligned address from 1 MiB.
    let bz = Bz {
        pref_address: 1 << 30,
        ..Bz::default()
    };
    let k = g.load(&bz.build(&payload()), "", None).unwrap();
    assert_eq!(k.entry, (2 << 20) + 0x200);
    assert_eq!(g.zp32(field::CODE32_START), 2 << 20);
    // A misaligned pref_address is aligned up.
    let bz = Bz {
        pref_address: PREF + 0x1000,
        ..Bz::default()
    };
    let k = g.load(&bz.build(&payload()), "", None).unwrap();
    assert_eq!(k.entry, PREF + (2 << 20) + 0x200);
    // init_size that would run past RAM from pref: moved down where it fits.
    let bz = Bz {
        init_size: 56 << 20,
        ..Bz::default()
    };
    let k = g.load(&bz.build(&payload()), "", None).unwrap();
    assert_eq!((k.entry, k.end), ((2 << 20) + 0x200, (58 << 20)));
}

#[test]
fn initrd_stays_below_initrd_addr_max_and_clear_of_the_kernel() {
    let g = Guest::new();
    let bz = Bz {
        initrd_addr_max: (32 << 20) - 1,
        ..Bz::default()
    };
    let k = g
        .load(&bz.build(&payload()), "", Some(&[7; 0x3000]))
        .unwrap();
    assert_eq!(k.initrd, Some((32 << 20) - 0x3000..32 << 20));
    // The kernel's init_size reaches the top of RAM: the initrd goes right below the kernel.
    let bz = Bz {
        init_size: (RAM - PREF) as u32,
        ..Bz::default()
    };
    let k = g
        .load(&bz.build(&payload()), "", Some(&[7; 0x2800]))
        .unwrap();
    assert_eq!(k.initrd, Some(PREF - 0x3000..PREF - 0x800));
    assert_eq!(g.zp32(field::RAMDISK_IMAGE), (PREF - 0x3000) as u32);
}

#[test]
fn acpi_rsdp_addr_points_at_the_tables_in_the_bios_area() {
    use crate::acpi::{AcpiConfig, AcpiTables, ACPI_TABLES_BASE};
    // Placed off the area's start, so the loader must search rather than assume.
    let base = ACPI_TABLES_BASE + 0x1_0000;
    let t = AcpiTables::build(AcpiConfig::pc(1), base).unwrap();
    let g = Guest::with_rom(Some((base, t.bytes())));
    g.load(&Bz::default().build(&payload()), "", None).unwrap();
    assert_eq!(
        g.u64(ZERO_PAGE_ADDR + offset::ACPI_RSDP_ADDR),
        t.rsdp_address()
    );
    assert_eq!(g.bytes(t.rsdp_address(), 8), b"RSD PTR ");
}
