//! Guest memory as the JIT engine reaches it: linear addresses through the page walk and the
//! TLB, physical addresses through softmmu (RAM, ROM, MMIO dispatch), and the record of pages
//! holding translated code so that writes to them invalidate it.

use std::collections::HashSet;

use tandem_softmmu::AddressSpace;
use tandem_target_x86_64::memory::{Access, LinearMemory, PhysicalMemory};
use tandem_target_x86_64::paging::{self, Privilege};
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
    pub code_pages: HashSet<u64>,
    /// Code pages stores hit since the engine last looked: their translations must go.
    pub code_written: Vec<u64>,
    /// CR2 of the last #PF raised through the interpreter path.
    pub last_cr2: Option<u64>,
    /// The vCPU's exit-request flag: set when code is written, so chained code stops.
    pub exit_request: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryState {
    /// Forgets every translation (paging changed).
    pub fn flush_tlb(&mut self) {
        self.tlb.flush();
        for f in &mut self.fast {
            f.flush();
        }
    }

    /// Records that physical page `page` holds translated code: stores to it must take the
    /// slow path from now on, so that they are seen.
    pub fn add_code_page(&mut self, page: u64) {
        if self.code_pages.insert(page) {
            for f in &mut self.fast {
                f.flush_writes();
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
            if let Some(page) = self.state.tlb.lookup(addr, user, write) {
                return Ok((page << 12) | (addr & 0xfff));
            }
        }
        let who = if user {
            Privilege::User
        } else {
            Privilege::Supervisor
        };
        let t = paging::translate(cpu, &mut Phys(self.space), addr, access, who)?;
        if access != Access::Execute {
            self.state.tlb.fill(addr, t.phys, user, write);
            if let Some(host) = self.space.ram_page_host(t.phys) {
                let writable = write && !self.state.code_pages.contains(&(t.phys >> 12));
                self.state.fast[usize::from(user)].fill(addr, host, writable);
            }
        }
        Ok(t.phys)
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
            self.space.mmio_read(phys, &mut buf[done..done + n]);
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
