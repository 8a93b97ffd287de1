//! Register, priority, EOI, ICR and x2APIC tests; expected values from SDM Vol. 3A ch. 11.

use super::*;

/// A software-enabled BSP APIC (SVR = 0x1ff).
fn enabled() -> Lapic {
    let mut l = Lapic::new(0, true);
    l.write_reg(REG_SVR, 0x1ff, 0);
    l
}

fn read32(l: &mut Lapic, offset: u64) -> u32 {
    let mut d = [0u8; 4];
    l.mmio_read(offset, &mut d, 0);
    u32::from_le_bytes(d)
}

fn write32(l: &mut Lapic, offset: u64, v: u32) -> Option<LapicOutput> {
    l.mmio_write(offset, &v.to_le_bytes(), 0)
}

#[test]
fn register_write_masks_and_reserved_bits() {
    let mut l = Lapic::new(0, false);
    assert_eq!(read32(&mut l, 0x30), 0x0005_0014);
    write32(&mut l, 0x30, 0);
    assert_eq!(read32(&mut l, 0x30), 0x0005_0014, "version is read-only");
    assert_eq!(read32(&mut l, 0xe0), 0xffff_ffff, "DFR resets to all ones");
    assert_eq!(read32(&mut l, 0xf0), 0xff, "SVR resets to 0xff");
    for (off, written, read) in [
        (0x20, 0xffff_ffff, 0xff00_0000),
        (0x80, 0xffff_ffff, 0xff),
        (0xd0, 0xffff_ffff, 0xff00_0000),
        (0xe0, 0x0000_0000, 0x0fff_ffff),
        (0xf0, 0xffff_ffff, 0x3ff),
        (0x310, 0xffff_ffff, 0xff00_0000),
        (0x350, 0xffff_ffff, 0x0001_a7ff),
        (0x330, 0xffff_ffff, 0x0001_07ff),
        (0x370, 0xffff_ffff, 0x0001_00ff),
        // The reserved timer mode 0b11 keeps the current (one-shot) mode.
        (0x320, 0xffff_ffff, 0x0001_00ff),
        (0x3e0, 0xffff_ffff, 0xb),
    ] {
        write32(&mut l, off, written);
        assert_eq!(read32(&mut l, off), read, "offset {off:#x}");
    }
    write32(&mut l, 0x300, 0xffff_ffff);
    assert_eq!(
        read32(&mut l, 0x300),
        0x000c_cfff,
        "ICR low: delivery status reads idle"
    );
}

#[test]
fn access_widths_and_unknown_offsets() {
    let mut l = enabled();
    write32(&mut l, 0x20, 0x1200_0000);
    let mut b = [0u8; 1];
    l.mmio_read(0x23, &mut b, 0);
    assert_eq!(b[0], 0x12, "byte read of the ID's top byte");
    let mut q = [0xaau8; 8];
    l.mmio_read(0x20, &mut q, 0);
    assert_eq!(q, [0; 8], "8-byte reads read zeros");
    l.mmio_write(0x80, &[0x50, 0], 0);
    l.mmio_write(0x84, &0x50u32.to_le_bytes(), 0);
    assert_eq!(l.tpr(), 0, "narrow and misaligned writes are ignored");
    l.mmio_write(0x1000, &0x50u32.to_le_bytes(), 0);
    assert_eq!(read32(&mut l, 0x2f0), 0, "no CMCI LVT with max LVT 5");
    write32(&mut l, 0x280, 0);
    assert_eq!(
        read32(&mut l, 0x280),
        1 << 7,
        "illegal register address latched"
    );
    write32(&mut l, 0x280, 0);
    assert_eq!(read32(&mut l, 0x280), 0);
}

#[test]
fn software_disable_masks_lvts_and_drops_fixed_interrupts() {
    let mut l = enabled();
    write32(&mut l, 0x320, 0x20);
    assert_eq!(read32(&mut l, 0x320), 0x20);
    write32(&mut l, 0xf0, 0xff);
    assert_eq!(read32(&mut l, 0x320), 0x1_0020, "masked on disable");
    write32(&mut l, 0x320, 0x21);
    assert_eq!(
        read32(&mut l, 0x320),
        0x1_0021,
        "mask cannot be cleared while disabled"
    );
    l.set_irr(0x40, false);
    assert_eq!(l.irr().highest(), None);
    assert_eq!(l.acknowledge(), None);
    l.deliver(&msg(DeliveryMode::Nmi, 0));
    assert!(l.take_events().nmi, "NMI still accepted");
}

