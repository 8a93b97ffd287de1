//! A KVM vCPU: the KVM_RUN loop, exit handling, and state transfer.
//!
//! Port and MMIO exits are handled here, so [`Vcpu::run`] returns only for what the runtime must
//! see: HLT (userspace irqchip), shutdown, a stop request, a debug stop, or an error. With the
//! userspace irqchip, interrupts are injected with KVM_INTERRUPT when KVM reports an open
//! interrupt window, and requested (`request_interrupt_window`) otherwise.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use kvm_bindings::{
    kvm_guest_debug, kvm_mp_state, kvm_msr_entry, kvm_run, kvm_xcrs, Msrs, KVM_GUESTDBG_ENABLE,
    KVM_GUESTDBG_USE_HW_BP, KVM_MP_STATE_HALTED, KVM_MP_STATE_RUNNABLE, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{Cap, Kvm, VcpuExit as KvmExit, VcpuFd, VmFd};
use tandem_softmmu::{InterruptAcknowledge, InterruptPin, MachineRequest};
use tandem_target_x86_64::cpuid::MachineFeatures;
use tandem_target_x86_64::msr::STATE_MSRS;
use tandem_target_x86_64::CpuState;

use super::kick::Kicker;
use super::{cpuid, exits, state};
use crate::accelerator::{AcceleratorConfig, IrqchipConnection, MachineBus, Vcpu, VcpuExit};
use crate::error::AccelError;

/// KVM_INTERRUPT: _IOW(KVMIO, 0x86, struct kvm_interrupt); kvm-ioctls has no wrapper for it.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_ae86;

