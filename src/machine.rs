//! Assembles a machine: board, engine, kernel, vCPUs; and puts it back to its boot state on reset.

use std::fs::OpenOptions;
use std::sync::Arc;

use tandem_accel::{Accelerator, AcceleratorConfig, IrqchipConnection, MachineBus, Vcpu};
use tandem_hw::loader::{load_kernel, BootMemory, LoadedKernel};
use tandem_hw::pc::{BoardIrqchip, Pc, PcConfig, SerialOutput};
use tandem_softmmu::IrqForwarder;
use tandem_target_x86_64::CpuState;

use crate::config::{AccelKind, MachineConfig, SerialConfig};
use crate::console_timestamps::{TimestampSwitch, Timestamped};
use crate::error::Error;
use crate::vcpu_thread::HaltWake;

/// vCPUs per machine (the JIT runs one; SMP comes later).
const CPUS: u32 = 1;

/// Creates the engine `kind`, if this binary has it.
pub fn create_accelerator(
    kind: AccelKind,
    config: AcceleratorConfig,
) -> Result<Box<dyn Accelerator>, Error> {
    match kind {
        #[cfg(feature = "kvm")]
        AccelKind::Kvm => Ok(Box::new(tandem_accel::kvm::KvmAccelerator::new(config)?)),
        #[cfg(not(feature = "kvm"))]
        AccelKind::Kvm => Err(tandem_accel::AccelError::NotBuilt("kvm".into()).into()),
        #[cfg(feature = "tcg")]
        AccelKind::Tcg => Ok(Box::new(tandem_accel::tcg::TcgAccelerator::new(
            config.tcg,
        )?)),
        #[cfg(not(feature = "tcg"))]
        AccelKind::Tcg => {
            let _ = config;
            Err(tandem_accel::AccelError::NotBuilt("tcg".into()).into())
        }
    }
}

/// A machine ready to run.
pub struct Machine {
    /// The disks (first: their I/O thread stops before the board goes).
    _disks: crate::disks::Disks,
    pub(crate) config: MachineConfig,
    pub(crate) pc: Pc,
    pub(crate) accel: Box<dyn Accelerator>,
    pub(crate) bus: MachineBus,
    pub(crate) vcpus: Vec<Box<dyn Vcpu>>,
    /// Ctrl-A t's switch for the stamps on serial output to stdio.
    pub(crate) console_timestamps: TimestampSwitch,
    kernel: Vec<u8>,
    initrd: Option<Vec<u8>>,
    loaded: LoadedKernel,
}

