//! Guest memory as the JIT engine reaches it: linear addresses through the page walk and the
//! TLB, physical addresses through the vCPU's own APIC page first and then softmmu (RAM, ROM,
//! MMIO dispatch), and the record of pages holding translated code so that writes to them
//! invalidate it.
//!
//! The APIC page is per CPU, so it is not a region of the shared address space: accesses whose
//! physical page is the local APIC's go to it, and that page never enters the fast TLB (even if
//! the guest moved it over RAM), so compiled code always takes the slow path there.

use std::collections::HashSet;

use std::sync::Arc;

use tandem_softmmu::irq::LocalApic;
use tandem_softmmu::AddressSpace;

use super::fast_hash::PageSet;
use tandem_target_x86_64::memory::{Access, LinearMemory, PhysicalMemory};
use tandem_target_x86_64::paging::{self, Privilege, Translation};
use tandem_target_x86_64::{CpuState, Fault};

use tandem_tcg::jit::fast_tlb::FastTlb;

use super::tlb::Tlb;

/// Physical memory over the shared address space.
pub struct Phys<'a>(pub &'a AddressSpace);

impl PhysicalMemory for Phys<'_> {
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.read(gpa, buf).is_ok()
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool {
        self.0.write(gpa, data).is_ok()
    }
}

/// The per-vCPU memory state that outlives one block: TLBs and code pages.
#[derive(Default)]
pub struct MemoryState {
    /// The software TLB (linear to physical).
    pub tlb: Tlb,
    /// The TLBs compiled code probes (linear to host RAM): supervisor, user.
    pub fast: [FastTlb; 2],
    /// Physical page numbers holding translated code.
    pub code_pages: PageSet,
    /// Large pages (linear base, size) with pieces in the TLBs, for INVLPG.
    pub large_pages: HashSet<(u64, u64)>,
    /// Code pages stores hit since the engine last looked: their translations must go.
    pub code_written: Vec<u64>,
    /// CR2 of the last #PF raised through the interpreter path.
    pub last_cr2: Option<u64>,
    /// The vCPU's exit-request flag: set when code is written, so chained code stops.
    pub exit_request: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The vCPU's local APIC, if the machine gives it one.
    pub apic: Option<Arc<dyn LocalApic>>,
    /// The code pages as the threads writing RAM behind the vCPU see them (device DMA).
    pub watch: Option<Arc<super::code_watch::CodeWatch>>,
    /// Physical page number the local APIC decodes now (see [`MemoryState::refresh_apic_page`]).
    pub apic_page: Option<u64>,
}

impl MemoryState {
    /// Forgets every translation (paging changed).
    pub fn flush_tlb(&mut self) {
        self.tlb.flush();
        for f in &mut self.fast {
            f.flush();
        }
        self.large_pages.clear();
    }

    /// Forgets the non-global translations (a CR3 write). The large-page list stays: global
    /// large pages may still be cached, and INVLPG must find them.
    pub fn flush_non_global(&mut self) {
        self.tlb.flush_non_global();
        for f in &mut self.fast {
            f.flush_non_global();
        }
    }

    /// Re-reads where the local APIC's page is, after anything that may have moved it (an
    /// APIC-base write, a reset); the TLBs are flushed, since a RAM page may have become the
    /// APIC's or the APIC's page RAM again.
    pub fn refresh_apic_page(&mut self) {
        let page = self
            .apic
            .as_ref()
            .and_then(|a| a.mmio_page())
            .map(|p| p >> 12);
        if page != self.apic_page {
            self.apic_page = page;
            self.flush_tlb();
        }
    }

    /// The local APIC if physical address `phys` lies in its page.
    fn apic_at(&self, phys: u64) -> Option<&dyn LocalApic> {
        if self.apic_page == Some(phys >> 12) {
            self.apic.as_deref()
        } else {
            None
        }
    }

