//! The split virtqueue (virtio 1.x §2.7): a descriptor table, an available ring the driver
//! fills and a used ring the device fills, all in guest memory.
//!
//! Every access goes through [`AddressSpace::read`]/[`AddressSpace::write`], the DMA path, so
//! writes into guest RAM are seen by whoever tracks them (the JIT's code pages). Nothing the
//! driver writes is trusted: ring areas are checked against guest RAM when the queue is
//! validated, every descriptor's buffer when its chain is popped, and a chain that loops, is
//! longer than its table, nests indirect tables or points outside RAM is a [`QueueError`],
//! which the transport turns into DEVICE_NEEDS_RESET. Buffers must be RAM: DMA to MMIO
//! (peer-to-peer) is refused, which also means a device processing a queue never re-enters the
//! bus, or its own lock, through a buffer address.
//!
//! Memory ordering: the driver runs on other threads (vCPUs). The available index is read
//! before an acquire fence and the ring entries after it; used elements are written before a
//! release fence and the used index after it; a full fence separates publishing avail_event (or
//! clearing NO_NOTIFY) from re-reading the available index, and adding used elements from
//! reading used_event, as the spec's §2.7.7 and §2.7.10 require.
//!
//! Warts: a driver that puts a device-readable buffer after a device-writable one in a chain is
//! refused (the spec forbids it, §2.7.4.2), and an INDIRECT flag without the negotiated
//! feature too.

mod chain;

#[cfg(test)]
mod tests;

use std::sync::atomic::{fence, Ordering};

use tandem_softmmu::{AddressSpace, MemoryError};
use thiserror::Error;

pub use chain::{DescriptorChain, Segment};

/// The largest queue size the split ring allows (§2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// avail.flags: the driver asks not to be interrupted (without EVENT_IDX).
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// used.flags: the device asks not to be notified (without EVENT_IDX).
const USED_F_NO_NOTIFY: u16 = 1;

/// A malformed queue or descriptor chain: the driver broke the ring, the device needs a reset.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The driver chose a size that is zero, not a power of two, or above the device's maximum.
    #[error("queue size {size} is not a power of two of at most {max}")]
    BadSize {
        /// Size the driver wrote.
        size: u16,
        /// The device's maximum.
        max: u16,
    },
    /// A ring area is not aligned as §2.7 requires.
    #[error("{area} at {addr:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Which area.
        area: &'static str,
        /// Its guest-physical address.
        addr: u64,
        /// Required alignment.
        align: u64,
    },
    /// A ring area or a buffer is not entirely in guest RAM (or its end wraps).
    #[error("{what} at {addr:#x}+{len:#x} is not in guest RAM")]
    NotRam {
        /// Which area or buffer.
        what: &'static str,
        /// Guest-physical address.
        addr: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The available index moved further ahead than the queue has entries.
    #[error("available index {avail} is more than {size} entries ahead of {next}")]
    AvailTooFar {
        /// The driver's available index.
        avail: u16,
        /// The next entry the device would take.
        next: u16,
        /// Queue size.
        size: u16,
    },
    /// A descriptor index beyond its table.
    #[error("descriptor {index} is beyond a table of {len}")]
    BadIndex {
        /// The index.
        index: u32,
        /// Entries in the table.
        len: u32,
    },
    /// A chain visits more descriptors than its table holds: it loops.
    #[error("descriptor chain longer than its table of {0} (a loop)")]
    ChainTooLong(u32),
    /// An indirect descriptor inside an indirect table.
    #[error("nested indirect descriptor table")]
    NestedIndirect,
    /// An indirect descriptor that also has NEXT set.
    #[error("indirect descriptor with NEXT set")]
    IndirectWithNext,
    /// An indirect descriptor although INDIRECT_DESC was not negotiated.
    #[error("indirect descriptor without VIRTIO_F_INDIRECT_DESC")]
    IndirectNotNegotiated,
    /// An indirect table whose length is zero, not a multiple of 16 or too large.
    #[error("indirect table of {0:#x} bytes")]
    BadIndirectLen(u32),
    /// A device-readable descriptor after a device-writable one.
    #[error("device-readable descriptor after a device-writable one")]
    ReadableAfterWritable,
    /// The device returned a head index beyond the queue (a device bug, reported not panicked).
    #[error("used element for descriptor {head} in a queue of {size}")]
    BadUsedHead {
        /// The head index.
        head: u16,
        /// Queue size.
        size: u16,
    },
    /// A buffer access beyond the chain's segments (a device bug, reported not panicked).
    #[error("access of {len:#x} bytes at {offset:#x} beyond the chain's {total:#x} bytes")]
    BeyondChain {
        /// Offset in the segments.
        offset: u64,
        /// Access length.
        len: u64,
        /// Total length of the segments.
        total: u64,
    },
    /// Guest memory refused an access the checks had allowed.
    #[error("guest memory")]
    Memory(#[from] MemoryError),
}

/// Where a queue's three areas are and how big it is, as the driver configured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLayout {
    /// Entries (a power of two).
    pub size: u16,
    /// Descriptor table (16-byte aligned).
    pub desc_table: u64,
    /// Available ring, "driver area" (2-byte aligned).
    pub avail_ring: u64,
    /// Used ring, "device area" (4-byte aligned).
    pub used_ring: u64,
}

