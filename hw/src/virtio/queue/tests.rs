//! Split-ring tests: well-formed chains, notification suppression, and hostile rings (loops,
//! nesting, buffers outside RAM, indices out of bounds) that must be errors, never panics.

use super::*;
use crate::virtio::testing::*;

fn queue(mem: &AddressSpace, ring: &DriverRing, event_idx: bool) -> Queue {
    Queue::new(mem, ring.layout, 256, event_idx, true).unwrap()
}

#[test]
fn pops_a_chain_and_returns_it_used() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(8);
    let mut q = queue(&mem, &ring, false);
    assert_eq!(q.pop(&mem).unwrap(), None);
    let head = ring.add_chain(
        &mem,
        &[
            (DATA, 16, false),
            (DATA + 0x100, 512, true),
            (DATA + 0x400, 1, true),
        ],
    );
    let c = q.pop(&mem).unwrap().unwrap();
    assert_eq!(c.head, head);
    assert_eq!(
        c.readable,
        vec![Segment {
            addr: DATA,
            len: 16
        }]
    );
    assert_eq!(c.writable.len(), 2);
    assert_eq!((c.readable_len(), c.writable_len()), (16, 513));
    assert_eq!(q.pop(&mem).unwrap(), None);
    q.add_used(&mem, c.head, 513).unwrap();
    assert_eq!(ring.used_idx(&mem), 1);
    assert_eq!(ring.used(&mem, 0), (u32::from(head), 513));
    assert_eq!(
        q.add_used(&mem, 8, 0),
        Err(QueueError::BadUsedHead { head: 8, size: 8 })
    );
}

#[test]
fn chain_buffers_read_and_write_as_one_stream() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(8);
    let mut q = queue(&mem, &ring, false);
    mem.write(DATA, &[1, 2, 3]).unwrap();
    mem.write(DATA + 0x100, &[4, 5]).unwrap();
    ring.add_chain(
        &mem,
        &[
            (DATA, 3, false),
            (DATA + 0x100, 2, false),
            (DATA + 0x200, 2, true),
            (DATA + 0x300, 2, true),
        ],
    );
    let c = q.pop(&mem).unwrap().unwrap();
    let mut b = [0u8; 3];
    c.read_at(&mem, 2, &mut b).unwrap();
    assert_eq!(b, [3, 4, 5]);
    c.write_at(&mem, 1, &[9, 8, 7]).unwrap();
    assert_eq!(peek_u16(&mem, DATA + 0x200), 0x0900);
    assert_eq!(peek_u16(&mem, DATA + 0x300), 0x0708);
    assert!(matches!(
        c.read_at(&mem, 4, &mut b),
        Err(QueueError::BeyondChain { .. })
    ));
    assert!(matches!(
        c.write_at(&mem, u64::MAX, &[1]),
        Err(QueueError::BeyondChain { .. })
    ));
}

#[test]
fn indirect_table_is_followed() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(4);
    let mut q = queue(&mem, &ring, false);
    let table = DATA + 0x8000;
    DriverRing::write_desc_at(&mem, table, 0, (DATA, 16, F_NEXT, 2));
    DriverRing::write_desc_at(&mem, table, 2, (DATA + 0x100, 8, F_WRITE | F_NEXT, 1));
    DriverRing::write_desc_at(&mem, table, 1, (DATA + 0x200, 1, F_WRITE, 0));
    ring.write_desc(&mem, 3, (table, 48, F_INDIRECT, 0));
    ring.publish(&mem, 3);
    let c = q.pop(&mem).unwrap().unwrap();
    assert_eq!(c.head, 3);
    assert_eq!(c.readable.len(), 1);
    assert_eq!(
        c.writable,
        vec![
            Segment {
                addr: DATA + 0x100,
                len: 8
            },
            Segment {
                addr: DATA + 0x200,
                len: 1
            }
        ]
    );
}

/// Makes descriptor 0 of the ring the single head and returns the popped result.
fn pop_one(
    setup: impl FnOnce(&AddressSpace, &DriverRing),
    indirect: bool,
) -> Result<Option<DescriptorChain>, QueueError> {
    let mem = guest_memory();
    let mut ring = DriverRing::new(4);
    let mut q = Queue::new(&mem, ring.layout, 4, false, indirect).unwrap();
    setup(&mem, &ring);
    ring.publish(&mem, 0);
    q.pop(&mem)
}

