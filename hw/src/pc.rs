//! The PC board: the memory map, the e820 table, the ACPI tables, and the devices wired to
//! ports, MMIO and IRQs.
//!
//! Layout (as QEMU's `pc` machine, minus the firmware): RAM from 0 to 640 KiB, a hole for VGA
//! and BIOS ROM up to 1 MiB (the ACPI tables in a ROM at 0xE0000, reserved in e820 with the
//! rest of the BIOS area), RAM from 1 MiB up to at most 3 GiB, the MMIO window (I/O APIC at
//! 0xFEC00000, local APICs at 0xFEE00000) from 3 GiB to 4 GiB, and the rest of RAM above 4 GiB.
//!
//! Devices: COM1 16550A at 0x3f8 (IRQ 4), CMOS RTC at 0x70, i8042 at 0x60/0x64, port 0x92,
//! isa-debug-exit at 0xf4, port 0x80, the ACPI PM block at 0x600 (S5 powers off). The
//! interrupt controllers are [`BoardIrqchip`]'s choice: the engine's own (KVM's in-kernel
//! irqchip owns the PIC, PIT and APICs, and every device line goes to it), the board's 8259
//! pair and 8254 PIT alone, or those with an I/O APIC and a local APIC per CPU
//! ([`irqchip`]). The MADT describes the APIC layout in every case: KVM's in-kernel APICs sit at
//! the same addresses.
//!
//! Known warts: the rest of the 640K-1M hole is unassigned (reads all-ones), there is no
//! firmware, and a reset reloads the kernel rather than running a BIOS; with the 8259 alone the
//! MADT still lists the APICs (CPUID then reports none, and guests trust CPUID first).

pub mod irqchip;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tandem_softmmu::{
    AddressSpace, AddressSpaceBuilder, GuestRam, IrqLine, IrqSink, MapError, PortBus, RunControl,
};
use thiserror::Error;

use crate::acpi::pm::{Pm, PM_BASE, PM_BLOCK_LEN};
use crate::acpi::{AcpiConfig, AcpiError, AcpiTables, PciAcpi, ACPI_TABLES_BASE};
use crate::char::serial16550::Serial16550;
use crate::e820::{E820Entry, E820Kind};
use crate::misc::debug_exit::DebugExit;
use crate::misc::i8042::I8042;
use crate::misc::port80::Port80;
use crate::misc::port92::Port92;
use crate::pci::{IntxWire, PciBus, PciBusConfig, PciError, PciIrqRouting};
use crate::timer::clock::{Clock, HostClock};
use crate::timer::cmos_rtc::CmosRtc;

pub use irqchip::{Apics, CpuInterrupts, UserspaceIrqchip};

/// Smallest RAM the board accepts: loaders put their structures below 640 KiB and kernels at
/// 1 MiB.
pub const MIN_RAM: u64 = 2 << 20;
/// Start of the BIOS area reserved in e820: the ACPI tables' ROM and the area above it.
pub const BIOS_AREA_START: u64 = ACPI_TABLES_BASE;
/// Top of conventional memory.
pub const LOW_RAM_END: u64 = 0xa_0000;
/// Start of RAM above the legacy hole.
pub const HIGH_RAM_START: u64 = 0x10_0000;
/// Where RAM below 4 GiB ends at most; the MMIO window follows.
pub const MMIO_WINDOW_START: u64 = 0xc000_0000;
/// Start of RAM above 4 GiB.
pub const ABOVE_4G_START: u64 = 0x1_0000_0000;
/// The EBDA area reserved at the top of conventional memory.
const EBDA_START: u64 = 0x9_fc00;

