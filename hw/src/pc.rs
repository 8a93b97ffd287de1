//! The PC board: the memory map, the e820 table, and the ISA devices wired to ports and IRQs.
//!
//! Layout (as QEMU's `pc` machine, minus the firmware): RAM from 0 to 640 KiB, a hole for VGA
//! and BIOS ROM up to 1 MiB, RAM from 1 MiB up to at most 3 GiB, the MMIO window (PCI, IOAPIC,
//! LAPIC, HPET) from 3 GiB to 4 GiB, and the rest of RAM above 4 GiB.
//!
//! Devices: COM1 16550A at 0x3f8 (IRQ 4), CMOS RTC at 0x70, i8042 at 0x60/0x64, port 0x92,
//! isa-debug-exit at 0xf4, port 0x80; with a userspace irqchip also the 8259 pair (0x20, 0xa0,
//! ELCR 0x4d0) and the 8254 PIT (0x40, 0x61). With an engine irqchip (KVM) the engine owns the
//! PIC and PIT ports and every device line goes to the engine.
//!
//! Known warts: the 640K-1M hole is unassigned (reads all-ones), there is no firmware, and a
//! reset reloads the kernel rather than running a BIOS.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tandem_softmmu::{
    AddressSpace, AddressSpaceBuilder, GuestRam, InterruptAcknowledge, InterruptPin, IrqLine,
    IrqSink, MapError, PortBus, RunControl,
};
use thiserror::Error;

use crate::char::serial16550::Serial16550;
use crate::e820::{E820Entry, E820Kind};
use crate::intc::pic8259::{PicPorts, UserspacePic};
use crate::misc::debug_exit::DebugExit;
use crate::misc::i8042::I8042;
use crate::misc::port80::Port80;
use crate::misc::port92::Port92;
use crate::timer::clock::{Clock, HostClock};
use crate::timer::cmos_rtc::CmosRtc;
use crate::timer::pit8254::PitDevice;

/// Smallest RAM the board accepts: loaders put their structures below 640 KiB and kernels at
/// 1 MiB.
pub const MIN_RAM: u64 = 2 << 20;
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
                addr: 0xf_0000,
                size: 0x1_0000,
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

/// The userspace interrupt controllers, when the engine has none.
pub struct UserspaceIrqchip {
    /// The 8259 pair.
    pub pic: Arc<UserspacePic>,
    /// The CPU's INTR pin it drives.
    pub pin: Arc<InterruptPin>,
    /// The PIT, ticked by the main loop.
    pub pit: Arc<Mutex<PitDevice>>,
}

impl UserspaceIrqchip {
    /// The INTA side, for the engine.
    pub fn ack(&self) -> Arc<dyn InterruptAcknowledge> {
        self.pic.clone()
    }
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
    /// The userspace PIC and PIT, when used.
    pub userspace_irqchip: Option<UserspaceIrqchip>,
}

impl Pc {
    /// Builds the board. `engine_irq` is the engine's own interrupt controller (KVM in-kernel
    /// irqchip); None means the board brings the userspace PIC and PIT.
    pub fn new(config: PcConfig, engine_irq: Option<Arc<dyn IrqSink>>) -> Result<Self, PcError> {
        if config.ram_size < MIN_RAM {
            return Err(PcError::RamTooSmall(config.ram_size));
        }
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
        let memory = Arc::new(map.build());

        let control = Arc::new(RunControl::new());
        let mut ports = PortBus::new();
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());

        let (irq_sink, userspace_irqchip): (Arc<dyn IrqSink>, _) = match engine_irq {
            Some(sink) => (sink, None),
            None => {
                let pin = InterruptPin::new();
                let pic = UserspacePic::new(pin.clone());
                let ports_dev = Arc::new(Mutex::new(PicPorts(pic.clone())));
                ports.register_with_offset(0x20, 2, ports_dev.clone(), 0)?;
                ports.register_with_offset(0xa0, 2, ports_dev.clone(), 0x80)?;
                ports.register_with_offset(0x4d0, 2, ports_dev, 0x4b0)?;
                let pit = Arc::new(Mutex::new(PitDevice::new(
                    IrqLine::new(pic.clone(), 0),
                    clock.clone(),
                )));
                ports.register_with_offset(0x40, 4, pit.clone(), 0)?;
                ports.register_with_offset(0x61, 1, pit.clone(), 0x21)?;
                (pic.clone(), Some(UserspaceIrqchip { pic, pin, pit }))
            }
        };

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

        Ok(Self {
            ram,
            layout,
            memory,
            ports: Arc::new(ports),
            control,
            serial,
            rtc,
            userspace_irqchip,
        })
    }

    /// The e820 map.
    pub fn e820(&self) -> Vec<E820Entry> {
        self.layout.e820()
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
}