#[test]
fn looping_chains_are_errors() {
    let r = pop_one(
        |m, r| {
            r.write_desc(m, 0, (DATA, 1, F_NEXT, 1));
            r.write_desc(m, 1, (DATA, 1, F_NEXT, 0));
        },
        true,
    );
    assert_eq!(r, Err(QueueError::ChainTooLong(4)));
    let r = pop_one(|m, r| r.write_desc(m, 0, (DATA, 1, F_NEXT, 0)), true);
    assert_eq!(r, Err(QueueError::ChainTooLong(4)));
    // A loop inside an indirect table is bounded by the table's length.
    let r = pop_one(
        |m, r| {
            DriverRing::write_desc_at(m, DATA, 0, (DATA, 1, F_NEXT, 1));
            DriverRing::write_desc_at(m, DATA, 1, (DATA, 1, F_NEXT, 0));
            r.write_desc(m, 0, (DATA, 32, F_INDIRECT, 0));
        },
        true,
    );
    assert_eq!(r, Err(QueueError::ChainTooLong(2)));
}

#[test]
fn bad_indirect_descriptors_are_errors() {
    let nested = pop_one(
        |m, r| {
            DriverRing::write_desc_at(m, DATA, 0, (DATA, 16, F_INDIRECT, 0));
            r.write_desc(m, 0, (DATA, 16, F_INDIRECT, 0));
        },
        true,
    );
    assert_eq!(nested, Err(QueueError::NestedIndirect));
    let with_next = pop_one(
        |m, r| r.write_desc(m, 0, (DATA, 16, F_INDIRECT | F_NEXT, 1)),
        true,
    );
    assert_eq!(with_next, Err(QueueError::IndirectWithNext));
    let not_offered = pop_one(|m, r| r.write_desc(m, 0, (DATA, 16, F_INDIRECT, 0)), false);
    assert_eq!(not_offered, Err(QueueError::IndirectNotNegotiated));
    for len in [0, 15, 17, 16 * 32769] {
        let r = pop_one(|m, r| r.write_desc(m, 0, (DATA, len, F_INDIRECT, 0)), true);
        assert_eq!(r, Err(QueueError::BadIndirectLen(len)));
    }
    let outside = pop_one(
        |m, r| r.write_desc(m, 0, (RAM - 16, 32, F_INDIRECT, 0)),
        true,
    );
    assert!(matches!(
        outside,
        Err(QueueError::NotRam {
            what: "indirect table",
            ..
        })
    ));
    // An index past the indirect table's end.
    let r = pop_one(
        |m, r| {
            DriverRing::write_desc_at(m, DATA, 0, (DATA, 1, F_NEXT, 5));
            r.write_desc(m, 0, (DATA, 32, F_INDIRECT, 0));
        },
        true,
    );
    assert_eq!(r, Err(QueueError::BadIndex { index: 5, len: 2 }));
}

#[test]
fn buffers_outside_ram_or_wrapping_are_errors() {
    for (addr, len) in [(RAM - 1, 2), (RAM, 1), (u64::MAX - 3, 16), (0xfee0_0000, 4)] {
        let r = pop_one(|m, r| r.write_desc(m, 0, (addr, len, 0, 0)), true);
        assert!(
            matches!(r, Err(QueueError::NotRam { what: "buffer", .. })),
            "{addr:#x}: {r:?}"
        );
    }
    // A zero-length buffer is never touched, so it may point anywhere.
    let r = pop_one(|m, r| r.write_desc(m, 0, (u64::MAX, 0, 0, 0)), true);
    assert_eq!(r.unwrap().unwrap().readable.len(), 1);
}

#[test]
fn out_of_bounds_indices_are_errors() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(4);
    let mut q = queue(&mem, &ring, false);
    ring.publish(&mem, 4);
    assert_eq!(q.pop(&mem), Err(QueueError::BadIndex { index: 4, len: 4 }));
    let r = pop_one(|m, r| r.write_desc(m, 0, (DATA, 1, F_NEXT, 0xffff)), true);
    assert_eq!(
        r,
        Err(QueueError::BadIndex {
            index: 0xffff,
            len: 4
        })
    );
    // The driver claims more entries than the ring holds.
    let mem = guest_memory();
    let ring = DriverRing::new(4);
    let mut q = queue(&mem, &ring, false);
    mem.write(AVAIL + 2, &5u16.to_le_bytes()).unwrap();
    assert_eq!(
        q.pop(&mem),
        Err(QueueError::AvailTooFar {
            avail: 5,
            next: 0,
            size: 4
        })
    );
}

#[test]
fn readable_after_writable_is_an_error() {
    let r = pop_one(
        |m, r| {
            r.write_desc(m, 0, (DATA, 1, F_WRITE | F_NEXT, 1));
            r.write_desc(m, 1, (DATA, 1, 0, 0));
        },
        true,
    );
    assert_eq!(r, Err(QueueError::ReadableAfterWritable));
}

