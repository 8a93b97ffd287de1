//! Message-signalled interrupts (PCI MSI and MSI-X) on the APIC bus: a device's DWORD write
//! to 0xFEExxxxx becomes the same [`ApicMessage`] an I/O APIC redirection entry sends (SDM
//! Vol. 3A 11.11 "Message Signalled Interrupts"), so the JIT's local APICs take it as KVM's
//! would.

use tandem_softmmu::MsiSink;

use crate::intc::lapic::{ApicBus, ApicMessage, ApicRouter, DeliveryMode, DestMode, TriggerMode};

/// The message an MSI write of `data` to `address` sends, or None when it is no interrupt
/// (an address outside 0xFEExxxxx, or a reserved delivery mode).
pub fn message(address: u64, data: u32) -> Option<ApicMessage> {
    if address >> 20 != 0xfee {
        return None;
    }
    Some(ApicMessage {
        // Bits 19:12 are the destination ID (8 bits: no interrupt remapping, no x2APIC IDs
        // above 255, as on QEMU's pc without an IOMMU).
        dest: ((address >> 12) & 0xff) as u32,
        dest_mode: if address & (1 << 2) != 0 {
            DestMode::Logical
        } else {
            DestMode::Physical
        },
        delivery_mode: DeliveryMode::from_bits((data >> 8) & 7)?,
        vector: data as u8,
        // An edge-triggered message always asserts; the level bit only matters for level ones.
        level: data & (1 << 15) == 0 || data & (1 << 14) != 0,
        trigger: if data & (1 << 15) != 0 {
            TriggerMode::Level
        } else {
            TriggerMode::Edge
        },
    })
}

impl MsiSink for ApicRouter {
    fn send_msi(&self, address: u64, data: u32) {
        if let Some(m) = message(address, data) {
            self.send(m.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_linux_messages() {
        // Linux's physical fixed edge message to APIC 0, vector 0x22.
        let m = message(0xfee0_0000, 0x0022).unwrap();
        assert_eq!((m.dest, m.vector), (0, 0x22));
        assert_eq!(
            (m.dest_mode, m.delivery_mode, m.trigger),
            (DestMode::Physical, DeliveryMode::Fixed, TriggerMode::Edge)
        );
        assert!(m.level);
        let m = message(0xfee0_3004, 0x0141).unwrap();
        assert_eq!(
            (m.dest, m.dest_mode, m.delivery_mode),
            (3, DestMode::Logical, DeliveryMode::LowestPriority)
        );
        assert!(message(0xfec0_0000, 0x22).is_none());
        assert!(message(0xfee0_0000, 0x0322).is_none());
    }
}