fn host(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> AccelError {
    move |e| AccelError::Host {
        op,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// What an exit asked for, with the borrow of the kvm_run area released.
enum Outcome {
    Continue,
    Return(VcpuExit),
    Internal(String),
}

/// One vCPU of a KVM VM.
pub struct KvmVcpu {
    fd: VcpuFd,
    index: u32,
    bus: MachineBus,
    kicker: Arc<Kicker>,
    run: *mut kvm_run,
    msrs: Vec<u32>,
    has_xcrs: bool,
    has_xsave: bool,
    has_debugregs: bool,
    has_events: bool,
    userspace_irq: Option<(Arc<InterruptPin>, Arc<dyn InterruptAcknowledge>)>,
}

// SAFETY: `run` points into the vCPU's own kvm_run mapping, owned by `fd`, which moves with it;
// the vCPU is used by one thread at a time.
unsafe impl Send for KvmVcpu {}

impl KvmVcpu {
    /// Creates vCPU `index` of `vm` with its CPUID and the kicks that stop it.
    pub fn new(
        kvm: &Kvm,
        vm: &VmFd,
        index: u32,
        bus: &MachineBus,
        config: &AcceleratorConfig,
    ) -> Result<Self, AccelError> {
        let mut fd = vm
            .create_vcpu(u64::from(index))
            .map_err(host("KVM_CREATE_VCPU"))?;
        let features = MachineFeatures {
            apic: config.kernel_irqchip,
            x2apic: config.kernel_irqchip,
            cpus: bus.cpus,
        };
        let table = cpuid::table_for_vcpu(kvm, features, index)?;
        fd.set_cpuid2(&table).map_err(host("KVM_SET_CPUID2"))?;
        let supported = kvm
            .get_msr_index_list()
            .map_err(host("KVM_GET_MSR_INDEX_LIST"))?;
        let msrs = STATE_MSRS
            .iter()
            .copied()
            .filter(|m| supported.as_slice().contains(m))
            .collect();
        let run: *mut kvm_run = fd.get_kvm_run();
        // SAFETY: `run` is the live kvm_run mapping of `fd`; immediate_exit is a plain u8 field.
        let immediate_exit = unsafe { &raw mut (*run).immediate_exit };
        let kicker = Arc::new(Kicker::new(immediate_exit));
        let k = kicker.clone();
        bus.control.on_request(move || k.kick());
        let userspace_irq = match &bus.irqchip {
            IrqchipConnection::InEngine => None,
            IrqchipConnection::Userspace { pin, ack } => {
                let k = kicker.clone();
                pin.on_raise(move || k.kick());
                Some((pin.clone(), ack.clone()))
            }
        };
        Ok(Self {
            fd,
            index,
            bus: bus.clone(),
            kicker,
            run,
            msrs,
            has_xcrs: vm.check_extension(Cap::Xcrs),
            has_xsave: vm.check_extension(Cap::Xsave),
            has_debugregs: vm.check_extension(Cap::Debugregs),
            has_events: vm.check_extension(Cap::VcpuEvents),
            userspace_irq,
        })
    }

    /// This vCPU's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Injects a pending userspace-irqchip interrupt if the guest can take one now, or asks KVM
    /// to exit when it can.
    fn inject_interrupt(&mut self) -> Result<(), AccelError> {
        let Some((pin, ack)) = &self.userspace_irq else {
            return Ok(());
        };
        // The kicker stores into immediate_exit of the same kvm_run from other threads, so no
        // reference to the whole struct is formed: each field is read or written through the
        // raw pointer.
        let run = self.run;
        let set_window = |on: u8| {
            // SAFETY: `run` is our live kvm_run mapping; request_interrupt_window is a plain u8
            // that only this thread writes.
            unsafe { std::ptr::addr_of_mut!((*run).request_interrupt_window).write(on) }
        };
        if !pin.is_raised() {
            set_window(0);
            return Ok(());
        }
        // SAFETY: as above; plain u8 fields KVM filled at the last exit.
        let (ready, if_flag) = unsafe {
            (
                std::ptr::addr_of!((*run).ready_for_interrupt_injection).read(),
                std::ptr::addr_of!((*run).if_flag).read(),
            )
        };
        if ready != 0 && if_flag != 0 {
            set_window(0);
            if let Some(vector) = ack.acknowledge() {
                let irq = kvm_bindings::kvm_interrupt {
                    irq: u32::from(vector),
                };
                // SAFETY: KVM_INTERRUPT takes a pointer to a kvm_interrupt that lives across the
                // call; the fd is our vCPU.
                let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_INTERRUPT, &irq) };
                if rc < 0 {
                    return Err(AccelError::Host {
                        op: "KVM_INTERRUPT",
                        source: std::io::Error::last_os_error(),
                    });
                }
            }
        } else {
            set_window(1);
        }
        Ok(())
    }

    fn run_once(&mut self) -> Result<Outcome, AccelError> {
        let run = self.run;
        let bus = &self.bus;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.kicker.acknowledge();
                return Ok(Outcome::Continue);
            }
            Err(e) => return Err(host("KVM_RUN")(e)),
        };
        Ok(match exit {
            KvmExit::IoIn(port, data) => {
                // SAFETY: a KVM_EXIT_IO exit: the kernel filled the `io` member of the union;
                // `run` is our live mapping and `size` a plain integer beside the data slice.
                let size = unsafe { (*run).__bindgen_anon_1.io.size } as usize;
                exits::io_in(&bus.ports, port, size, data);
                Outcome::Continue
            }
            KvmExit::IoOut(port, data) => {
                // SAFETY: as for IoIn.
                let size = unsafe { (*run).__bindgen_anon_1.io.size } as usize;
                exits::io_out(&bus.ports, port, size, data);
                Outcome::Continue
            }
            KvmExit::MmioRead(addr, data) => {
                exits::mmio_read(&bus.memory, addr, data);
                Outcome::Continue
            }
            KvmExit::MmioWrite(addr, data) => {
                exits::mmio_write(&bus.memory, addr, data);
                Outcome::Continue
            }
            KvmExit::Hlt => {
                // SAFETY: `if_flag` is valid on every exit; `run` is our live mapping.
                let if_flag = unsafe { std::ptr::addr_of!((*run).if_flag).read() } != 0;
                Outcome::Return(VcpuExit::Halted {
                    interrupts_enabled: if_flag,
                })
            }
            KvmExit::Shutdown => Outcome::Return(VcpuExit::Shutdown),
            KvmExit::IrqWindowOpen | KvmExit::Intr => Outcome::Continue,
            KvmExit::Debug(_) => Outcome::Return(VcpuExit::Debug),
            KvmExit::SystemEvent(kind, _) => {
                let req = match kind {
                    KVM_SYSTEM_EVENT_RESET => MachineRequest::Reset,
                    KVM_SYSTEM_EVENT_SHUTDOWN | KVM_SYSTEM_EVENT_CRASH => MachineRequest::PowerOff,
                    other => {
                        return Ok(Outcome::Internal(format!(
                            "unexpected KVM system event {other}"
                        )))
                    }
                };
                bus.control.request(req);
                Outcome::Return(VcpuExit::Stopped)
            }
            KvmExit::InternalError => {
                // SAFETY: a KVM_EXIT_INTERNAL_ERROR exit: the kernel filled `internal`.
                let ie = unsafe { (*run).__bindgen_anon_1.internal };
                let n = (ie.ndata as usize).min(ie.data.len());
                Outcome::Internal(format!(
                    "KVM internal error (suberror {}{}, data {:x?})",
                    ie.suberror,
                    match ie.suberror {
                        1 => ": instruction emulation failed",
                        2 => ": simultaneous exceptions",
                        3 => ": delivery event",
                        _ => "",
                    },
                    &ie.data[..n]
                ))
            }
            KvmExit::FailEntry(reason, cpu) => Outcome::Internal(format!(
                "KVM entry failed (hardware reason {reason:#x} on host cpu {cpu})"
            )),
            other => Outcome::Internal(format!("unhandled KVM exit {other:?}")),
        })
    }

    fn get_state(&mut self) -> Result<CpuState, AccelError> {
        let mut s = CpuState::default();
        state::from_regs(&mut s, &self.fd.get_regs().map_err(host("KVM_GET_REGS"))?);
        state::from_sregs(&mut s, &self.fd.get_sregs().map_err(host("KVM_GET_SREGS"))?);
        state::from_fpu(&mut s, &self.fd.get_fpu().map_err(host("KVM_GET_FPU"))?);
        if self.has_xsave {
            let x = self.fd.get_xsave().map_err(host("KVM_GET_XSAVE"))?;
            state::fx_from_xsave(&mut s, &x);
        }
        if self.has_debugregs {
            let d = self
                .fd
                .get_debug_regs()
                .map_err(host("KVM_GET_DEBUGREGS"))?;
            state::from_debugregs(&mut s, &d);
        }
        if self.has_events {
            let e = self
                .fd
                .get_vcpu_events()
                .map_err(host("KVM_GET_VCPU_EVENTS"))?;
            state::from_events(&mut s, &e);
        }
        if self.has_xcrs {
            let x = self.fd.get_xcrs().map_err(host("KVM_GET_XCRS"))?;
            if let Some(x0) = x.xcrs[..(x.nr_xcrs as usize).min(x.xcrs.len())]
                .iter()
                .find(|x| x.xcr == 0)
            {
                s.xcr0 = x0.value;
            }
        }
        let entries: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|_| AccelError::Unsupported("too many MSRs".into()))?;
        let n = self.fd.get_msrs(&mut msrs).map_err(host("KVM_GET_MSRS"))?;
        for e in &msrs.as_slice()[..n] {
            s.set_msr(e.index, e.data);
        }
        let mp = self.fd.get_mp_state().map_err(host("KVM_GET_MP_STATE"))?;
        s.halted = mp.mp_state == KVM_MP_STATE_HALTED;
        Ok(s)
    }

    fn put_state(&mut self, s: &CpuState) -> Result<(), AccelError> {
        self.fd
            .set_sregs(&state::to_sregs(s))
            .map_err(host("KVM_SET_SREGS"))?;
        self.fd
            .set_regs(&state::to_regs(s))
            .map_err(host("KVM_SET_REGS"))?;
        self.fd
            .set_fpu(&state::to_fpu(s))
            .map_err(host("KVM_SET_FPU"))?;
        if self.has_xsave {
            let mut x = self.fd.get_xsave().map_err(host("KVM_GET_XSAVE"))?;
            state::fx_into_xsave(s, &mut x);
            // SAFETY: `x` is a whole kvm_xsave the kernel gave us for this vCPU, changed only in
            // its legacy region and XSTATE_BV, so its size and layout are what KVM expects.
            unsafe { self.fd.set_xsave(&x) }.map_err(host("KVM_SET_XSAVE"))?;
        }
        if self.has_debugregs {
            self.fd
                .set_debug_regs(&state::to_debugregs(s))
                .map_err(host("KVM_SET_DEBUGREGS"))?;
        }
        if self.has_events {
            self.fd
                .set_vcpu_events(&state::to_events(s))
                .map_err(host("KVM_SET_VCPU_EVENTS"))?;
        }
        if self.has_xcrs {
            let mut x = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            x.xcrs[0].xcr = 0;
            x.xcrs[0].value = s.xcr0;
            self.fd.set_xcrs(&x).map_err(host("KVM_SET_XCRS"))?;
        }
        let entries: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .filter_map(|&index| {
                s.msr(index).map(|data| kvm_msr_entry {
                    index,
                    data,
                    ..Default::default()
                })
            })
            .collect();
        let msrs = Msrs::from_entries(&entries)
            .map_err(|_| AccelError::Unsupported("too many MSRs".into()))?;
        let n = self.fd.set_msrs(&msrs).map_err(host("KVM_SET_MSRS"))?;
        if n != entries.len() {
            return Err(AccelError::Unsupported(format!(
                "KVM refused MSR {:#x}",
                entries[n].index
            )));
        }
        let mp = kvm_mp_state {
            mp_state: if s.halted {
                KVM_MP_STATE_HALTED
            } else {
                KVM_MP_STATE_RUNNABLE
            },
        };
        self.fd.set_mp_state(mp).map_err(host("KVM_SET_MP_STATE"))?;
        Ok(())
    }
}

