//! What system instructions reach outside the CPU under the JIT: the port bus, the CPUID table
//! of what the JIT implements, and a TSC that follows host time at 1 GHz: the local APIC's
//! clock when there is one, so that IA32_TSC_DEADLINE (which the APIC converts with a 1 GHz
//! TSC from its clock's origin) and RDTSC agree.

use std::time::Instant;

use tandem_softmmu::irq::LocalApic;
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
    /// TSC value at `boot` (or at the local APIC clock's origin).
    pub tsc_offset: u64,
    /// The vCPU's local APIC, whose clock the TSC follows.
    pub lapic: Option<&'a dyn LocalApic>,
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
        let ns = match self.lapic {
            Some(l) => l.now_ns(),
            None => self.boot.elapsed().as_nanos() as u64,
        };
        self.tsc_offset.wrapping_add(ns)
    }
}