/// One split virtqueue as the device runs it.
#[derive(Debug, Clone)]
pub struct Queue {
    layout: QueueLayout,
    next_avail: u16,
    next_used: u16,
    event_idx: bool,
    indirect: bool,
    /// The used index when the driver was last interrupted (None: never).
    signalled_used: Option<u16>,
}

impl Queue {
    /// A queue over `layout` after checking it against guest memory; `event_idx` and `indirect`
    /// are the negotiated RING_EVENT_IDX and RING_INDIRECT_DESC features.
    pub fn new(
        mem: &AddressSpace,
        layout: QueueLayout,
        max_size: u16,
        event_idx: bool,
        indirect: bool,
    ) -> Result<Self, QueueError> {
        validate(mem, &layout, max_size)?;
        Ok(Self {
            layout,
            next_avail: 0,
            next_used: 0,
            event_idx,
            indirect,
            signalled_used: None,
        })
    }

    /// The layout the queue runs on.
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// The next available-ring entry the device will take.
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// The next used-ring entry the device will fill.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    fn slot(&self, idx: u16) -> u64 {
        u64::from(idx & (self.layout.size - 1))
    }

    fn used_event_addr(&self) -> u64 {
        self.layout.avail_ring + 4 + 2 * u64::from(self.layout.size)
    }

    fn avail_event_addr(&self) -> u64 {
        self.layout.used_ring + 4 + 8 * u64::from(self.layout.size)
    }

    fn avail_idx(&self, mem: &AddressSpace) -> Result<u16, QueueError> {
        read_u16(mem, self.layout.avail_ring + 2)
    }

    /// Takes the next available descriptor chain, or None if the driver has made none
    /// available.
    pub fn pop(&mut self, mem: &AddressSpace) -> Result<Option<DescriptorChain>, QueueError> {
        let avail = self.avail_idx(mem)?;
        let pending = avail.wrapping_sub(self.next_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.layout.size {
            return Err(QueueError::AvailTooFar {
                avail,
                next: self.next_avail,
                size: self.layout.size,
            });
        }
        // The ring entry and descriptors were written before the index: read them after it.
        fence(Ordering::Acquire);
        let entry = self.layout.avail_ring + 4 + 2 * self.slot(self.next_avail);
        let head = read_u16(mem, entry)?;
        let chain = chain::walk(
            mem,
            self.layout.desc_table,
            self.layout.size,
            head,
            self.indirect,
        )?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Returns chain `head` to the driver with `len` bytes written into its buffers.
    pub fn add_used(&mut self, mem: &AddressSpace, head: u16, len: u32) -> Result<(), QueueError> {
        if head >= self.layout.size {
            return Err(QueueError::BadUsedHead {
                head,
                size: self.layout.size,
            });
        }
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        let at = self.layout.used_ring + 4 + 8 * self.slot(self.next_used);
        mem.write(at, &elem)?;
        // The element must be visible before the index that publishes it.
        fence(Ordering::Release);
        self.next_used = self.next_used.wrapping_add(1);
        write_u16(mem, self.layout.used_ring + 2, self.next_used)?;
        Ok(())
    }

    /// Whether the driver wants an interrupt for the used elements added since the last one
    /// (avail.flags NO_INTERRUPT, or used_event with EVENT_IDX, §2.7.7.2). Call after
    /// [`Queue::add_used`]; a true answer counts as the interrupt being sent.
    pub fn needs_notification(&mut self, mem: &AddressSpace) -> Result<bool, QueueError> {
        // The used index must be visible before the driver's suppression state is read, or
        // both sides could decide the other will act.
        fence(Ordering::SeqCst);
        let new = self.next_used;
        if self.signalled_used == Some(new) {
            return Ok(false);
        }
        let notify = if self.event_idx {
            let used_event = read_u16(mem, self.used_event_addr())?;
            match self.signalled_used {
                None => true,
                Some(old) => need_event(used_event, new, old),
            }
        } else {
            read_u16(mem, self.layout.avail_ring)? & AVAIL_F_NO_INTERRUPT == 0
        };
        if notify {
            self.signalled_used = Some(new);
        }
        Ok(notify)
    }

    /// Asks the driver not to notify while the device is draining the queue (a hint: without
    /// EVENT_IDX it sets used.flags NO_NOTIFY; with it, avail_event simply stays behind).
    pub fn disable_notification(&mut self, mem: &AddressSpace) -> Result<(), QueueError> {
        if !self.event_idx {
            write_u16(mem, self.layout.used_ring, USED_F_NO_NOTIFY)?;
        }
        Ok(())
    }

    /// Asks the driver to notify for the next available buffer (avail_event := next_avail, or
    /// used.flags cleared); true if buffers arrived meanwhile, which the caller must then pop.
    pub fn enable_notification(&mut self, mem: &AddressSpace) -> Result<bool, QueueError> {
        if self.event_idx {
            write_u16(mem, self.avail_event_addr(), self.next_avail)?;
        } else {
            write_u16(mem, self.layout.used_ring, 0)?;
        }
        // Publish the request before looking for buffers the driver added without notifying.
        fence(Ordering::SeqCst);
        Ok(self.avail_idx(mem)? != self.next_avail)
    }
}

/// vring_need_event (§2.7.10): has the used index moved past `event` since `old`?
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Checks a driver's queue configuration: size, alignment, and that each area (with its event
/// field) is guest RAM.
pub fn validate(mem: &AddressSpace, l: &QueueLayout, max_size: u16) -> Result<(), QueueError> {
    let max = max_size.min(MAX_QUEUE_SIZE);
    if l.size == 0 || !l.size.is_power_of_two() || l.size > max {
        return Err(QueueError::BadSize { size: l.size, max });
    }
    let n = u64::from(l.size);
    let areas = [
        ("descriptor table", l.desc_table, 16, 16 * n),
        ("available ring", l.avail_ring, 2, 6 + 2 * n),
        ("used ring", l.used_ring, 4, 6 + 8 * n),
    ];
    for (area, addr, align, len) in areas {
        if !addr.is_multiple_of(align) {
            return Err(QueueError::Misaligned { area, addr, align });
        }
        if !mem.is_memory(addr, len) {
            return Err(QueueError::NotRam {
                what: area,
                addr,
                len,
            });
        }
    }
    Ok(())
}

fn read_u16(mem: &AddressSpace, gpa: u64) -> Result<u16, QueueError> {
    let mut b = [0u8; 2];
    mem.read(gpa, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn write_u16(mem: &AddressSpace, gpa: u64, value: u16) -> Result<(), QueueError> {
    mem.write(gpa, &value.to_le_bytes())?;
    Ok(())
}