    /// Forgets the translation of the page holding `linear` (INVLPG); true if that was a
    /// large page, whose 4 KiB pieces were all dropped.
    pub fn invalidate_page(&mut self, linear: u64) -> bool {
        // The TLBs hold 4 KiB pieces of large pages, and one INVLPG anywhere in a large page
        // must drop all of them (Linux issues one per 2 MiB page when it unmaps huge pages).
        let hit = self
            .large_pages
            .iter()
            .copied()
            .find(|(base, size)| linear.wrapping_sub(*base) < *size);
        match hit {
            Some((_, size)) if size > 2 << 20 => self.flush_tlb(),
            Some((base, size)) => {
                self.large_pages.remove(&(base, size));
                // Wrapping: a large page may end at the top of the address space.
                for offset in (0..size).step_by(4096) {
                    self.drop_piece(base.wrapping_add(offset));
                }
            }
            None => self.drop_piece(linear),
        }
        hit.is_some()
    }

    fn drop_piece(&mut self, linear: u64) {
        self.tlb.invalidate(linear);
        for f in &mut self.fast {
            f.invalidate(linear);
        }
    }

    /// Records that physical page `page` holds translated code: stores to it must take the
    /// slow path from now on, so that they are seen.
    /// `host` is where the page is in host memory, if it is RAM.
    pub fn add_code_page(&mut self, page: u64, host: Option<*mut u8>) {
        if self.code_pages.insert(page) {
            if let Some(w) = &self.watch {
                w.mark(page);
            }
            for f in &mut self.fast {
                match host {
                    Some(h) => f.revoke_writes_to(h),
                    None => f.flush_writes(),
                }
            }
        }
    }
}

/// Linear-memory access for one vCPU at one moment (its CPU state decides paging and CPL).
pub struct Linear<'a> {
    /// The address space.
    pub space: &'a AddressSpace,
    /// TLB, code pages.
    pub state: &'a mut MemoryState,
}

