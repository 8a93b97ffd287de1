//! The PC's GSI routing for KVM's in-kernel irqchip, installed with KVM_SET_GSI_ROUTING.
//!
//! KVM's default table routes GSI n to I/O APIC pin n, so its PIT (which raises GSI 0) lands on
//! pin 0. The board's MADT says, as on every PC, that ISA IRQ 0 is GSI 2 (an interrupt source
//! override), and a guest that believes it (Linux does) programs pin 2 for its timer and never
//! hears from the PIT. This table is QEMU's (`kvm_pc_setup_irq_routing`): GSIs 0-15 reach the
//! 8259 pair and the I/O APIC both, GSI 0 on I/O APIC pin 2, and GSI 2 nowhere (it is the
//! 8259's cascade input, and pin 2 belongs to GSI 0); GSIs 16-23 reach the I/O APIC only.
//! The table maps pins back to GSIs too, which is how the in-kernel PIT sees its interrupt
//! acknowledged and masked through I/O APIC pin 2.

use kvm_bindings::{
    kvm_irq_routing_entry, kvm_irq_routing_entry__bindgen_ty_1, kvm_irq_routing_irqchip,
    KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQ_ROUTING_IRQCHIP,
};
use kvm_ioctls::{Cap, VmFd};

use crate::error::AccelError;

/// Inputs of KVM's in-kernel I/O APIC (KVM_IOAPIC_NUM_PINS).
pub const IOAPIC_PINS: u32 = 24;
/// ISA IRQs, which the 8259 pair receives as well as the I/O APIC.
const ISA_IRQS: u32 = 16;
/// The master 8259's input the slave is cascaded on: no device's line.
const CASCADE_IRQ: u32 = 2;
/// The ISA IRQ of the PIT, which the MADT overrides to [`PIT_IOAPIC_PIN`].
const PIT_IRQ: u32 = 0;
/// The I/O APIC pin of the PIT.
const PIT_IOAPIC_PIN: u32 = 2;

/// An interrupt controller input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Input 0-7 of the master 8259.
    PicMaster(u32),
    /// Input 0-7 of the slave 8259 (ISA IRQ 8-15).
    PicSlave(u32),
    /// Input 0-23 of the I/O APIC.
    Ioapic(u32),
}

/// One route: raising `gsi` (KVM_IRQ_LINE, or the in-kernel PIT for GSI 0) drives `pin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The global system interrupt.
    pub gsi: u32,
    /// Where it goes.
    pub pin: Pin,
}

/// The routes of a PC whose MADT overrides ISA IRQ 0 to GSI 2 and identity-maps the rest.
pub fn pc_routes() -> Vec<Route> {
    let pics = (0..ISA_IRQS)
        .filter(|&irq| irq != CASCADE_IRQ)
        .map(|irq| Route {
            gsi: irq,
            pin: if irq < 8 {
                Pin::PicMaster(irq)
            } else {
                Pin::PicSlave(irq - 8)
            },
        });
    let ioapic = (0..IOAPIC_PINS).filter_map(|gsi| {
        let pin = match gsi {
            PIT_IRQ => PIT_IOAPIC_PIN,
            PIT_IOAPIC_PIN => return None,
            _ => gsi,
        };
        Some(Route {
            gsi,
            pin: Pin::Ioapic(pin),
        })
    });
    pics.chain(ioapic).collect()
}

/// The kernel's form of `route`.
fn entry(route: Route) -> kvm_irq_routing_entry {
    let (irqchip, pin) = match route.pin {
        Pin::PicMaster(pin) => (KVM_IRQCHIP_PIC_MASTER, pin),
        Pin::PicSlave(pin) => (KVM_IRQCHIP_PIC_SLAVE, pin),
        Pin::Ioapic(pin) => (KVM_IRQCHIP_IOAPIC, pin),
    };
    kvm_irq_routing_entry {
        gsi: route.gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        u: kvm_irq_routing_entry__bindgen_ty_1 {
            irqchip: kvm_irq_routing_irqchip { irqchip, pin },
        },
        ..Default::default()
    }
}

/// Replaces KVM's default routing with [`pc_routes`]; call after KVM_CREATE_IRQCHIP.
pub fn install(vm: &VmFd) -> Result<(), AccelError> {
    // Every x86 KVM since Linux 2.6.30 has it; without it the MADT would lie to the guest.
    if !vm.check_extension(Cap::IrqRouting) {
        return Err(AccelError::Unavailable {
            name: "kvm",
            reason: "KVM_CAP_IRQ_ROUTING is missing: the PIT cannot be routed to I/O APIC pin 2 \
                     as the MADT says (use -machine pc,kernel-irqchip=off)"
                .into(),
        });
    }
    let entries: Vec<_> = pc_routes().into_iter().map(entry).collect();
    let table = KvmIrqRouting::from_entries(&entries).map_err(|e| {
        AccelError::Unsupported(format!("{} GSI routes for KVM: {e:?}", entries.len()))
    })?;
    vm.set_gsi_routing(&table)
        .map_err(super::host("KVM_SET_GSI_ROUTING"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(gsi: u32) -> Vec<Pin> {
        pc_routes()
            .into_iter()
            .filter(|r| r.gsi == gsi)
            .map(|r| r.pin)
            .collect()
    }

    #[test]
    fn the_pit_goes_to_the_master_8259_and_ioapic_pin_2() {
        assert_eq!(targets(0), [Pin::PicMaster(0), Pin::Ioapic(2)]);
    }

    #[test]
    fn gsi_2_is_routed_nowhere_and_ioapic_pin_0_is_unused() {
        assert!(targets(2).is_empty());
        assert!(pc_routes().iter().all(|r| r.pin != Pin::Ioapic(0)));
    }

    #[test]
    fn other_isa_irqs_reach_their_8259_input_and_the_same_ioapic_pin() {
        assert_eq!(targets(4), [Pin::PicMaster(4), Pin::Ioapic(4)]);
        assert_eq!(targets(9), [Pin::PicSlave(1), Pin::Ioapic(9)]);
        assert_eq!(targets(15), [Pin::PicSlave(7), Pin::Ioapic(15)]);
    }

    #[test]
    fn gsis_16_to_23_reach_the_ioapic_only() {
        for gsi in 16..IOAPIC_PINS {
            assert_eq!(targets(gsi), [Pin::Ioapic(gsi)]);
        }
        assert!(targets(IOAPIC_PINS).is_empty());
    }

    #[test]
    fn each_pin_has_one_gsi() {
        // KVM maps an acknowledged pin back to one GSI (the PIT's ack notifier relies on it).
        let routes = pc_routes();
        for (i, r) in routes.iter().enumerate() {
            assert!(routes[i + 1..].iter().all(|o| o.pin != r.pin), "{r:?}");
        }
        assert_eq!(routes.len(), 15 + 23);
    }

    #[test]
    fn entries_carry_the_irqchip_and_pin() {
        let e = entry(Route {
            gsi: 0,
            pin: Pin::Ioapic(2),
        });
        assert_eq!((e.gsi, e.type_, e.flags), (0, KVM_IRQ_ROUTING_IRQCHIP, 0));
        // SAFETY: entry() builds irqchip routes, whose union member is `irqchip`.
        let chip = unsafe { e.u.irqchip };
        assert_eq!((chip.irqchip, chip.pin), (KVM_IRQCHIP_IOAPIC, 2));
    }
}
