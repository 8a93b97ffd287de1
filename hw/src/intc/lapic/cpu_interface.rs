//! The local APIC as the engine running its CPU sees it ([`LocalApic`]): the register page,
//! the APIC MSRs, CR8, the events for the CPU and the timer a halted CPU sleeps on.
//!
//! The xAPIC page is decoded only while the APIC is globally enabled and not in x2APIC mode
//! (SDM Vol. 3A 11.4.3, 11.12.1); elsewhere the CPU's accesses go to the system bus.

use tandem_softmmu::irq::{CpuEvents, LocalApic, LocalApicMsrError};

use super::{ApicEvents, ApicMsrError, UserspaceLapic};

impl From<ApicEvents> for CpuEvents {
    fn from(e: ApicEvents) -> Self {
        Self {
            nmi: e.nmi,
            smi: e.smi,
            init: e.init,
            sipi: e.sipi,
        }
    }
}

impl From<ApicMsrError> for LocalApicMsrError {
    fn from(e: ApicMsrError) -> Self {
        match e {
            ApicMsrError::NotApic(index) => Self::NotApic(index),
            ApicMsrError::NotX2apic(index)
            | ApicMsrError::Access(index)
            | ApicMsrError::Value { index, .. } => Self::Refused(index),
        }
    }
}

impl LocalApic for UserspaceLapic {
    fn mmio_page(&self) -> Option<u64> {
        self.with_lapic(|l, _| (l.hw_enabled() && !l.x2apic()).then(|| l.mmio_base()))
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        UserspaceLapic::mmio_read(self, offset, data);
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) {
        UserspaceLapic::mmio_write(self, offset, data);
    }

    fn read_msr(&self, index: u32) -> Result<u64, LocalApicMsrError> {
        UserspaceLapic::read_msr(self, index).map_err(Into::into)
    }

    fn write_msr(&self, index: u32, value: u64) -> Result<(), LocalApicMsrError> {
        UserspaceLapic::write_msr(self, index, value).map_err(Into::into)
    }

    fn cr8(&self) -> u64 {
        self.with_lapic(|l, _| l.cr8())
    }

    fn set_cr8(&self, value: u64) {
        self.with_lapic(|l, _| l.set_cr8(value));
    }

    fn take_events(&self) -> CpuEvents {
        UserspaceLapic::take_events(self).into()
    }

    fn now_ns(&self) -> u64 {
        UserspaceLapic::now_ns(self)
    }

    fn next_deadline_ns(&self) -> Option<u64> {
        UserspaceLapic::next_deadline_ns(self)
    }

    fn tick(&self) -> Option<u64> {
        UserspaceLapic::tick(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tandem_softmmu::irq::{LocalApic, LocalApicMsrError};
    use tandem_softmmu::{InterruptAcknowledge, InterruptPin};

    use crate::intc::lapic::{Lapic, UserspaceLapic, APIC_DEFAULT_BASE, MSR_APIC_BASE};
    use crate::timer::clock::ManualClock;

    fn lapic() -> (Arc<UserspaceLapic>, Arc<InterruptPin>, Arc<ManualClock>) {
        let pin = InterruptPin::new();
        let clock = Arc::new(ManualClock::new());
        (
            UserspaceLapic::new(Lapic::new(0, true), pin.clone(), clock.clone()),
            pin,
            clock,
        )
    }

    #[test]
    fn the_acknowledge_side_is_found_as_a_local_apic() {
        let (l, _, _) = lapic();
        let ack: Arc<dyn InterruptAcknowledge> = l;
        assert!(ack.local_apic().is_some());
    }

    #[test]
    fn the_page_is_decoded_only_in_xapic_mode() {
        let (l, _, _) = lapic();
        assert_eq!(l.mmio_page(), Some(APIC_DEFAULT_BASE));
        // Moved, then x2APIC (EXTD | EN), then disabled (from x2APIC through 0).
        let moved = 0x8000_0000 | 1 << 11 | 1 << 8;
        LocalApic::write_msr(l.as_ref(), MSR_APIC_BASE, moved).unwrap();
        assert_eq!(l.mmio_page(), Some(0x8000_0000));
        LocalApic::write_msr(l.as_ref(), MSR_APIC_BASE, moved | 1 << 10).unwrap();
        assert_eq!(l.mmio_page(), None);
        LocalApic::write_msr(l.as_ref(), MSR_APIC_BASE, 0).unwrap();
        assert_eq!(l.mmio_page(), None);
    }

    #[test]
    fn msr_errors_say_whose_msr_it_is() {
        let (l, _, _) = lapic();
        assert_eq!(
            LocalApic::read_msr(l.as_ref(), 0x10),
            Err(LocalApicMsrError::NotApic(0x10))
        );
        // An x2APIC register outside x2APIC mode, a reserved APIC-base bit.
        assert_eq!(
            LocalApic::read_msr(l.as_ref(), 0x802),
            Err(LocalApicMsrError::Refused(0x802))
        );
        assert_eq!(
            LocalApic::write_msr(l.as_ref(), MSR_APIC_BASE, 1),
            Err(LocalApicMsrError::Refused(MSR_APIC_BASE))
        );
    }

    #[test]
    fn cr8_is_tpr_and_the_timer_raises_the_pin() {
        let (l, pin, clock) = lapic();
        l.set_cr8(0xa);
        assert_eq!(l.cr8(), 0xa);
        assert_eq!(l.mmio_read_u32(0x80), 0xa0);
        l.set_cr8(0);
        // Software enable, timer vector 0x40 one-shot, divide by 1, 1000 ns.
        for (reg, v) in [(0xf0, 0x1ff), (0x320, 0x40), (0x3e0, 0xb), (0x380, 1000)] {
            LocalApic::mmio_write(l.as_ref(), reg, &u32::to_le_bytes(v));
        }
        assert_eq!(l.next_deadline_ns(), Some(1000));
        clock.set(999);
        assert_eq!(LocalApic::tick(l.as_ref()), Some(1000));
        assert!(!pin.is_raised());
        clock.set(1000);
        assert_eq!(LocalApic::tick(l.as_ref()), None);
        assert!(pin.is_raised());
        assert_eq!(l.acknowledge(), Some(0x40));
        assert!(LocalApic::take_events(l.as_ref()) == Default::default());
    }

    impl UserspaceLapic {
        fn mmio_read_u32(&self, offset: u64) -> u32 {
            let mut d = [0u8; 4];
            LocalApic::mmio_read(self, offset, &mut d);
            u32::from_le_bytes(d)
        }
    }
}
