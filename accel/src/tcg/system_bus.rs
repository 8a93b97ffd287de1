//! What system instructions reach outside the CPU under the JIT: the port bus, the CPUID table
//! of what the JIT implements, and a TSC that follows host time.

use std::time::Instant;

use tandem_softmmu::PortBus;
use tandem_target_x86_64::memory::SystemBus;
use tandem_target_x86_64::CpuidTable;

/// The JIT's system bus.
pub struct TcgSystemBus<'a> {
    /// Ports.
    pub ports: &'a PortBus,
    /// CPUID leaves.
    pub cpuid: &'a CpuidTable,
    /// TSC origin.
    pub boot: Instant,
    /// TSC value at `boot`.
    pub tsc_offset: u64,
}

impl SystemBus for TcgSystemBus<'_> {
    fn port_in(&mut self, port: u16, data: &mut [u8]) {
        self.ports.read(port, data);
    }

    fn port_out(&mut self, port: u16, data: &[u8]) {
        self.ports.write(port, data);
    }

    fn cpuid(&mut self, function: u32, index: u32) -> [u32; 4] {
        // Leaves above the maximum return the highest basic leaf, as Intel CPUs do; leaves
        // absent from the table read as zeros.
        match self.cpuid.lookup(function, index) {
            Some(e) => [e.eax, e.ebx, e.ecx, e.edx],
            None => [0; 4],
        }
    }

    fn tsc(&mut self) -> u64 {
        // 1 GHz: one tick per host nanosecond.
        self.tsc_offset
            .wrapping_add(self.boot.elapsed().as_nanos() as u64)
    }
}