#[test]
fn queue_layouts_are_validated() {
    let mem = guest_memory();
    let good = DriverRing::new(16).layout;
    assert!(validate(&mem, &good, 16).is_ok());
    for size in [0, 3, 32] {
        let l = QueueLayout { size, ..good };
        assert!(
            matches!(validate(&mem, &l, 16), Err(QueueError::BadSize { .. })),
            "{size}"
        );
    }
    let misaligned = [
        QueueLayout {
            desc_table: DESC + 8,
            ..good
        },
        QueueLayout {
            avail_ring: AVAIL + 1,
            ..good
        },
        QueueLayout {
            used_ring: USED + 2,
            ..good
        },
    ];
    for l in misaligned {
        assert!(matches!(
            validate(&mem, &l, 16),
            Err(QueueError::Misaligned { .. })
        ));
    }
    let outside = [
        QueueLayout {
            desc_table: RAM - 16 * 8,
            ..good
        },
        QueueLayout {
            avail_ring: RAM - 6,
            ..good
        },
        QueueLayout {
            used_ring: u64::MAX - 3,
            ..good
        },
    ];
    for l in outside {
        assert!(
            matches!(validate(&mem, &l, 16), Err(QueueError::NotRam { .. })),
            "{l:?}"
        );
    }
}

#[test]
fn need_event_wraps() {
    // Interrupt when the used index passes used_event since the last interrupt.
    assert!(need_event(0, 1, 0));
    assert!(!need_event(1, 1, 0));
    assert!(need_event(5, 10, 3));
    assert!(!need_event(10, 10, 3));
    assert!(need_event(0xffff, 2, 0xfffe));
    assert!(!need_event(2, 2, 0xfffe));
}

#[test]
fn notifications_follow_avail_flags_without_event_idx() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(4);
    let mut q = queue(&mem, &ring, false);
    ring.add_chain(&mem, &[(DATA, 1, true)]);
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 1).unwrap();
    assert!(q.needs_notification(&mem).unwrap());
    // Nothing new since the interrupt.
    assert!(!q.needs_notification(&mem).unwrap());
    mem.write(AVAIL, &1u16.to_le_bytes()).unwrap();
    ring.add_chain(&mem, &[(DATA, 1, true)]);
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 1).unwrap();
    assert!(!q.needs_notification(&mem).unwrap());
    // used.flags NO_NOTIFY while draining, cleared after.
    q.disable_notification(&mem).unwrap();
    assert_eq!(peek_u16(&mem, USED), 1);
    assert!(!q.enable_notification(&mem).unwrap());
    assert_eq!(peek_u16(&mem, USED), 0);
}

#[test]
fn event_idx_suppresses_and_requests_notifications() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(8);
    let mut q = queue(&mem, &ring, true);
    let complete = |ring: &mut DriverRing, q: &mut Queue| {
        ring.add_chain(&mem, &[(DATA, 1, true)]);
        let c = q.pop(&mem).unwrap().unwrap();
        q.add_used(&mem, c.head, 1).unwrap();
        q.needs_notification(&mem).unwrap()
    };
    // The first completion always interrupts; then only when the used index passes used_event.
    assert!(complete(&mut ring, &mut q));
    ring.set_used_event(&mem, 2);
    assert!(!complete(&mut ring, &mut q)); // used idx 2 has not passed 2
    assert!(complete(&mut ring, &mut q)); // used idx 3 passes 2
    assert!(!complete(&mut ring, &mut q));
    // avail_event tells the driver where to notify next; buffers added meanwhile are reported.
    assert!(!q.enable_notification(&mem).unwrap());
    assert_eq!(ring.avail_event(&mem), 4);
    ring.add_chain(&mem, &[(DATA, 1, true)]);
    assert!(q.enable_notification(&mem).unwrap());
}

#[test]
fn indices_wrap_around_u16() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(4);
    let mut q = queue(&mem, &ring, true);
    for i in 0..70_000u32 {
        let head = ring.add_chain(&mem, &[(DATA, 4, true)]);
        let c = q.pop(&mem).unwrap().unwrap();
        assert_eq!(c.head, head);
        q.add_used(&mem, head, i).unwrap();
    }
    assert_eq!(q.pop(&mem).unwrap(), None);
    assert_eq!(ring.used_idx(&mem), 70_000u32 as u16);
    assert_eq!(q.next_avail(), q.next_used());
}