fn msg(mode: DeliveryMode, vector: u8) -> ApicMessage {
    ApicMessage {
        dest: 0,
        dest_mode: DestMode::Physical,
        delivery_mode: mode,
        vector,
        level: true,
        trigger: TriggerMode::Edge,
    }
}

#[test]
fn ppr_from_tpr_and_isr_holds_lower_classes() {
    let mut l = enabled();
    l.set_irr(0x55, false);
    write32(&mut l, 0x80, 0x60);
    assert!(!l.has_interrupt());
    write32(&mut l, 0x80, 0x5f);
    assert!(!l.has_interrupt(), "same class as TPR is held");
    write32(&mut l, 0x80, 0x4f);
    assert_eq!(
        read32(&mut l, 0xa0),
        0x4f,
        "PPR = TPR with nothing in service"
    );
    assert_eq!(l.acknowledge(), Some(0x55));
    assert_eq!(read32(&mut l, 0xa0), 0x50, "PPR = ISRV class");
    l.set_irr(0x5a, false);
    assert!(!l.has_interrupt(), "same class as in service is held");
    l.set_irr(0x61, false);
    assert_eq!(l.pending_vector(), Some(0x61));
    l.set_cr8(7);
    assert_eq!((l.tpr(), l.cr8(), l.ppr()), (0x70, 7, 0x70));
    assert!(!l.has_interrupt());
}

#[test]
fn nested_interrupts_end_in_priority_order() {
    let mut l = enabled();
    l.set_irr(0x40, false);
    assert_eq!(l.acknowledge(), Some(0x40));
    l.set_irr(0x80, false);
    l.set_irr(0x30, false);
    assert_eq!(l.acknowledge(), Some(0x80), "a higher class nests");
    assert!(!l.has_interrupt(), "0x30 is below 0x80 in service");
    assert_eq!(write32(&mut l, 0xb0, 0), None);
    assert_eq!(l.isr().highest(), Some(0x40), "EOI ended 0x80 first");
    assert!(!l.has_interrupt(), "0x30 still below 0x40");
    write32(&mut l, 0xb0, 0);
    assert_eq!(l.acknowledge(), Some(0x30));
    l.set_irr(0x90, true);
    assert_eq!(read32(&mut l, 0x180 + 0x40), 1 << 0x10, "TMR bit for 0x90");
    assert_eq!(l.acknowledge(), Some(0x90));
    assert_eq!(write32(&mut l, 0xb0, 0), Some(LapicOutput::Eoi(0x90)));
    assert_eq!(l.eoi(), None, "0x30 was edge");
    assert_eq!(l.eoi(), None, "nothing in service");
}

#[test]
fn spurious_vector_when_the_request_vanished() {
    let mut l = enabled();
    write32(&mut l, 0xf0, 0x1ef);
    l.set_irr(0x30, false);
    assert!(l.has_interrupt());
    write32(&mut l, 0x80, 0xf0);
    assert_eq!(l.acknowledge(), Some(0xef));
    assert_eq!(l.isr().highest(), None, "spurious does not set ISR");
    assert_eq!(l.irr().highest(), Some(0x30), "the request is held");
}

#[test]
fn illegal_vectors_set_esr_and_raise_the_error_lvt() {
    let mut l = enabled();
    write32(&mut l, 0x370, 0xfe);
    l.set_irr(5, false);
    write32(&mut l, 0x280, 0);
    assert_eq!(read32(&mut l, 0x280), 1 << 6, "received illegal vector");
    assert_eq!(l.irr().highest(), Some(0xfe));
    assert_eq!(
        write32(&mut l, 0x300, 0x4003),
        None,
        "fixed vector 3 is not sent"
    );
    write32(&mut l, 0x280, 0);
    assert_eq!(read32(&mut l, 0x280), 1 << 5, "send illegal vector");
}

