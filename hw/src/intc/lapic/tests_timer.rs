//! Timer tests (SDM Vol. 3A 11.5.4: divide configuration, one-shot, periodic, TSC-deadline)
//! and the shared APIC with its router and the PIC behind LINT0.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tandem_softmmu::{InterruptAcknowledge, InterruptPin, IrqSink};

use super::*;
use crate::intc::pic8259::UserspacePic;
use crate::timer::clock::ManualClock;

const TIMER_VECTOR: u32 = 0xec;

fn enabled() -> Lapic {
    let mut l = Lapic::new(0, true);
    l.write_reg(0xf0, 0x1ff, 0);
    l
}

/// Arms the timer at time `t`: LVT `lvt`, divide register `div`, initial count `count`.
fn arm(l: &mut Lapic, t: u64, lvt: u32, div: u32, count: u32) {
    l.write_reg(0x320, lvt, t);
    l.write_reg(0x3e0, div, t);
    l.write_reg(0x380, count, t);
}

#[test]
fn one_shot_counts_down_at_each_divisor() {
    // (divide register, divisor)
    for (div, n) in [(0b1011u32, 1u64), (0b0000, 2), (0b0011, 16), (0b1010, 128)] {
        let mut l = enabled();
        arm(&mut l, 1000, TIMER_VECTOR, div, 100);
        assert_eq!(l.read_reg(0x390, 1000), 100, "divide by {n}");
        assert_eq!(l.read_reg(0x390, 1000 + 30 * n), 70, "divide by {n}");
        assert_eq!(l.read_reg(0x390, 1000 + 100 * n - 1), 1, "divide by {n}");
        assert_eq!(l.next_deadline_ns(), Some(1000 + 100 * n));
        assert_eq!(l.tick(1000 + 100 * n - 1), Some(1000 + 100 * n));
        assert!(!l.irr().get(TIMER_VECTOR as u8));
        assert_eq!(l.tick(1000 + 100 * n), None, "one-shot disarms");
        assert!(l.irr().get(TIMER_VECTOR as u8), "divide by {n}");
        assert_eq!(l.read_reg(0x390, 1000 + 100 * n + 5), 0, "stays at zero");
    }
}

#[test]
fn periodic_reloads_and_coalesces_late_ticks() {
    let mut l = enabled();
    arm(&mut l, 0, TIMER_VECTOR | (1 << 17), 0b1011, 200_000);
    assert_eq!(l.timer_mode(), TimerMode::Periodic);
    assert_eq!(l.tick(200_000), Some(400_000));
    assert_eq!(l.acknowledge(), Some(TIMER_VECTOR as u8));
    l.eoi();
    assert_eq!(l.read_reg(0x390, 250_000), 150_000, "reloaded at zero");
    // Three periods late: one interrupt, next on the period grid.
    assert_eq!(l.tick(1_050_000), Some(1_200_000));
    assert_eq!(l.acknowledge(), Some(TIMER_VECTOR as u8));
    assert_eq!(l.acknowledge(), Some(0xff), "only one: spurious next");
}

#[test]
fn tiny_periods_are_spaced_for_the_host() {
    let mut l = enabled();
    arm(&mut l, 0, TIMER_VECTOR | (1 << 17), 0b1011, 10);
    assert_eq!(l.tick(10), Some(10 + MIN_PERIOD_NS));
    assert_eq!(l.read_reg(0x390, 13), 7, "the count keeps the true period");
}

#[test]
fn masked_timer_still_counts_but_interrupts_nobody() {
    let mut l = enabled();
    arm(
        &mut l,
        0,
        TIMER_VECTOR | (1 << 16) | (1 << 17),
        0b1011,
        200_000,
    );
    assert_eq!(l.next_deadline_ns(), None, "nothing to wake for");
    assert_eq!(l.read_reg(0x390, 450_000), 150_000);
    assert_eq!(l.tick(450_000), None);
    assert!(!l.has_interrupt());
    // Unmasking does not deliver the expiries that passed while masked.
    l.write_reg(0x320, TIMER_VECTOR | (1 << 17), 450_000);
    assert!(!l.has_interrupt());
    assert_eq!(l.next_deadline_ns(), Some(600_000));
}

