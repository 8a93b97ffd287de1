//! System Control Port A (0x92) of PS/2-era chipsets: fast A20 gate and fast reset.
//!
//! Bit 1 (A20) reads back what was written; bit 0 written as 1 posts
//! [`MachineRequest::Reset`] and reads back 0, since it is a pulse (a read-modify-write that
//! only meant to touch A20 must not reset the machine again). Other bits are stored.
//! Warts: A20 is always enabled in this machine whatever bit 1 says (no 1 MiB wrap-around);
//! the security-lock and disk-LED bits do nothing. A wider access uses the low byte; the
//! other bytes read 0xff.

use std::sync::Arc;

use tandem_softmmu::{MachineRequest, PortDevice, RunControl};

const FAST_RESET: u8 = 0x01;
/// A20 gate bit.
pub const A20: u8 = 0x02;

/// System Control Port A.
pub struct Port92 {
    value: u8,
    control: Arc<RunControl>,
}

impl Port92 {
    /// The port, A20 reading as enabled, posting resets to `control`.
    pub fn new(control: Arc<RunControl>) -> Self {
        Self {
            value: A20,
            control,
        }
    }

    /// The A20 bit as the guest last wrote it (the gate itself is always open).
    pub fn a20(&self) -> bool {
        self.value & A20 != 0
    }
}

impl PortDevice for Port92 {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
        if let Some(b) = data.first_mut() {
            *b = self.value;
        }
    }

    fn write(&mut self, _offset: u16, data: &[u8]) {
        let Some(&v) = data.first() else {
            return;
        };
        self.value = v & !FAST_RESET;
        if v & FAST_RESET != 0 {
            self.control.request(MachineRequest::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a20_reads_back_and_bit0_resets() {
        let rc = Arc::new(RunControl::new());
        let mut p = Port92::new(rc.clone());
        let mut b = [0u8];
        p.read(0, &mut b);
        assert_eq!(b[0], A20);
        p.write(0, &[0x00]);
        assert!(!p.a20());
        p.read(0, &mut b);
        assert_eq!(b[0], 0);
        assert_eq!(rc.pending(), None);
        p.write(0, &[A20 | FAST_RESET]);
        assert_eq!(rc.pending(), Some(MachineRequest::Reset));
        p.read(0, &mut b);
        assert_eq!(b[0], A20, "reset bit is a pulse");
    }

    #[test]
    fn wide_accesses_use_the_low_byte() {
        let rc = Arc::new(RunControl::new());
        let mut p = Port92::new(rc.clone());
        p.write(0, &[0x02, 0x01]);
        assert_eq!(rc.pending(), None);
        let mut d = [0u8; 2];
        p.read(0, &mut d);
        assert_eq!(d, [0x02, 0xff]);
        p.write(0, &[]);
    }
}
