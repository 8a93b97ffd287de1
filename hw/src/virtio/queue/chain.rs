//! Descriptor chains (§2.7.5): walking from a head through NEXT links and at most one
//! indirect table (§2.7.5.3), into the device-readable and device-writable buffers the device
//! then copies from and to.
//!
//! A chain is walked whole when it is popped, so every buffer is checked against guest RAM
//! once, before the device acts on any of it. The walk visits at most as many descriptors as
//! the table it is in holds: a longer walk can only be a loop.

use tandem_softmmu::AddressSpace;

use super::{QueueError, MAX_QUEUE_SIZE};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
/// Bytes per descriptor: le64 addr, le32 len, le16 flags, le16 next.
const DESC_SIZE: u64 = 16;

/// One guest buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address (checked to be RAM for `len` bytes).
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// A descriptor chain the driver made available: its head index (returned in the used ring)
/// and its buffers, device-readable first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescriptorChain {
    /// Index of the chain's first descriptor.
    pub head: u16,
    /// Buffers the device reads (the driver's request).
    pub readable: Vec<Segment>,
    /// Buffers the device writes (its response).
    pub writable: Vec<Segment>,
}

impl DescriptorChain {
    /// Total bytes of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        total(&self.readable)
    }

    /// Total bytes of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        total(&self.writable)
    }

    /// Copies `buf.len()` bytes at `offset` in the readable buffers (as one byte stream).
    pub fn read_at(
        &self,
        mem: &AddressSpace,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), QueueError> {
        for_range(&self.readable, offset, buf.len() as u64, |addr, at, n| {
            mem.read(addr, &mut buf[at..at + n])?;
            Ok(())
        })
    }

    /// Copies `data` to `offset` in the writable buffers (as one byte stream).
    pub fn write_at(&self, mem: &AddressSpace, offset: u64, data: &[u8]) -> Result<(), QueueError> {
        for_range(&self.writable, offset, data.len() as u64, |addr, at, n| {
            mem.write(addr, &data[at..at + n])?;
            Ok(())
        })
    }
}

fn total(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| u64::from(s.len)).sum()
}

/// Calls `f(guest address, offset in the access, length)` for each piece of
/// `[offset, offset + len)` of the byte stream `segs` form.
fn for_range(
    segs: &[Segment],
    offset: u64,
    len: u64,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), QueueError>,
) -> Result<(), QueueError> {
    let total = total(segs);
    if offset.checked_add(len).is_none_or(|end| end > total) {
        return Err(QueueError::BeyondChain { offset, len, total });
    }
    let (mut skip, mut at) = (offset, 0u64);
    for s in segs {
        if at == len {
            break;
        }
        let slen = u64::from(s.len);
        if skip >= slen {
            skip -= slen;
            continue;
        }
        let n = (slen - skip).min(len - at);
        // Segments were checked to be RAM, so `addr + skip` does not wrap.
        f(s.addr + skip, at as usize, n as usize)?;
        at += n;
        skip = 0;
    }
    Ok(())
}

struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_descriptor(mem: &AddressSpace, table: u64, index: u32) -> Result<Descriptor, QueueError> {
    let mut b = [0u8; DESC_SIZE as usize];
    // The table was checked to be RAM for all its entries, and `index` is within it.
    mem.read(table + DESC_SIZE * u64::from(index), &mut b)?;
    Ok(Descriptor {
        addr: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        len: u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()),
        flags: u16::from_le_bytes([b[12], b[13]]),
        next: u16::from_le_bytes([b[14], b[15]]),
    })
}

/// Walks the chain starting at `head` of the descriptor table at `table` (`size` entries).
pub(super) fn walk(
    mem: &AddressSpace,
    table: u64,
    size: u16,
    head: u16,
    indirect_ok: bool,
) -> Result<DescriptorChain, QueueError> {
    let mut chain = DescriptorChain {
        head,
        ..Default::default()
    };
    let (mut table, mut table_len) = (table, u32::from(size));
    let mut index = u32::from(head);
    let mut in_indirect = false;
    // Descriptors the walk may still visit in the current table.
    let mut budget = table_len;
    loop {
        if index >= table_len {
            return Err(QueueError::BadIndex {
                index,
                len: table_len,
            });
        }
        if budget == 0 {
            return Err(QueueError::ChainTooLong(table_len));
        }
        budget -= 1;
        let d = read_descriptor(mem, table, index)?;
        if d.flags & DESC_F_INDIRECT != 0 {
            if !indirect_ok {
                return Err(QueueError::IndirectNotNegotiated);
            }
            if in_indirect {
                return Err(QueueError::NestedIndirect);
            }
            if d.flags & DESC_F_NEXT != 0 {
                return Err(QueueError::IndirectWithNext);
            }
            let n = d.len / DESC_SIZE as u32;
            if d.len == 0
                || !d.len.is_multiple_of(DESC_SIZE as u32)
                || n > u32::from(MAX_QUEUE_SIZE)
            {
                return Err(QueueError::BadIndirectLen(d.len));
            }
            check_ram(mem, "indirect table", d.addr, d.len)?;
            (table, table_len, budget) = (d.addr, n, n);
            index = 0;
            in_indirect = true;
            continue;
        }
        check_ram(mem, "buffer", d.addr, d.len)?;
        let seg = Segment {
            addr: d.addr,
            len: d.len,
        };
        if d.flags & DESC_F_WRITE != 0 {
            chain.writable.push(seg);
        } else if !chain.writable.is_empty() {
            return Err(QueueError::ReadableAfterWritable);
        } else {
            chain.readable.push(seg);
        }
        if d.flags & DESC_F_NEXT == 0 {
            return Ok(chain);
        }
        index = u32::from(d.next);
    }
}

fn check_ram(
    mem: &AddressSpace,
    what: &'static str,
    addr: u64,
    len: u32,
) -> Result<(), QueueError> {
    let len = u64::from(len);
    // A zero-length buffer is never accessed, wherever it points.
    if len == 0 || mem.is_memory(addr, len) {
        Ok(())
    } else {
        Err(QueueError::NotRam { what, addr, len })
    }
}
