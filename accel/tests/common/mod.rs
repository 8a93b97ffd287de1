//! What the engine tests share: a bus around an address space, and the flat 32-bit
//! protected-mode state their guests start in.

#![allow(dead_code)]

use std::sync::Arc;

use tandem_accel::{IrqchipConnection, MachineBus};
use tandem_softmmu::{AddressSpace, InterruptPin, PortBus, RunControl};
use tandem_target_x86_64::cpu_state::{bits, sreg};
use tandem_target_x86_64::{CpuState, Segment};

/// An interrupt controller that never has a vector.
pub struct NoAck;
impl tandem_softmmu::InterruptAcknowledge for NoAck {
    fn acknowledge(&self) -> Option<u8> {
        None
    }
}

/// One vCPU's bus over `memory` and `ports`, with a userspace INTR pin nothing raises.
pub fn bus(memory: Arc<AddressSpace>, ports: PortBus, control: Arc<RunControl>) -> MachineBus {
    MachineBus {
        memory,
        ports: Arc::new(ports),
        control,
        irqchip: IrqchipConnection::Userspace {
            pin: InterruptPin::new(),
            ack: Arc::new(NoAck),
        },
        cpus: 1,
    }
}

/// Flat 32-bit protected mode (code 0x18, data 0x10, a TSS at 0x20), entered at `rip`.
pub fn flat32(rip: u64) -> CpuState {
    let mut s = CpuState {
        cr0: bits::CR0_PE | bits::CR0_ET,
        ..CpuState::default()
    };
    s.seg[sreg::CS] = Segment::flat(0x18, true, false);
    for i in [sreg::DS, sreg::ES, sreg::SS, sreg::FS, sreg::GS] {
        s.seg[i] = Segment::flat(0x10, false, false);
    }
    s.tr = Segment::tss(0x20, 0, 0x67);
    s.rip = rip;
    s
}
