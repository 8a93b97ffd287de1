//! The guest-physical address space: RAM, ROM and MMIO regions, looked up by address.
//!
//! Built once by the board ([`AddressSpaceBuilder`]) and then immutable, so every thread reads
//! it without locks. RAM and ROM accesses are bounds-checked copies ([`AddressSpace::read`],
//! [`AddressSpace::write`]) used by loaders, DMA and the engines' slow paths; MMIO accesses are
//! dispatched to the device that owns the address; unassigned addresses read as all-ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::device::SharedMmioDevice;
use crate::error::{MapError, MemoryError};
use crate::host_memory::HostMemory;
use crate::write_watch::WriteWatch;

enum Backing {
    /// RAM: `mem[offset..offset + len]`.
    Ram { mem: Arc<HostMemory>, offset: u64 },
    /// ROM: guest writes are ignored.
    Rom { mem: Arc<HostMemory> },
    /// A device.
    Mmio(SharedMmioDevice),
}

struct Region {
    base: u64,
    len: u64,
    backing: Backing,
}

impl Region {
    fn end(&self) -> u64 {
        self.base + self.len
    }
}

/// A RAM or ROM region as an engine maps it (a KVM memory slot).
#[derive(Debug, Clone, Copy)]
pub struct MemorySlot {
    /// Guest-physical base.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// Host address of the first byte.
    pub host: *mut u8,
    /// ROM: guest writes must not reach the memory.
    pub readonly: bool,
}

/// Outcome of a guest MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessResult {
    /// RAM or ROM served it.
    Memory,
    /// A device served it.
    Device,
    /// Nothing is mapped there: reads gave all-ones, writes were dropped.
    Unassigned,
}

/// Collects regions, rejecting overlaps, then freezes into an [`AddressSpace`].
#[derive(Default)]
pub struct AddressSpaceBuilder {
    regions: Vec<Region>,
}

impl AddressSpaceBuilder {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, base: u64, len: u64, backing: Backing) -> Result<(), MapError> {
        let end = base
            .checked_add(len)
            .ok_or(MapError::BadRange { base, len })?;
        if len == 0 {
            return Err(MapError::BadRange { base, len });
        }
        if self.regions.iter().any(|r| base < r.end() && r.base < end) {
            return Err(MapError::Overlap { base, len });
        }
        let at = self.regions.partition_point(|r| r.base < base);
        self.regions.insert(at, Region { base, len, backing });
        Ok(())
    }

    /// Maps `mem[offset..offset + len]` as RAM at `base`.
    pub fn ram(
        &mut self,
        base: u64,
        mem: Arc<HostMemory>,
        offset: u64,
        len: u64,
    ) -> Result<(), MapError> {
        let fits = offset.checked_add(len).is_some_and(|e| e <= mem.len());
        if !fits {
            return Err(MapError::BadRange { base, len });
        }
        self.add(base, len, Backing::Ram { mem, offset })
    }

    /// Maps a ROM holding `contents` at `base` (its size rounded up to 4 KiB).
    pub fn rom(&mut self, base: u64, contents: &[u8]) -> Result<(), MapError> {
        let len = (contents.len() as u64).div_ceil(4096).max(1) * 4096;
        let mem = HostMemory::anonymous(len)?;
        mem.write(0, contents);
        self.add(base, len, Backing::Rom { mem: Arc::new(mem) })
    }

    /// Maps `device` at `[base, base + len)`.
    pub fn mmio(&mut self, base: u64, len: u64, device: SharedMmioDevice) -> Result<(), MapError> {
        self.add(base, len, Backing::Mmio(device))
    }

    /// Freezes the map.
    pub fn build(self) -> AddressSpace {
        AddressSpace {
            regions: self.regions,
            unassigned: AtomicU64::new(0),
            watch: OnceLock::new(),
        }
    }
}

/// The frozen guest-physical address space.
pub struct AddressSpace {
    regions: Vec<Region>,
    unassigned: AtomicU64,
    watch: OnceLock<Arc<dyn WriteWatch>>,
}

