//! The KVM engine: guest code runs on the host CPU through /dev/kvm.
//!
//! One [`KvmAccelerator`] is one KVM VM: memory slots over softmmu's RAM, the in-kernel irqchip
//! and PIT by default (`kernel-irqchip=off` wires the board's userspace PIC and PIT instead and
//! injects interrupts with KVM_INTERRUPT). Each [`KvmVcpu`](vcpu::KvmVcpu) handles its own exits,
//! dispatching port and MMIO accesses to the shared buses.
//!
//! Known warts: on a reset the in-kernel irqchip and PIT are reset to their power-on state by
//! re-setting zeroed state only for the PIC/IOAPIC registers KVM exposes; there is no dirty-log
//! or ROM-write handling yet.

mod cpuid;
mod exits;
mod gsi_routing;
mod irqchip;
mod kick;
mod state;
pub mod vcpu;

use std::sync::Arc;

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use tandem_softmmu::{Doorbell, IrqSink, MsiSink};

use crate::accelerator::{Accelerator, AcceleratorConfig, MachineBus, Vcpu};
use crate::error::AccelError;

pub use vcpu::KvmVcpu;

fn host(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> AccelError {
    move |e| AccelError::Host {
        op,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// Facts about the host's KVM that decide what tests and guests can do.
#[derive(Debug, Clone)]
pub struct KvmHostInfo {
    /// The PVM backend (kvm_pvm) rather than VMX/SVM: CPL0 guest code is emulated.
    pub pvm: bool,
}

/// Probes /dev/kvm without creating a VM; Err says why KVM cannot be used.
pub fn probe() -> Result<KvmHostInfo, String> {
    Kvm::new().map_err(|e| format!("/dev/kvm: {e}"))?;
    Ok(KvmHostInfo {
        pvm: std::path::Path::new("/sys/module/kvm_pvm").exists(),
    })
}

/// One KVM virtual machine.
pub struct KvmAccelerator {
    kvm: Kvm,
    vm: Arc<VmFd>,
    config: AcceleratorConfig,
    irq: Option<Arc<irqchip::KvmIrqSink>>,
}

impl KvmAccelerator {
    /// Opens /dev/kvm and creates the VM (with the in-kernel irqchip and PIT unless disabled).
    pub fn new(config: AcceleratorConfig) -> Result<Self, AccelError> {
        let kvm = Kvm::new().map_err(|e| AccelError::Unavailable {
            name: "kvm",
            reason: format!("cannot open /dev/kvm: {e}"),
        })?;
        if kvm.get_api_version() != 12 {
            return Err(AccelError::Unavailable {
                name: "kvm",
                reason: format!("KVM API version {} (12 expected)", kvm.get_api_version()),
            });
        }
        let vm = kvm.create_vm().map_err(host("KVM_CREATE_VM"))?;
        // Where VMX needs them: the TSS and identity map pages in the 4 GiB hole, as QEMU puts
        // them. Backends that do not use them (PVM, SVM) accept or ignore the calls.
        if vm.check_extension(Cap::SetTssAddr) {
            vm.set_tss_address(0xfffb_d000)
                .map_err(host("KVM_SET_TSS_ADDR"))?;
        }
        if vm.check_extension(Cap::SetIdentityMapAddr) {
            vm.set_identity_map_address(0xfffb_c000)
                .map_err(host("KVM_SET_IDENTITY_MAP_ADDR"))?;
        }
        let irq = if config.kernel_irqchip {
            vm.create_irq_chip().map_err(host("KVM_CREATE_IRQCHIP"))?;
            // KVM's default routing puts the PIT on I/O APIC pin 0; the MADT says pin 2.
            gsi_routing::install(&vm)?;
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit).map_err(host("KVM_CREATE_PIT2"))?;
            None
        } else {
            None
        };
        let vm = Arc::new(vm);
        let irq = if config.kernel_irqchip {
            Some(Arc::new(irqchip::KvmIrqSink::new(vm.clone())))
        } else {
            irq
        };
        Ok(Self {
            kvm,
            vm,
            config,
            irq,
        })
    }
}

impl Accelerator for KvmAccelerator {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn irq_sink(&self) -> Option<Arc<dyn IrqSink>> {
        self.irq.clone().map(|s| s as Arc<dyn IrqSink>)
    }

    fn register_doorbell(&self, gpa: u64, bell: &Doorbell) -> Result<(), AccelError> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let fd = bell.try_clone().map_err(|source| AccelError::Host {
            op: "dup of a doorbell",
            source,
        })?;
        // SAFETY: `fd` is a descriptor of ours that nothing else owns; EventFd takes it over.
        let event = unsafe {
            vmm_sys_util::eventfd::EventFd::from_raw_fd(
                std::os::fd::OwnedFd::from(fd).into_raw_fd(),
            )
        };
        self.vm
            .register_ioevent(
                &event,
                &kvm_ioctls::IoEventAddress::Mmio(gpa),
                kvm_ioctls::NoDatamatch,
            )
            .map_err(host("KVM_IOEVENTFD"))?;
        // KVM holds its own reference to the eventfd: ours may go.
        Ok(())
    }

    fn msi_sink(&self) -> Option<Arc<dyn MsiSink>> {
        self.config
            .kernel_irqchip
            .then(|| Arc::new(irqchip::KvmMsiSink::new(self.vm.clone())) as Arc<dyn MsiSink>)
    }

    fn attach(&mut self, bus: &MachineBus) -> Result<(), AccelError> {
        for (slot, m) in bus.memory.memory_slots().iter().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: if m.readonly { KVM_MEM_READONLY } else { 0 },
                guest_phys_addr: m.gpa,
                memory_size: m.len,
                userspace_addr: m.host as u64,
            };
            // SAFETY: the slot's host memory is owned by the address space, which the machine
            // keeps alive for as long as this VM exists (MachineBus holds an Arc to it).
            unsafe { self.vm.set_user_memory_region(region) }
                .map_err(host("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }

    fn create_vcpu(&self, index: u32, bus: &MachineBus) -> Result<Box<dyn Vcpu>, AccelError> {
        let vcpu = KvmVcpu::new(&self.kvm, &self.vm, index, bus, &self.config)?;
        Ok(Box::new(vcpu))
    }

    fn reset(&self) -> Result<(), AccelError> {
        if self.config.kernel_irqchip {
            irqchip::reset(&self.vm)?;
        }
        Ok(())
    }
}
