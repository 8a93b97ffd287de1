//! Device interrupt lines into KVM's in-kernel irqchip (PIC pair + IOAPIC).

use std::sync::Arc;

use kvm_bindings::{kvm_irqchip, kvm_msi, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE};
use kvm_ioctls::VmFd;
use tandem_softmmu::{IrqSink, MsiSink};

use crate::error::AccelError;

/// Forwards line levels to KVM_IRQ_LINE.
pub struct KvmIrqSink {
    vm: Arc<VmFd>,
}

impl KvmIrqSink {
    /// A sink for `vm`'s in-kernel irqchip.
    pub fn new(vm: Arc<VmFd>) -> Self {
        Self { vm }
    }
}

impl IrqSink for KvmIrqSink {
    fn set_irq(&self, gsi: u32, level: bool) {
        // KVM_IRQ_LINE only fails for GSIs the irqchip has no route for: a board wiring bug,
        // not a guest action, and not worth taking the machine down over.
        let _ = self.vm.set_irq_line(gsi, level);
    }
}

/// Delivers MSI and MSI-X messages to the in-kernel local APICs with KVM_SIGNAL_MSI.
pub struct KvmMsiSink {
    vm: Arc<VmFd>,
}

impl KvmMsiSink {
    /// A sink for `vm`'s in-kernel local APICs.
    pub fn new(vm: Arc<VmFd>) -> Self {
        Self { vm }
    }
}

impl MsiSink for KvmMsiSink {
    fn send_msi(&self, address: u64, data: u32) {
        let msi = kvm_msi {
            address_lo: address as u32,
            address_hi: (address >> 32) as u32,
            data,
            ..Default::default()
        };
        // Fails only for a message no APIC accepts (or KVM without an irqchip, which never
        // gets here): the guest programmed a vector to nowhere, as on hardware a lost message.
        let _ = self.vm.signal_msi(msi);
    }
}

/// Returns the in-kernel PICs to their power-on state (as after a hardware reset: masked and
/// uninitialised, waiting for ICW1). The PIT keeps counting: a guest reprograms it anyway.
pub fn reset(vm: &VmFd) -> Result<(), AccelError> {
    for chip_id in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE] {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.get_irqchip(&mut chip).map_err(|e| AccelError::Host {
            op: "KVM_GET_IRQCHIP",
            source: std::io::Error::from_raw_os_error(e.errno()),
        })?;
        // SAFETY: chip_id selects the `pic` member of the union.
        let pic = unsafe { &mut chip.chip.pic };
        let elcr_mask = pic.elcr_mask;
        *pic = Default::default();
        pic.elcr_mask = elcr_mask;
        pic.imr = 0xff;
        vm.set_irqchip(&chip).map_err(|e| AccelError::Host {
            op: "KVM_SET_IRQCHIP",
            source: std::io::Error::from_raw_os_error(e.errno()),
        })?;
    }
    Ok(())
}