impl AddressSpace {
    fn find(&self, gpa: u64) -> Option<&Region> {
        let idx = self
            .regions
            .partition_point(|r| r.base <= gpa)
            .checked_sub(1)?;
        let r = &self.regions[idx];
        (gpa < r.end()).then_some(r)
    }

    /// RAM and ROM regions, for engines that map guest memory directly.
    pub fn memory_slots(&self) -> Vec<MemorySlot> {
        self.regions
            .iter()
            .filter_map(|r| match &r.backing {
                Backing::Ram { mem, offset } => Some(MemorySlot {
                    gpa: r.base,
                    len: r.len,
                    // Offsets were checked against the block when the region was added.
                    host: mem.host_addr().wrapping_add(*offset as usize),
                    readonly: false,
                }),
                Backing::Rom { mem } => Some(MemorySlot {
                    gpa: r.base,
                    len: r.len,
                    host: mem.host_addr(),
                    readonly: true,
                }),
                Backing::Mmio(_) => None,
            })
            .collect()
    }

    /// Host address of the 4 KiB page at `gpa` if it is RAM (ROM and MMIO: None), for
    /// engines that access guest RAM directly (the JIT's TLB fast path). The page lies wholly
    /// inside one region because regions are page-granular.
    pub fn ram_page_host(&self, gpa: u64) -> Option<*mut u8> {
        let page = gpa & !0xfff;
        let r = self.find(page)?;
        match &r.backing {
            Backing::Ram { mem, offset } if page.checked_add(4096)? <= r.end() => {
                let off = offset.checked_add(page - r.base)?;
                (off.checked_add(4096)? <= mem.len())
                    .then(|| mem.host_addr().wrapping_add(off as usize))
            }
            _ => None,
        }
    }

    /// True if every byte of `[gpa, gpa + len)` is RAM or ROM.
    pub fn is_memory(&self, gpa: u64, len: u64) -> bool {
        self.walk(gpa, len, |_, _, _| true).is_ok()
    }

    /// Visits the RAM/ROM pieces of `[gpa, gpa + len)`: (region backing, offset in it, chunk
    /// start within the access, chunk length). Fails if any byte is not RAM or ROM.
    fn walk(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(&Backing, u64, (u64, u64)) -> bool,
    ) -> Result<(), MemoryError> {
        let end = gpa
            .checked_add(len)
            .ok_or(MemoryError::Overflow { gpa, len })?;
        let mut cur = gpa;
        while cur < end {
            let r = self.find(cur).ok_or(MemoryError::NotRam { gpa, len })?;
            if matches!(r.backing, Backing::Mmio(_)) {
                return Err(MemoryError::NotRam { gpa, len });
            }
            let chunk = (r.end().min(end)) - cur;
            if !f(&r.backing, cur - r.base, (cur - gpa, chunk)) {
                return Err(MemoryError::NotRam { gpa, len });
            }
            cur += chunk;
        }
        Ok(())
    }