fn ipi(l: &mut Lapic, high: u32, low: u32) -> Option<Ipi> {
    write32(l, 0x310, high);
    match write32(l, 0x300, low) {
        Some(LapicOutput::Ipi(i)) => Some(i),
        _ => None,
    }
}

#[test]
fn icr_writes_produce_ipis() {
    let mut l = Lapic::new(2, false);
    let i = ipi(&mut l, 0x0300_0000, 0x4041).unwrap();
    assert_eq!(i.source, 2);
    assert_eq!(i.shorthand, Shorthand::None);
    assert_eq!(
        i.message,
        ApicMessage {
            dest: 3,
            dest_mode: DestMode::Physical,
            delivery_mode: DeliveryMode::Fixed,
            vector: 0x41,
            level: true,
            trigger: TriggerMode::Edge,
        }
    );
    for (bits, sh) in [
        (0x4_0000, Shorthand::SelfOnly),
        (0x8_0000, Shorthand::AllIncludingSelf),
        (0xc_0000, Shorthand::AllExcludingSelf),
    ] {
        assert_eq!(ipi(&mut l, 0, bits | 0x30).unwrap().shorthand, sh);
    }
    let i = ipi(&mut l, 0x0f00_0000, 0xc_8c30).unwrap().message;
    assert_eq!(
        (i.dest, i.dest_mode, i.trigger),
        (0x0f, DestMode::Logical, TriggerMode::Level)
    );
    let init = ipi(&mut l, 0, 0xc_4500).unwrap();
    assert_eq!(init.message.delivery_mode, DeliveryMode::Init);
    assert_eq!(
        ipi(&mut l, 0, 0xc_8500),
        None,
        "INIT level de-assert is not sent"
    );
    let sipi = ipi(&mut l, 0x0100_0000, 0x4608).unwrap().message;
    assert_eq!(
        (sipi.delivery_mode, sipi.vector),
        (DeliveryMode::StartUp, 8)
    );
    assert_eq!(
        ipi(&mut l, 0, 0x4400).unwrap().message.delivery_mode,
        DeliveryMode::Nmi
    );
    assert_eq!(ipi(&mut l, 0, 0x4341), None, "reserved delivery mode");
}

#[test]
fn destination_matching_physical_flat_and_cluster() {
    let mut l = enabled();
    write32(&mut l, 0x20, 0x0300_0000);
    assert!(l.accepts(3, DestMode::Physical) && l.accepts(0xff, DestMode::Physical));
    assert!(!l.accepts(2, DestMode::Physical));
    write32(&mut l, 0xd0, 0x0400_0000);
    assert!(l.accepts(0x04, DestMode::Logical) && l.accepts(0x06, DestMode::Logical));
    assert!(!l.accepts(0x03, DestMode::Logical));
    write32(&mut l, 0xe0, 0x0fff_ffff);
    write32(&mut l, 0xd0, 0x2100_0000);
    for (dest, hit) in [
        (0x21, true),
        (0x23, true),
        (0xf1, true),
        (0x11, false),
        (0x22, false),
    ] {
        assert_eq!(
            l.accepts(dest, DestMode::Logical),
            hit,
            "cluster dest {dest:#x}"
        );
    }
    let mut i = Ipi::from_icr(3, 0xc_0030, false).unwrap();
    assert!(!l.selected_by(&i), "all-but-self skips the sender");
    i.source = 1;
    assert!(l.selected_by(&i));
}

#[test]
fn init_sipi_nmi_events() {
    let mut l = enabled();
    l.set_irr(0x40, false);
    l.deliver(&msg(DeliveryMode::Init, 0));
    assert!(l.pin_level(), "an event raises the pin");
    assert_eq!(l.irr().highest(), None, "INIT resets the APIC");
    assert_eq!(read32(&mut l, 0xf0), 0xff);
    l.deliver(&msg(DeliveryMode::StartUp, 0x9a));
    l.deliver(&msg(DeliveryMode::Nmi, 0));
    let ev = l.take_events();
    assert_eq!((ev.init, ev.sipi, ev.nmi), (true, Some(0x9a), true));
    assert!(!l.pin_level());
}