impl Linear<'_> {
    /// Translates `addr` for `access`; `supervisor` forces a supervisor access.
    pub fn translate(
        &mut self,
        cpu: &CpuState,
        addr: u64,
        access: Access,
        supervisor: bool,
    ) -> Result<u64, Fault> {
        let user = !supervisor && cpu.cpl() == 3;
        let write = access == Access::Write;
        if access != Access::Execute {
            if let Some((page, global)) = self.state.tlb.lookup(addr, user, write) {
                let phys = (page << 12) | (addr & 0xfff);
                // The fast TLB may have lost this page (to a conflict, or its write permission
                // to a new code page elsewhere): put it back, or compiled code keeps coming here.
                self.fill_fast(addr, phys, user, write, global);
                return Ok(phys);
            }
        }
        let who = if user {
            Privilege::User
        } else {
            Privilege::Supervisor
        };
        let t = paging::translate(cpu, &mut Phys(self.space), addr, access, who)?;
        if access != Access::Execute {
            self.state.tlb.fill(addr, t.phys, user, write, t.global);
            if t.page_size > 4096 {
                let base = addr & !(t.page_size - 1);
                self.state.large_pages.insert((base, t.page_size));
            }
            self.fill_fast(addr, t.phys, user, write, t.global);
        }
        Ok(t.phys)
    }

    /// The page walk of an instruction fetch at `addr` with the current privilege (fetches
    /// are not cached in the data TLBs).
    pub fn translate_fetch(&mut self, cpu: &CpuState, addr: u64) -> Result<Translation, Fault> {
        let who = if cpu.cpl() == 3 {
            Privilege::User
        } else {
            Privilege::Supervisor
        };
        paging::translate(cpu, &mut Phys(self.space), addr, Access::Execute, who)
    }

    /// The host address of the `len` bytes at linear `addr` (within one page) for `access`,
    /// if compiled code's fast path could take them: plain RAM, and for writes no translated
    /// code on the page (the fast TLB's rules, since the translation fills it). None on a
    /// fault as well: the caller leaves the access to the semantics, which raise it.
    pub fn host_range(
        &mut self,
        cpu: &CpuState,
        addr: u64,
        len: usize,
        access: Access,
    ) -> Option<*mut u8> {
        self.translate(cpu, addr, access, false).ok()?;
        let user = cpu.cpl() == 3;
        self.state.fast[usize::from(user)].lookup(addr, len, access == Access::Write)
    }

    /// Enters `addr` -> `phys` in the fast TLB of `user`'s privilege if it is plain RAM (not
    /// the APIC page); stores allowed if `write` and no translated code is on the page.
    fn fill_fast(&mut self, addr: u64, phys: u64, user: bool, write: bool, global: bool) {
        if self.state.apic_page == Some(phys >> 12) {
            return;
        }
        if let Some(host) = self.space.ram_page_host(phys) {
            let writable = write && !self.state.code_pages.contains(&(phys >> 12));
            self.state.fast[usize::from(user)].fill(addr, host, writable, global);
        }
    }

    /// Reads `buf.len()` bytes at linear `addr` (page-crossing handled), MMIO included.
    pub fn read(
        &mut self,
        cpu: &CpuState,
        addr: u64,
        buf: &mut [u8],
        supervisor: bool,
    ) -> Result<(), Fault> {
        let user = !supervisor && cpu.cpl() == 3;
        if let Some(p) = self.state.fast[usize::from(user)].lookup(addr, buf.len(), false) {
            // SAFETY: a fast-TLB hit is a RAM page of the address space, which outlives us, and
            // the access stays inside that page (checked by lookup).
            unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
            return Ok(());
        }
        let mut done = 0;
        while done < buf.len() {
            let a = addr.wrapping_add(done as u64);
            let n = (buf.len() - done).min(4096 - (a & 0xfff) as usize);
            let phys = self.translate(cpu, a, Access::Read, supervisor)?;
            let chunk = &mut buf[done..done + n];
            match self.state.apic_at(phys) {
                Some(apic) => apic.mmio_read(phys & 0xfff, chunk),
                None => {
                    self.space.mmio_read(phys, chunk);
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at linear `addr` (page-crossing handled: both pages are translated before
    /// anything is written, so a fault on the second leaves memory untouched).
    pub fn write(
        &mut self,
        cpu: &CpuState,
        addr: u64,
        data: &[u8],
        supervisor: bool,
    ) -> Result<(), Fault> {
        let user = !supervisor && cpu.cpl() == 3;
        if let Some(p) = self.state.fast[usize::from(user)].lookup(addr, data.len(), true) {
            // SAFETY: as in `read`; write hits exist only for RAM pages without code.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
            return Ok(());
        }
        let first = (4096 - (addr & 0xfff) as usize).min(data.len());
        let p0 = self.translate(cpu, addr, Access::Write, supervisor)?;
        let p1 = if first < data.len() {
            Some(self.translate(
                cpu,
                addr.wrapping_add(first as u64),
                Access::Write,
                supervisor,
            )?)
        } else {
            None
        };
        self.store_phys(p0, &data[..first]);
        if let Some(p1) = p1 {
            self.store_phys(p1, &data[first..]);
        }
        Ok(())
    }

    fn store_phys(&mut self, phys: u64, data: &[u8]) {
        if let Some(apic) = self.state.apic_at(phys) {
            apic.mmio_write(phys & 0xfff, data);
            return;
        }
        let frame = phys >> 12;
        if self.state.code_pages.contains(&frame) {
            if !self.state.code_written.contains(&frame) {
                self.state.code_written.push(frame);
            }
            self.state
                .exit_request
                .store(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.space.mmio_write(phys, data);
    }
}

/// [`LinearMemory`] for system instructions and delivery: a `Linear` bound to a CPU state.
pub struct BoundLinear<'a, 'b> {
    /// The memory.
    pub linear: &'b mut Linear<'a>,
    /// The CPU whose paging and CPL apply (a copy: delivery changes the live one as it goes).
    pub cpu: CpuState,
}

impl LinearMemory for BoundLinear<'_, '_> {
    fn read_linear(&mut self, addr: u64, buf: &mut [u8], supervisor: bool) -> Result<(), Fault> {
        self.linear.read(&self.cpu, addr, buf, supervisor)
    }
    fn write_linear(&mut self, addr: u64, data: &[u8], supervisor: bool) -> Result<(), Fault> {
        self.linear.write(&self.cpu, addr, data, supervisor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invlpg_of_a_large_page_at_the_top_of_the_address_space() {
        let mut m = MemoryState::default();
        let base = 0xffff_ffff_ffe0_0000;
        m.large_pages.insert((base, 2 << 20));
        assert!(m.invalidate_page(0xffff_ffff_fff0_0123));
        assert!(m.large_pages.is_empty());
        assert!(!m.invalidate_page(0xffff_ffff_ffff_f000));
    }
}