fn read_file(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a `-device` this board cannot honour yet.
fn check_device(dev: &crate::config::DeviceConfig) -> Result<(), Error> {
    match dev.driver.as_str() {
        "isa-debug-exit" => {
            let at = |name: &str, want: u64| {
                dev.prop(name)
                    .is_none_or(|v| crate::cli::parse_u64(v) == Some(want))
            };
            if at("iobase", 0xf4) && at("iosize", 4) {
                Ok(())
            } else {
                Err(Error::Config(
                    "-device isa-debug-exit: the board has one, at iobase=0xf4,iosize=4".into(),
                ))
            }
        }
        "virtio-blk-pci" => Ok(()),
        other => Err(Error::Config(format!(
            "-device {other}: not attached to the board yet"
        ))),
    }
}

impl Machine {
    /// Builds the machine described by `config` and loads its kernel.
    pub fn new(config: MachineConfig) -> Result<Self, Error> {
        for dev in &config.devices {
            check_device(dev)?;
        }
        // Files first: a bad path is reported before any engine is started.
        let kernel = read_file("kernel", &config.kernel)?;
        let initrd = match &config.initrd {
            Some(p) => Some(read_file("initrd", p)?),
            None => None,
        };
        let console_timestamps = TimestampSwitch::new();
        let serial_out: SerialOutput = match &config.serial {
            SerialConfig::Stdio => Box::new(Timestamped::new(
                std::io::stdout(),
                console_timestamps.clone(),
            )),
            SerialConfig::None => Box::new(std::io::sink()),
            SerialConfig::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| Error::SerialFile {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        // The engine's own irqchip (KVM's in-kernel PIC/IOAPIC/PIT) or the board's: decided
        // now, connected once the engine exists, so a bad kernel is reported before the
        // engine is even opened. The JIT takes the board's APICs; KVM without its irqchip
        // injects 8259 vectors only, so it gets the 8259 alone.
        let engine_irqchip = config.kernel_irqchip && config.accel == AccelKind::Kvm;
        let forwarder = IrqForwarder::new();
        let irqchip = if engine_irqchip {
            BoardIrqchip::Engine(forwarder.clone())
        } else if config.accel == AccelKind::Tcg {
            BoardIrqchip::Apic
        } else {
            BoardIrqchip::Pic
        };
        let pc = Pc::with_irqchip(
            PcConfig {
                ram_size: config.ram_size,
                mem_path: config.mem_path.clone(),
                serial_out,
            },
            irqchip,
            CPUS,
        )?;
        let loaded = Self::load(&config, &pc, &kernel, initrd.as_deref())?;
        let mut accel = create_accelerator(
            config.accel,
            AcceleratorConfig {
                kernel_irqchip: engine_irqchip,
                tcg: config.tcg,
            },
        )?;
        if engine_irqchip {
            let sink = accel.irq_sink().ok_or_else(|| {
                Error::Config(format!(
                    "-accel {} has no in-kernel irqchip",
                    config.accel.name()
                ))
            })?;
            forwarder.connect(sink);
        }
        if let Some(u) = &pc.userspace_irqchip {
            for cpu in &u.cpus {
                // A vCPU halted on its INTR pin must also wake for a stop request.
                let pin = cpu.pin.clone();
                pc.control.on_request(move || pin.wake());
            }
        }
        // Each vCPU has its own interrupt input (with APICs: its own pin and local APIC).
        let connection = |i: u32| match pc
            .userspace_irqchip
            .as_ref()
            .and_then(|u| u.cpus.get(i as usize))
        {
            Some(c) => IrqchipConnection::Userspace {
                pin: c.pin.clone(),
                ack: c.ack.clone(),
            },
            None => IrqchipConnection::InEngine,
        };
        let bus = MachineBus {
            memory: pc.memory.clone(),
            ports: pc.ports.clone(),
            control: pc.control.clone(),
            irqchip: connection(0),
            cpus: CPUS,
        };
        accel.attach(&bus)?;
        let disks = crate::disks::attach(&config, &pc, accel.as_ref())?;
        let mut vcpus = Vec::new();
        for i in 0..CPUS {
            let vcpu_bus = MachineBus {
                irqchip: connection(i),
                ..bus.clone()
            };
            let mut vcpu = accel.create_vcpu(i, &vcpu_bus)?;
            vcpu.set_state(&loaded.state)?;
            vcpus.push(vcpu);
        }
        Ok(Self {
            _disks: disks,
            config,
            pc,
            accel,
            bus,
            vcpus,
            console_timestamps,
            kernel,
            initrd,
            loaded,
        })
    }

    /// What wakes each halted vCPU (its pin and local APIC), by index; None where the engine
    /// halts in itself.
    pub(crate) fn halt_wakes(&self) -> Vec<Option<HaltWake>> {
        (0..self.vcpus.len())
            .map(|i| {
                let cpu = self.pc.userspace_irqchip.as_ref()?.cpus.get(i)?;
                Some(HaltWake {
                    pin: cpu.pin.clone(),
                    lapic: cpu
                        .lapic
                        .clone()
                        .map(|l| l as Arc<dyn tandem_softmmu::irq::LocalApic>),
                })
            })
            .collect()
    }

    fn load(
        config: &MachineConfig,
        pc: &Pc,
        kernel: &[u8],
        initrd: Option<&[u8]>,
    ) -> Result<LoadedKernel, Error> {
        let e820 = pc.e820();
        let mem = BootMemory {
            space: &pc.memory,
            e820: &e820,
            ram_size: config.ram_size,
        };
        load_kernel(&mem, kernel, &config.append, initrd, config.flat.as_ref()).map_err(|source| {
            Error::Loader {
                path: config.kernel.clone(),
                source,
            }
        })
    }

    /// A system reset: engine-side devices reset, the kernel reloaded, vCPU 0 at its entry.
    pub fn reset(&mut self) -> Result<(), Error> {
        self.accel.reset()?;
        self.pc.reset()?;
        self.loaded = Self::load(&self.config, &self.pc, &self.kernel, self.initrd.as_deref())?;
        if let Some(vcpu) = self.vcpus.first_mut() {
            vcpu.set_state(&self.loaded.state)?;
        }
        Ok(())
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// The board.
    pub fn board(&self) -> &Pc {
        &self.pc
    }

    /// The engine's name.
    pub fn accel_name(&self) -> &'static str {
        self.accel.name()
    }

    /// The state vCPU 0 starts from.
    pub fn boot_state(&self) -> &CpuState {
        &self.loaded.state
    }

    /// Reads vCPU `index`'s state (between runs).
    pub fn vcpu_state(&mut self, index: usize) -> Result<CpuState, Error> {
        let vcpu = self
            .vcpus
            .get_mut(index)
            .ok_or_else(|| Error::Config(format!("no vCPU {index}")))?;
        Ok(vcpu.state()?)
    }

    /// The shared bus (memory, ports, run control).
    pub fn bus(&self) -> &MachineBus {
        &self.bus
    }

    /// Keeps `Arc` users of the memory map honest: the map outlives every vCPU.
    pub fn memory(&self) -> &Arc<tandem_softmmu::AddressSpace> {
        &self.pc.memory
    }
}