#[test]
fn lint0_extint_and_lint1_nmi() {
    let mut bsp = Lapic::new(0, true);
    assert!(bsp.lint0_extint(), "virtual-wire LINT0 at power-on");
    bsp.set_lint(1, true);
    assert!(bsp.take_events().nmi, "LINT1 is NMI");
    let mut ap = Lapic::new(1, false);
    assert!(!ap.lint0_extint());
    write32(&mut bsp, 0x350, 0x1_0700);
    assert!(!bsp.lint0_extint(), "masked");
    ap.write_msr(MSR_APIC_BASE, APIC_DEFAULT_BASE, 0).unwrap();
    assert!(
        ap.lint0_extint(),
        "a globally disabled APIC passes INTR through"
    );
}

#[test]
fn x2apic_msrs() {
    let mut l = Lapic::new(0x13, false);
    assert_eq!(l.read_msr(0x802, 0), Err(ApicMsrError::NotX2apic(0x802)));
    let base = APIC_DEFAULT_BASE | 0x800;
    assert_eq!(l.read_msr(MSR_APIC_BASE, 0), Ok(base));
    assert!(
        l.write_msr(MSR_APIC_BASE, base | 0x400 | 1, 0).is_err(),
        "reserved bit 0"
    );
    l.write_msr(MSR_APIC_BASE, base | 0x400, 0).unwrap();
    assert!(l.x2apic());
    assert_eq!(l.read_msr(0x802, 0), Ok(0x13));
    assert_eq!(
        l.read_msr(0x80d, 0),
        Ok((1 << 16) | (1 << 3)),
        "derived LDR"
    );
    assert_eq!(l.write_msr(0x802, 5, 0), Err(ApicMsrError::Access(0x802)));
    assert_eq!(
        l.read_msr(0x80e, 0),
        Err(ApicMsrError::Access(0x80e)),
        "no DFR"
    );
    assert_eq!(
        l.read_msr(0x80b, 0),
        Err(ApicMsrError::Access(0x80b)),
        "EOI is write-only"
    );
    assert!(l.write_msr(0x80b, 1, 0).is_err(), "non-zero EOI");
    assert!(
        l.write_msr(0x808, 1 << 32, 0).is_err(),
        "upper half reserved"
    );
    l.write_msr(0x80f, 0x1ff, 0).unwrap();
    l.write_msr(0x83f, 0x45, 0).unwrap();
    assert_eq!(l.irr().highest(), Some(0x45), "SELF IPI");
    assert!(l.write_msr(0x83f, 0x100, 0).is_err());
    let out = l.write_msr(0x830, (0x1234_5678 << 32) | 0x4050, 0).unwrap();
    let Some(LapicOutput::Ipi(i)) = out else {
        panic!("no IPI: {out:?}");
    };
    assert_eq!((i.message.dest, i.message.vector), (0x1234_5678, 0x50));
    assert_eq!(l.read_msr(0x830, 0), Ok((0x1234_5678 << 32) | 0x4050));
    assert!(
        l.write_msr(MSR_APIC_BASE, base, 0).is_err(),
        "x2APIC -> xAPIC"
    );
    l.write_msr(MSR_APIC_BASE, APIC_DEFAULT_BASE, 0).unwrap();
    assert!(
        l.write_msr(MSR_APIC_BASE, base | 0x400, 0).is_err(),
        "disabled -> x2APIC"
    );
    assert_eq!(l.read_msr(0x10, 0), Err(ApicMsrError::NotApic(0x10)));
}

#[test]
fn any_guest_access_is_harmless() {
    let mut l = enabled();
    for offset in 0..0x1010u64 {
        for width in [0usize, 1, 2, 3, 4, 8] {
            let mut d = vec![0u8; width];
            l.mmio_read(offset, &mut d, offset);
            l.mmio_write(offset, &vec![0xff; width], offset);
            l.mmio_write(offset, &vec![0; width], offset);
        }
    }
    l.write_msr(MSR_APIC_BASE, APIC_DEFAULT_BASE | 0xc00, 0)
        .unwrap();
    for index in 0x7f0..0x910 {
        for v in [0, 0xff, u64::MAX] {
            let _ = l.read_msr(index, v);
            let _ = l.write_msr(index, v, v);
        }
    }
    l.tick(u64::MAX);
}
