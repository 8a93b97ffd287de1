//! Test helpers: a small guest RAM and the driver's side of a split ring built in it, so tests
//! write descriptors and read used elements the way a guest driver does.

use std::sync::Arc;

use tandem_softmmu::host_memory::HostMemory;
use tandem_softmmu::{AddressSpace, AddressSpaceBuilder};

use super::queue::QueueLayout;

/// Size of the test guest's RAM, mapped at 0.
pub const RAM: u64 = 1 << 20;
/// The test ring's descriptor table.
pub const DESC: u64 = 0x1000;
/// The test ring's available ring.
pub const AVAIL: u64 = 0x3000;
/// The test ring's used ring.
pub const USED: u64 = 0x4000;
/// Where test buffers start.
pub const DATA: u64 = 0x10000;

/// Descriptor flag: the chain continues at `next`.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is an indirect table.
pub const F_INDIRECT: u16 = 4;

/// 1 MiB of zeroed RAM at guest-physical 0.
pub fn guest_memory() -> Arc<AddressSpace> {
    let host = Arc::new(HostMemory::anonymous(RAM).unwrap());
    let mut b = AddressSpaceBuilder::new();
    b.ram(0, host, 0, RAM).unwrap();
    Arc::new(b.build())
}

/// The driver's view of one split ring.
pub struct DriverRing {
    pub layout: QueueLayout,
    /// The driver's available index.
    pub avail_idx: u16,
    /// Next free descriptor, allocated round-robin.
    pub next_desc: u16,
}

impl DriverRing {
    /// A ring of `size` entries at the standard test addresses.
    pub fn new(size: u16) -> Self {
        Self {
            layout: QueueLayout {
                size,
                desc_table: DESC,
                avail_ring: AVAIL,
                used_ring: USED,
            },
            avail_idx: 0,
            next_desc: 0,
        }
    }

    /// Writes descriptor `index` of the table at `table`.
    pub fn write_desc_at(
        mem: &AddressSpace,
        table: u64,
        index: u16,
        (addr, len, flags, next): (u64, u32, u16, u16),
    ) {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..16].copy_from_slice(&next.to_le_bytes());
        mem.write(table + 16 * u64::from(index), &b).unwrap();
    }

    /// Writes descriptor `index` of the ring's table.
    pub fn write_desc(&self, mem: &AddressSpace, index: u16, d: (u64, u32, u16, u16)) {
        Self::write_desc_at(mem, self.layout.desc_table, index, d);
    }

    /// Builds a chain of `(addr, len, device-writable)` buffers in fresh descriptors and makes
    /// it available; returns its head.
    pub fn add_chain(&mut self, mem: &AddressSpace, bufs: &[(u64, u32, bool)]) -> u16 {
        let size = self.layout.size;
        let head = self.next_desc;
        for (i, &(addr, len, w)) in bufs.iter().enumerate() {
            let idx = (head + i as u16) % size;
            let last = i + 1 == bufs.len();
            let flags = if w { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
            self.write_desc(mem, idx, (addr, len, flags, (idx + 1) % size));
        }
        self.next_desc = (head + bufs.len() as u16) % size;
        self.publish(mem, head);
        head
    }

    /// Puts `head` in the available ring and bumps the index.
    pub fn publish(&mut self, mem: &AddressSpace, head: u16) {
        let slot = u64::from(self.avail_idx % self.layout.size);
        mem.write(AVAIL + 4 + 2 * slot, &head.to_le_bytes())
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write(AVAIL + 2, &self.avail_idx.to_le_bytes()).unwrap();
    }

    /// The device's used index.
    pub fn used_idx(&self, mem: &AddressSpace) -> u16 {
        peek_u16(mem, USED + 2)
    }

    /// Used element `i`: (id, len).
    pub fn used(&self, mem: &AddressSpace, i: u16) -> (u32, u32) {
        let at = USED + 4 + 8 * u64::from(i % self.layout.size);
        (peek_u32(mem, at), peek_u32(mem, at + 4))
    }

    /// Sets used_event (EVENT_IDX).
    pub fn set_used_event(&self, mem: &AddressSpace, v: u16) {
        let at = AVAIL + 4 + 2 * u64::from(self.layout.size);
        mem.write(at, &v.to_le_bytes()).unwrap();
    }

    /// The device's avail_event (EVENT_IDX).
    pub fn avail_event(&self, mem: &AddressSpace) -> u16 {
        peek_u16(mem, USED + 4 + 8 * u64::from(self.layout.size))
    }
}

/// A little-endian u16 in guest memory.
pub fn peek_u16(mem: &AddressSpace, at: u64) -> u16 {
    let mut b = [0u8; 2];
    mem.read(at, &mut b).unwrap();
    u16::from_le_bytes(b)
}

/// A little-endian u32 in guest memory.
pub fn peek_u32(mem: &AddressSpace, at: u64) -> u32 {
    let mut b = [0u8; 4];
    mem.read(at, &mut b).unwrap();
    u32::from_le_bytes(b)
}