    /// Reads guest RAM or ROM into `buf` (DMA, loaders, page walks).
    /// On an error `buf` may be partly filled.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.walk(gpa, buf.len() as u64, |b, off, (at, n)| {
            let dst = &mut buf[at as usize..(at + n) as usize];
            match b {
                Backing::Ram { mem, offset } => mem.read(offset + off, dst),
                Backing::Rom { mem } => mem.read(off, dst),
                Backing::Mmio(_) => false,
            }
        })
    }

    /// Writes `data` to guest RAM (DMA, loaders). ROM is writable only through
    /// [`AddressSpace::load`]; a guest-originated write to ROM is dropped silently.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.write_inner(gpa, data, false)?;
        self.notify_written(gpa, data.len() as u64);
        Ok(())
    }

    /// Writes `data` into RAM or ROM: how the host side (loaders, firmware) fills memory.
    pub fn load(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.write_inner(gpa, data, true)?;
        self.notify_written(gpa, data.len() as u64);
        Ok(())
    }

    fn write_inner(&self, gpa: u64, data: &[u8], rom_too: bool) -> Result<(), MemoryError> {
        self.walk(gpa, data.len() as u64, |_, _, _| true)?;
        self.walk(gpa, data.len() as u64, |b, off, (at, n)| {
            let src = &data[at as usize..(at + n) as usize];
            match b {
                Backing::Ram { mem, offset } => mem.write(offset + off, src),
                Backing::Rom { mem } => !rom_too || mem.write(off, src),
                Backing::Mmio(_) => false,
            }
        })
    }

    /// Installs the one [`WriteWatch`] (the engine's, when it attaches); false if one is set.
    pub fn set_write_watch(&self, watch: Arc<dyn WriteWatch>) -> bool {
        self.watch.set(watch).is_ok()
    }

    fn notify_written(&self, gpa: u64, len: u64) {
        if let Some(w) = self.watch.get() {
            w.ram_written(gpa, len);
        }
    }

    /// Zeroes `[gpa, gpa + len)` of RAM.
    pub fn zero(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        self.walk(gpa, len, |_, _, _| true)?;
        self.walk(gpa, len, |b, off, (_, n)| match b {
            Backing::Ram { mem, offset } => mem.fill(offset + off, n as usize, 0),
            Backing::Rom { .. } | Backing::Mmio(_) => true,
        })?;
        self.notify_written(gpa, len);
        Ok(())
    }

    /// A guest load that missed RAM in the engine: dispatches to the device at `gpa`.
    /// The access must fit one region; anything else reads all-ones.
    pub fn mmio_read(&self, gpa: u64, data: &mut [u8]) -> AccessResult {
        if self.read(gpa, data).is_ok() {
            return AccessResult::Memory;
        }
        match self.find(gpa) {
            Some(Region {
                base,
                len,
                backing: Backing::Mmio(dev),
            }) if (gpa - base) + data.len() as u64 <= *len => {
                let mut dev = dev.lock().unwrap_or_else(|e| e.into_inner());
                dev.read(gpa - base, data);
                AccessResult::Device
            }
            _ => {
                data.fill(0xff);
                self.unassigned.fetch_add(1, Ordering::Relaxed);
                AccessResult::Unassigned
            }
        }
    }

    /// A guest store that missed RAM in the engine: dispatches to the device at `gpa`.
    pub fn mmio_write(&self, gpa: u64, data: &[u8]) -> AccessResult {
        // A guest store to ROM is dropped; one to RAM (rare here: engines write RAM
        // themselves) lands; nothing changes unless every byte is RAM or ROM. The watch is not
        // told: the engine making the store tracks its own code pages.
        if self.write_inner(gpa, data, false).is_ok() {
            return AccessResult::Memory;
        }
        match self.find(gpa) {
            Some(Region {
                base,
                len,
                backing: Backing::Mmio(dev),
            }) if (gpa - base) + data.len() as u64 <= *len => {
                let mut dev = dev.lock().unwrap_or_else(|e| e.into_inner());
                dev.write(gpa - base, data);
                AccessResult::Device
            }
            _ => {
                self.unassigned.fetch_add(1, Ordering::Relaxed);
                AccessResult::Unassigned
            }
        }
    }

    /// Accesses to unassigned addresses so far.
    pub fn unassigned_accesses(&self) -> u64 {
        self.unassigned.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::device::MmioDevice;

    struct Echo(Vec<(u64, Vec<u8>)>);
    impl MmioDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    fn space() -> (AddressSpace, Arc<Mutex<Echo>>) {
        let mem = Arc::new(HostMemory::anonymous(0x3000).unwrap());
        let dev = Arc::new(Mutex::new(Echo(vec![])));
        let mut b = AddressSpaceBuilder::new();
        b.ram(0, mem.clone(), 0, 0x1000).unwrap();
        b.ram(0x1000, mem, 0x1000, 0x1000).unwrap();
        b.rom(0x10000, &[0xaa; 16]).unwrap();
        b.mmio(0x20000, 0x100, dev.clone()).unwrap();
        (b.build(), dev)
    }

    #[test]
    fn ram_access_spans_adjacent_regions() {
        let (s, _) = space();
        s.write(0xffe, &[1, 2, 3, 4]).unwrap();
        let mut b = [0; 4];
        s.read(0xffe, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
    }

    #[test]
    fn out_of_ram_is_an_error_not_a_panic() {
        let (s, _) = space();
        let mut b = [0; 4];
        assert!(s.read(0x1ffe, &mut b).is_err());
        assert!(s.write(0x5000, &b).is_err());
        assert!(s.read(u64::MAX - 1, &mut b).is_err());
        assert!(s.write(0x20000, &b).is_err());
    }

    #[test]
    fn ram_pages_have_host_addresses_rom_and_mmio_do_not() {
        let (s, _) = space();
        let p0 = s.ram_page_host(0x10).unwrap();
        let p1 = s.ram_page_host(0x1fff).unwrap();
        assert_eq!(p1 as usize - p0 as usize, 0x1000);
        assert!(s.ram_page_host(0x10000).is_none());
        assert!(s.ram_page_host(0x20000).is_none());
        assert!(s.ram_page_host(0x5000).is_none());
    }

    #[test]
    fn rom_ignores_guest_writes_but_loads() {
        let (s, _) = space();
        s.write(0x10000, &[1]).unwrap();
        let mut b = [0; 1];
        s.read(0x10000, &mut b).unwrap();
        assert_eq!(b, [0xaa]);
        s.load(0x10000, &[1]).unwrap();
        s.read(0x10000, &mut b).unwrap();
        assert_eq!(b, [1]);
    }

    #[test]
    fn mmio_dispatch_and_unassigned() {
        let (s, dev) = space();
        let mut b = [0; 4];
        assert_eq!(s.mmio_read(0x20010, &mut b), AccessResult::Device);
        assert_eq!(b, [0x10; 4]);
        assert_eq!(s.mmio_write(0x20004, &[9]), AccessResult::Device);
        assert_eq!(dev.lock().unwrap().0, vec![(4, vec![9])]);
        assert_eq!(s.mmio_read(0x200fe, &mut b), AccessResult::Unassigned);
        assert_eq!(s.mmio_read(0xdead_0000, &mut b), AccessResult::Unassigned);
        assert_eq!(b, [0xff; 4]);
        assert_eq!(s.unassigned_accesses(), 2);
    }

    #[test]
    fn overlapping_regions_are_rejected() {
        let mem = Arc::new(HostMemory::anonymous(0x2000).unwrap());
        let mut b = AddressSpaceBuilder::new();
        b.ram(0, mem.clone(), 0, 0x2000).unwrap();
        assert!(b.rom(0x1000, &[0]).is_err());
        assert!(b.ram(0x4000, mem, 0x1000, 0x2000).is_err());
        assert_eq!(b.build().memory_slots().len(), 1);
    }

    #[test]
    fn ram_writes_reach_the_watch() {
        struct Log(Mutex<Vec<(u64, u64)>>);
        impl WriteWatch for Log {
            fn ram_written(&self, gpa: u64, len: u64) {
                self.0.lock().unwrap().push((gpa, len));
            }
        }
        let (s, _) = space();
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        assert!(s.set_write_watch(log.clone()));
        assert!(!s.set_write_watch(log.clone()));
        s.write(0x10, &[1, 2, 3]).unwrap();
        s.zero(0x20, 8).unwrap();
        // The engine's own store (it tracks its code pages itself) is not reported.
        assert_eq!(s.mmio_write(0x30, &[9]), AccessResult::Memory);
        assert!(s.write(0x1_0000_0000, &[1]).is_err());
        s.load(0x40, &[7]).unwrap();
        assert_eq!(
            *log.0.lock().unwrap(),
            vec![(0x10, 3), (0x20, 8), (0x40, 1)]
        );
    }
}