impl Vcpu for KvmVcpu {
    fn run(&mut self) -> Result<VcpuExit, AccelError> {
        let kicker = self.kicker.clone();
        let _bound = kicker.bind_current_thread();
        loop {
            if self.bus.control.stop_requested() {
                return Ok(VcpuExit::Stopped);
            }
            self.inject_interrupt()?;
            match self.run_once()? {
                Outcome::Continue => {}
                Outcome::Return(exit) => return Ok(exit),
                Outcome::Internal(reason) => {
                    let dump = match self.get_state() {
                        Ok(s) => s.dump(),
                        Err(e) => format!("(registers unavailable: {e})"),
                    };
                    return Err(AccelError::GuestStuck {
                        reason: format!("vCPU {}: {reason}", self.index),
                        dump,
                    });
                }
            }
        }
    }

    fn state(&mut self) -> Result<CpuState, AccelError> {
        self.get_state()
    }

    fn set_state(&mut self, state: &CpuState) -> Result<(), AccelError> {
        self.put_state(state)
    }

    fn set_breakpoints(&mut self, addrs: &[u64]) -> Result<(), AccelError> {
        if addrs.len() > MAX_HW_BREAKPOINTS {
            return Err(AccelError::Unsupported(format!(
                "{} breakpoints asked, KVM has {MAX_HW_BREAKPOINTS}",
                addrs.len()
            )));
        }
        let mut debug = kvm_guest_debug::default();
        if !addrs.is_empty() {
            debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
            // DR7 as QEMU builds it: GE and the reserved bit 10, then per breakpoint the global
            // enable bit with R/W = 00 (instruction) and LEN = 00.
            let mut dr7 = 0x600u64;
            for (i, &addr) in addrs.iter().enumerate() {
                debug.arch.debugreg[i] = addr;
                dr7 |= 2 << (2 * i);
            }
            debug.arch.debugreg[7] = dr7;
        }
        self.fd
            .set_guest_debug(&debug)
            .map_err(host("KVM_SET_GUEST_DEBUG"))
    }
}

/// Hardware instruction breakpoints KVM can place for the host (DR0-DR3).
const MAX_HW_BREAKPOINTS: usize = 4;

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        self.kicker.detach();
    }
}