#[test]
fn tsc_deadline_fires_once() {
    let mut l = enabled();
    l.set_tsc_clock(TscClock {
        hz: 2_000_000_000,
        tsc_at_zero: 1000,
    });
    l.write_msr(MSR_TSC_DEADLINE, 5000, 0).unwrap();
    assert_eq!(
        l.read_msr(MSR_TSC_DEADLINE, 0),
        Ok(0),
        "ignored outside deadline mode"
    );
    l.write_reg(0x320, TIMER_VECTOR | (2 << 17), 0);
    l.write_reg(0x380, 100, 0);
    assert_eq!(
        l.read_reg(0x380, 0),
        0,
        "initial count ignored in deadline mode"
    );
    l.write_msr(MSR_TSC_DEADLINE, 5000, 0).unwrap();
    assert_eq!(l.read_msr(MSR_TSC_DEADLINE, 0), Ok(5000));
    // (5000 - 1000) ticks at 2 GHz = 2000 ns.
    assert_eq!(l.next_deadline_ns(), Some(2000));
    assert_eq!(l.tick(1999), Some(2000));
    assert_eq!(l.tick(2000), None);
    assert_eq!(
        l.read_msr(MSR_TSC_DEADLINE, 0),
        Ok(0),
        "cleared when it fires"
    );
    assert_eq!(l.acknowledge(), Some(TIMER_VECTOR as u8));
    assert_eq!(l.tick(1_000_000), None);
    assert!(!l.irr().get(TIMER_VECTOR as u8), "fires once");
    l.write_msr(MSR_TSC_DEADLINE, 9000, 0).unwrap();
    l.write_reg(0x320, TIMER_VECTOR, 0);
    assert_eq!(l.next_deadline_ns(), None, "leaving deadline mode disarms");
}

fn shared(id: u32, clock: &Arc<ManualClock>) -> (Arc<UserspaceLapic>, Arc<InterruptPin>) {
    let pin = InterruptPin::new();
    let lapic = UserspaceLapic::new(Lapic::new(id, id == 0), pin.clone(), clock.clone());
    lapic.mmio_write(0xf0, &0x1ffu32.to_le_bytes());
    (lapic, pin)
}

