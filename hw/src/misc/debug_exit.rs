//! QEMU's isa-debug-exit: a guest write ends the run with a chosen exit status.
//!
//! A write of value `v` (1, 2 or 4 bytes, little-endian; an 8-byte write uses its low 32 bits)
//! at any offset posts [`MachineRequest::DebugExit`]`(v)`; the run loop then exits the process
//! with `(v << 1) | 1`, as QEMU does, so a test kernel can report pass or fail. Reads return 0.
//! Warts: only the first request posted wins until the run loop clears it (a later write is
//! lost), which is [`RunControl`]'s rule for every request.

use std::sync::Arc;

use tandem_softmmu::device::data_to_u64;
use tandem_softmmu::{MachineRequest, PortDevice, RunControl};

/// The debug-exit port.
pub struct DebugExit {
    control: Arc<RunControl>,
}

impl DebugExit {
    /// A port posting its exit requests to `control`.
    pub fn new(control: Arc<RunControl>) -> Self {
        Self { control }
    }
}

impl PortDevice for DebugExit {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Truncation to the low 32 bits is the documented behaviour for 8-byte writes.
        let v = data_to_u64(data) as u32;
        self.control.request(MachineRequest::DebugExit(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit_code_of(data: &[u8]) -> Option<MachineRequest> {
        let rc = Arc::new(RunControl::new());
        let mut dev = DebugExit::new(rc.clone());
        dev.write(0, data);
        rc.pending()
    }

    #[test]
    fn writes_post_debug_exit_with_little_endian_value() {
        assert_eq!(exit_code_of(&[0x10]), Some(MachineRequest::DebugExit(0x10)));
        assert_eq!(
            exit_code_of(&[0x34, 0x12]),
            Some(MachineRequest::DebugExit(0x1234))
        );
        assert_eq!(
            exit_code_of(&[1, 0, 0, 0x80]),
            Some(MachineRequest::DebugExit(0x8000_0001))
        );
        assert_eq!(
            exit_code_of(&[2, 0, 0, 0, 9, 9, 9, 9]),
            Some(MachineRequest::DebugExit(2))
        );
        assert_eq!(exit_code_of(&[]), None);
    }

    #[test]
    fn reads_zero_and_post_nothing() {
        let rc = Arc::new(RunControl::new());
        let mut dev = DebugExit::new(rc.clone());
        let mut d = [0xffu8; 4];
        dev.read(0, &mut d);
        assert_eq!(d, [0; 4]);
        assert!(!rc.stop_requested());
    }
}
