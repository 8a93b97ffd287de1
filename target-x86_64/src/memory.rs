//! How target code reaches guest memory outside generated code: descriptor tables, interrupt
//! delivery, page walks. The engine implements these over softmmu.

use crate::exception::Fault;

/// Kind of access, for paging permission checks and #PF error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Execute,
}

/// Guest-physical memory (RAM, ROM, MMIO), as page walks see it.
pub trait PhysicalMemory {
    /// Reads `buf.len()` bytes at `gpa`; false if nothing backs it.
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Writes `data` at `gpa`; false if nothing backs it.
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool;
}

/// Guest-linear memory through the current paging mode, with permission checks.
pub trait LinearMemory {
    /// Reads at linear `addr`; `supervisor` accesses (descriptor tables, delivery) ignore CPL.
    fn read_linear(&mut self, addr: u64, buf: &mut [u8], supervisor: bool) -> Result<(), Fault>;
    /// Writes at linear `addr`.
    fn write_linear(&mut self, addr: u64, data: &[u8], supervisor: bool) -> Result<(), Fault>;
}

/// Little-endian helpers over [`LinearMemory`].
pub trait LinearMemoryExt: LinearMemory {
    /// Reads a `u64`.
    fn read_u64(&mut self, addr: u64, supervisor: bool) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read_linear(addr, &mut b, supervisor)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads a `u32`.
    fn read_u32(&mut self, addr: u64, supervisor: bool) -> Result<u32, Fault> {
        let mut b = [0u8; 4];
        self.read_linear(addr, &mut b, supervisor)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a `u16`.
    fn read_u16(&mut self, addr: u64, supervisor: bool) -> Result<u16, Fault> {
        let mut b = [0u8; 2];
        self.read_linear(addr, &mut b, supervisor)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Writes a `u64`.
    fn write_u64(&mut self, addr: u64, v: u64, supervisor: bool) -> Result<(), Fault> {
        self.write_linear(addr, &v.to_le_bytes(), supervisor)
    }
    /// Writes a `u32`.
    fn write_u32(&mut self, addr: u64, v: u32, supervisor: bool) -> Result<(), Fault> {
        self.write_linear(addr, &v.to_le_bytes(), supervisor)
    }
    /// Writes a `u16`.
    fn write_u16(&mut self, addr: u64, v: u16, supervisor: bool) -> Result<(), Fault> {
        self.write_linear(addr, &v.to_le_bytes(), supervisor)
    }
}

impl<T: LinearMemory + ?Sized> LinearMemoryExt for T {}

/// What system instructions reach beyond the CPU and memory: ports, CPUID, time.
pub trait SystemBus {
    /// `in` of `data.len()` bytes from `port`.
    fn port_in(&mut self, port: u16, data: &mut [u8]);
    /// `out` of `data` to `port`.
    fn port_out(&mut self, port: u16, data: &[u8]);
    /// CPUID leaf `function`, subleaf `index`: (eax, ebx, ecx, edx).
    fn cpuid(&mut self, function: u32, index: u32) -> [u32; 4];
    /// The time-stamp counter now.
    fn tsc(&mut self) -> u64;
}