#[test]
fn shared_timer_with_manual_clock_raises_the_pin() {
    let clock = Arc::new(ManualClock::new());
    let (lapic, pin) = shared(0, &clock);
    let rearmed = Arc::new(AtomicU32::new(0));
    let r = rearmed.clone();
    lapic.set_timer_hook(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    clock.set(500);
    lapic.mmio_write(0x3e0, &0xbu32.to_le_bytes());
    lapic.mmio_write(0x320, &0x40u32.to_le_bytes());
    lapic.mmio_write(0x380, &1000u32.to_le_bytes());
    assert_eq!(rearmed.load(Ordering::SeqCst), 1, "the deadline moved once");
    assert_eq!(lapic.next_deadline_ns(), Some(1500));
    clock.advance(999);
    assert_eq!(lapic.tick(), Some(1500));
    assert!(!pin.is_raised());
    clock.advance(1);
    assert_eq!(lapic.tick(), None);
    assert!(pin.is_raised());
    assert_eq!(lapic.acknowledge(), Some(0x40));
    assert!(!pin.is_raised());
    let mut d = [0u8; 4];
    lapic.mmio_read(0x100 + 0x20, &mut d);
    assert_eq!(u32::from_le_bytes(d), 1, "ISR bit 0x40");
}

#[test]
fn router_delivers_ipis_between_vcpus() {
    let clock = Arc::new(ManualClock::new());
    let (a, pin_a) = shared(0, &clock);
    let (b, pin_b) = shared(1, &clock);
    let router = ApicRouter::new(vec![a.clone(), b.clone()]);
    assert_eq!(router.lapics().len(), 2);
    let eoi = |l: &UserspaceLapic| l.mmio_write(0xb0, &0u32.to_le_bytes());
    // Fixed vector 0x50 to APIC 1.
    a.mmio_write(0x310, &0x0100_0000u32.to_le_bytes());
    a.mmio_write(0x300, &0x4050u32.to_le_bytes());
    assert!(pin_b.is_raised() && !pin_a.is_raised());
    assert_eq!(b.acknowledge(), Some(0x50));
    eoi(&b);
    // Self IPI.
    a.mmio_write(0x300, &0x4_4051u32.to_le_bytes());
    assert_eq!(a.acknowledge(), Some(0x51));
    eoi(&a);
    // All excluding self, from B.
    b.mmio_write(0x300, &0xc_4052u32.to_le_bytes());
    assert_eq!((a.has_interrupt(), b.has_interrupt()), (true, false));
    assert_eq!(a.acknowledge(), Some(0x52));
    eoi(&a);
    // All including self.
    b.mmio_write(0x300, &0x8_4054u32.to_le_bytes());
    assert!(a.has_interrupt() && b.has_interrupt());
    assert_eq!((a.acknowledge(), b.acknowledge()), (Some(0x54), Some(0x54)));
    eoi(&a);
    eoi(&b);
    // Lowest priority among both (physical broadcast): B has the lower TPR.
    a.mmio_write(0x80, &0x20u32.to_le_bytes());
    a.mmio_write(0x310, &0xff00_0000u32.to_le_bytes());
    a.mmio_write(0x300, &0x4153u32.to_le_bytes());
    assert!(b.has_interrupt() && !a.has_interrupt());
    // INIT then SIPI to B.
    a.mmio_write(0x310, &0x0100_0000u32.to_le_bytes());
    a.mmio_write(0x300, &0x4500u32.to_le_bytes());
    a.mmio_write(0x300, &0x4610u32.to_le_bytes());
    let ev = b.take_events();
    assert_eq!((ev.init, ev.sipi), (true, Some(0x10)));
    assert!(!b.has_interrupt(), "INIT cleared IRR");
}

#[test]
fn pic_behind_lint0_shares_the_cpu_pin() {
    let clock = Arc::new(ManualClock::new());
    let (lapic, pin) = shared(0, &clock);
    let pic_pin = InterruptPin::new();
    let pic = UserspacePic::new(pic_pin.clone());
    assert!(lapic.connect_extint(pic_pin, pic.clone()));
    for (off, v) in [(0u16, 0x11u8), (1, 0x20), (1, 4), (1, 1), (1, 0)] {
        pic.write(off, v);
    }
    pic.set_irq(1, true);
    assert!(
        pin.is_raised(),
        "the PIC's rising edge reaches the CPU pin via LINT0"
    );
    lapic.with_lapic(|l, _| l.set_irr(0x80, false));
    assert_eq!(
        lapic.acknowledge(),
        Some(0x80),
        "a deliverable APIC vector goes first"
    );
    assert_eq!(lapic.acknowledge(), Some(0x21), "then the PIC answers INTA");
    assert!(!pin.is_raised());
    // Mask LINT0: the PIC is cut off.
    lapic.mmio_write(0x350, &0x1_0700u32.to_le_bytes());
    pic.write(0, 0x20);
    pic.set_irq(3, true);
    assert!(!pin.is_raised());
    assert_eq!(
        lapic.acknowledge(),
        Some(0xff),
        "the APIC's spurious vector"
    );
    assert_eq!(pic.acknowledge(), Some(0x23), "IRQ3 still waits in the PIC");
}

#[test]
fn level_triggered_eoi_returns_to_the_ioapic() {
    use crate::intc::ioapic::UserspaceIoapic;
    let clock = Arc::new(ManualClock::new());
    let (lapic, pin) = shared(0, &clock);
    let router = ApicRouter::new(vec![lapic.clone()]);
    let bus: Arc<dyn ApicBus> = router.clone();
    let ioapic = UserspaceIoapic::new(&bus);
    assert!(router.connect_ioapic(ioapic.clone()));
    // Pin 9: vector 0x39, level, unmasked, physical destination 0.
    ioapic.with_ioapic(|io| io.write_reg(0x22, 0x8039).into_iter().collect());
    ioapic.set_irq(9, true);
    assert!(pin.is_raised());
    assert_eq!(lapic.acknowledge(), Some(0x39));
    lapic.mmio_write(0xb0, &0u32.to_le_bytes());
    assert!(pin.is_raised(), "still asserted: delivered again after EOI");
    assert_eq!(lapic.acknowledge(), Some(0x39));
    ioapic.set_irq(9, false);
    lapic.mmio_write(0xb0, &0u32.to_le_bytes());
    assert!(!pin.is_raised());
    ioapic.with_ioapic(|io| {
        assert_eq!(io.redirection(9), Some(0x8039), "Remote-IRR cleared");
        vec![]
    });
}