/// COM1's port and IRQ.
pub const COM1_PORT: u16 = 0x3f8;
/// COM1's IRQ.
pub const COM1_IRQ: u32 = 4;
/// isa-debug-exit's port, as in QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=4`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Board construction failures.
#[derive(Debug, Error)]
pub enum PcError {
    /// Less RAM than the board needs.
    #[error("RAM size {0} bytes is too small (at least {MIN_RAM} bytes)")]
    RamTooSmall(u64),
    /// Mapping RAM or devices failed.
    #[error("building the memory map")]
    Map(#[from] MapError),
    /// A CPU count the interrupt controllers cannot serve.
    #[error("{0} CPUs: the board's APICs serve 1 to 255 CPUs, the 8259 alone exactly one")]
    BadCpuCount(u32),
    /// The ACPI tables could not be built.
    #[error("building the ACPI tables")]
    Acpi(#[from] AcpiError),
    /// The PCI bus refused a device or its BARs.
    #[error("PCI: {0}")]
    Pci(#[from] PciError),
}

/// Where the user's serial port output goes.
pub type SerialOutput = Box<dyn Write + Send>;

/// Board options.
pub struct PcConfig {
    /// Guest RAM in bytes.
    pub ram_size: u64,
    /// Back RAM with this file instead of anonymous memory.
    pub mem_path: Option<PathBuf>,
    /// COM1 output.
    pub serial_out: SerialOutput,
}

/// How RAM is split around the 4 GiB hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamLayout {
    /// Bytes of RAM below 4 GiB (including the legacy hole's share of the host block).
    pub below_4g: u64,
    /// Bytes of RAM from 4 GiB up.
    pub above_4g: u64,
}

impl RamLayout {
    /// The split for `ram_size` bytes.
    pub fn new(ram_size: u64) -> Self {
        let below_4g = ram_size.min(MMIO_WINDOW_START);
        Self {
            below_4g,
            above_4g: ram_size - below_4g,
        }
    }

    /// The e820 map a guest is told.
    pub fn e820(&self) -> Vec<E820Entry> {
        let mut map = vec![
            E820Entry {
                addr: 0,
                size: EBDA_START,
                kind: E820Kind::Ram,
            },
            E820Entry {
                addr: EBDA_START,
                size: LOW_RAM_END - EBDA_START,
                kind: E820Kind::Reserved,
            },
            E820Entry {
                addr: BIOS_AREA_START,
                size: HIGH_RAM_START - BIOS_AREA_START,
                kind: E820Kind::Reserved,
            },
            E820Entry {
                addr: HIGH_RAM_START,
                size: self.below_4g - HIGH_RAM_START,
                kind: E820Kind::Ram,
            },
        ];
        if self.above_4g > 0 {
            map.push(E820Entry {
                addr: ABOVE_4G_START,
                size: self.above_4g,
                kind: E820Kind::Ram,
            });
        }
        map
    }
}

/// Which interrupt controllers the board brings.
#[derive(Clone)]
pub enum BoardIrqchip {
    /// The engine's own (KVM's in-kernel irqchip and PIT): every device line goes to this sink.
    Engine(Arc<dyn IrqSink>),
    /// The board's 8259 pair, driving the only CPU's INTR directly, and its 8254 PIT.
    Pic,
    /// The board's 8259 pair and 8254 PIT, an I/O APIC and a local APIC per CPU.
    Apic,
}

/// A built PC.
pub struct Pc {
    /// Guest RAM.
    pub ram: GuestRam,
    /// How RAM is placed.
    pub layout: RamLayout,
    /// The physical address space.
    pub memory: Arc<AddressSpace>,
    /// The port bus.
    pub ports: Arc<PortBus>,
    /// Run requests from devices and the host.
    pub control: Arc<RunControl>,
    /// COM1.
    pub serial: Arc<Mutex<Serial16550>>,
    /// The CMOS RTC (its NVRAM survives resets).
    pub rtc: Arc<Mutex<CmosRtc>>,
    /// The userspace interrupt controllers and PIT, when used.
    pub userspace_irqchip: Option<UserspaceIrqchip>,
    /// The ACPI PM block.
    pub pm: Arc<Mutex<Pm>>,
    /// Guest-physical address of the ACPI RSDP.
    pub rsdp_address: u64,
    /// The PCI bus (the i440FX host bridge at 00:00.0); devices are added by the machine,
    /// then [`PciBus::assign_bars`] places them.
    pub pci: PciBus,
}

impl Pc {
    /// Builds a one-CPU board. `engine_irq` is the engine's own interrupt controller (KVM
    /// in-kernel irqchip); None means the board brings its own, APICs included.
    pub fn new(config: PcConfig, engine_irq: Option<Arc<dyn IrqSink>>) -> Result<Self, PcError> {
        let irqchip = engine_irq.map_or(BoardIrqchip::Apic, BoardIrqchip::Engine);
        Self::with_irqchip(config, irqchip, 1)
    }

    /// Builds the board for `cpus` CPUs with the interrupt controllers `irqchip`.
    pub fn with_irqchip(
        config: PcConfig,
        irqchip: BoardIrqchip,
        cpus: u32,
    ) -> Result<Self, PcError> {
        if config.ram_size < MIN_RAM {
            return Err(PcError::RamTooSmall(config.ram_size));
        }
        if cpus == 0 || (matches!(irqchip, BoardIrqchip::Pic) && cpus != 1) {
            return Err(PcError::BadCpuCount(cpus));
        }
        // INTx: GSIs 16-19 where an I/O APIC takes them (level, active low, as _PRT entries
        // are); ISA IRQs with the 8259 alone. The board's own I/O APIC honours the polarity
        // Linux programs, so its wires idle high; KVM's ignores polarity (as QEMU's does).
        let (routing, wire) = match irqchip {
            BoardIrqchip::Engine(_) => (PciIrqRouting::IOAPIC, IntxWire::Logical),
            BoardIrqchip::Apic => (PciIrqRouting::IOAPIC, IntxWire::ActiveLow),
            BoardIrqchip::Pic => (PciIrqRouting::PIC, IntxWire::Logical),
        };
        let pci_config = PciBusConfig {
            wire,
            ..PciBusConfig::pc(routing)
        };
        let acpi = AcpiTables::build(
            AcpiConfig {
                pci: Some(PciAcpi::new(&pci_config)),
                ..AcpiConfig::pc(cpus)
            },
            ACPI_TABLES_BASE,
        )?;
        let ram = match &config.mem_path {
            Some(path) => GuestRam::file(path, config.ram_size)?,
            None => GuestRam::anonymous(config.ram_size)?,
        };
        let layout = RamLayout::new(config.ram_size);
        let mut map = AddressSpaceBuilder::new();
        let host = ram.host().clone();
        map.ram(0, host.clone(), 0, LOW_RAM_END)?;
        map.ram(
            HIGH_RAM_START,
            host.clone(),
            HIGH_RAM_START,
            layout.below_4g - HIGH_RAM_START,
        )?;
        if layout.above_4g > 0 {
            map.ram(ABOVE_4G_START, host, layout.below_4g, layout.above_4g)?;
        }
        map.rom(ACPI_TABLES_BASE, acpi.bytes())?;

        let control = Arc::new(RunControl::new());
        let mut ports = PortBus::new();
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());

        let (irq_sink, userspace_irqchip) = match irqchip {
            BoardIrqchip::Engine(sink) => (sink, None),
            BoardIrqchip::Pic | BoardIrqchip::Apic => {
                let apic = matches!(irqchip, BoardIrqchip::Apic);
                let (chip, sink) =
                    UserspaceIrqchip::build(apic, cpus, &clock, &mut ports, &mut map)?;
                (sink, Some(chip))
            }
        };
        let pci = PciBus::new(pci_config, irq_sink.clone())?;
        pci.register(&mut ports, &mut map)?;
        let memory = Arc::new(map.build());

        let serial = Arc::new(Mutex::new(Serial16550::new(
            IrqLine::new(irq_sink.clone(), COM1_IRQ),
            config.serial_out,
        )));
        ports.register(COM1_PORT, 8, serial.clone())?;
        let rtc = Arc::new(Mutex::new(CmosRtc::new(layout.below_4g, layout.above_4g)));
        ports.register(0x70, 2, rtc.clone())?;
        let kbc = Arc::new(Mutex::new(I8042::new(control.clone())));
        ports.register_with_offset(0x60, 1, kbc.clone(), 0)?;
        ports.register_with_offset(0x64, 1, kbc, 4)?;
        ports.register(0x92, 1, Arc::new(Mutex::new(Port92::new(control.clone()))))?;
        ports.register(0x80, 1, Arc::new(Mutex::new(Port80::default())))?;
        ports.register(
            DEBUG_EXIT_PORT,
            4,
            Arc::new(Mutex::new(DebugExit::new(control.clone()))),
        )?;
        let pm = Arc::new(Mutex::new(Pm::new(control.clone(), clock)));
        ports.register(PM_BASE, PM_BLOCK_LEN, pm.clone())?;

        Ok(Self {
            ram,
            layout,
            memory,
            ports: Arc::new(ports),
            control,
            serial,
            rtc,
            userspace_irqchip,
            pm,
            rsdp_address: acpi.rsdp_address(),
            pci,
        })
    }

    /// The e820 map.
    pub fn e820(&self) -> Vec<E820Entry> {
        self.layout.e820()
    }

    /// A machine reset of the board's devices that have a power-on state to return to: the
    /// APICs, the ACPI PM block and the PCI bus (config spaces, BARs placed again).
    pub fn reset(&self) -> Result<(), PcError> {
        if let Some(chip) = &self.userspace_irqchip {
            chip.reset();
        }
        // After the I/O APIC's reset, which drops every wire: the PCI lines' idle levels go
        // back on.
        self.pci.reset()?;
        self.pm.lock().unwrap_or_else(|e| e.into_inner()).reset();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(ram: u64) -> Pc {
        Pc::new(
            PcConfig {
                ram_size: ram,
                mem_path: None,
                serial_out: Box::new(std::io::sink()),
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn ram_is_split_around_the_legacy_and_pci_holes() {
        let pc = board(64 << 20);
        assert!(pc.memory.is_memory(0, LOW_RAM_END));
        assert!(!pc.memory.is_memory(0xb_8000, 1));
        assert!(pc
            .memory
            .is_memory(HIGH_RAM_START, (64 << 20) - HIGH_RAM_START));
        assert!(!pc.memory.is_memory(64 << 20, 1));
        let big = RamLayout::new(4 << 30);
        assert_eq!(big.below_4g, MMIO_WINDOW_START);
        assert_eq!(big.above_4g, (4 << 30) - MMIO_WINDOW_START);
        let e820 = big.e820();
        assert_eq!(e820.last().unwrap().addr, ABOVE_4G_START);
        let ram: u64 = e820
            .iter()
            .filter(|e| e.kind == E820Kind::Ram)
            .map(|e| e.size)
            .sum();
        assert_eq!(
            ram,
            (4 << 30) - (LOW_RAM_END - EBDA_START) - (HIGH_RAM_START - LOW_RAM_END)
        );
    }

    #[test]
    fn too_little_ram_is_an_error() {
        let r = Pc::new(
            PcConfig {
                ram_size: 0,
                mem_path: None,
                serial_out: Box::new(std::io::sink()),
            },
            None,
        );
        assert!(matches!(r, Err(PcError::RamTooSmall(0))));
    }

    #[test]
    fn devices_answer_on_their_ports() {
        let pc = board(16 << 20);
        // The scratch register of COM1 holds what was written.
        pc.ports.write(COM1_PORT + 7, &[0x5a]);
        let mut b = [0u8];
        pc.ports.read(COM1_PORT + 7, &mut b);
        assert_eq!(b[0], 0x5a);
        // CMOS register 0x15/0x16: 640 KiB of base memory.
        pc.ports.write(0x70, &[0x15]);
        pc.ports.read(0x71, &mut b);
        assert_eq!(b[0], 0x80);
        // The debug-exit port posts a request.
        pc.ports.write(DEBUG_EXIT_PORT, &[3]);
        assert_eq!(
            pc.control.pending(),
            Some(tandem_softmmu::MachineRequest::DebugExit(3))
        );
        assert!(pc.userspace_irqchip.is_some());
    }

    #[test]
    fn acpi_tables_sit_in_a_reserved_rom_the_guest_cannot_change() {
        let pc = board(16 << 20);
        let read = |addr: u64, buf: &mut [u8]| pc.memory.read(addr, buf).is_ok();
        let found = crate::acpi::rsdp::find(ACPI_TABLES_BASE, crate::acpi::RSDP_SCAN_END, read);
        assert_eq!(found, Some(pc.rsdp_address));
        let mut before = [0u8; 8];
        pc.memory.read(pc.rsdp_address, &mut before).unwrap();
        pc.memory.mmio_write(pc.rsdp_address, &[0; 8]);
        let mut after = [0u8; 8];
        pc.memory.read(pc.rsdp_address, &mut after).unwrap();
        assert_eq!((&before, &after), (b"RSD PTR ", b"RSD PTR "));
        let e820 = pc.e820();
        let bios = e820
            .iter()
            .find(|e| e.addr <= ACPI_TABLES_BASE && ACPI_TABLES_BASE < e.end())
            .unwrap();
        assert_eq!(
            (bios.addr, bios.end(), bios.kind),
            (ACPI_TABLES_BASE, HIGH_RAM_START, E820Kind::Reserved)
        );
        for w in e820.windows(2) {
            assert!(w[0].end() <= w[1].addr, "{e820:?}");
        }
    }

    #[test]
    fn the_pm_block_powers_off_and_a_reset_clears_it() {
        use crate::acpi::pm::{CNT_OFFSET, SLP_EN, SLP_TYP_SHIFT};
        let pc = board(16 << 20);
        let cnt = PM_BASE + CNT_OFFSET;
        pc.ports.write(cnt, &(3u16 << SLP_TYP_SHIFT).to_le_bytes());
        pc.reset().unwrap();
        let mut v = [0u8; 2];
        pc.ports.read(cnt, &mut v);
        assert_eq!(u16::from_le_bytes(v) >> SLP_TYP_SHIFT, 0);
        assert_eq!(pc.control.pending(), None);
        pc.ports
            .write(cnt, &(5u16 << SLP_TYP_SHIFT | SLP_EN).to_le_bytes());
        assert_eq!(
            pc.control.pending(),
            Some(tandem_softmmu::MachineRequest::PowerOff)
        );
    }

    #[test]
    fn cpu_counts_the_interrupt_controllers_cannot_serve_are_errors() {
        let build = |irqchip, cpus| {
            let config = PcConfig {
                ram_size: 16 << 20,
                mem_path: None,
                serial_out: Box::new(std::io::sink()),
            };
            Pc::with_irqchip(config, irqchip, cpus).err()
        };
        assert!(matches!(
            build(BoardIrqchip::Apic, 0),
            Some(PcError::BadCpuCount(0))
        ));
        assert!(matches!(
            build(BoardIrqchip::Pic, 2),
            Some(PcError::BadCpuCount(2))
        ));
        assert!(matches!(
            build(BoardIrqchip::Apic, 256),
            Some(PcError::Acpi(_))
        ));
        let sink: Arc<dyn IrqSink> = Arc::new(tandem_softmmu::irq::NoIrq);
        assert!(build(BoardIrqchip::Engine(sink), 1).is_none());
    }
}
