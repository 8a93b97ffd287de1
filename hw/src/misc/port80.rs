//! The POST-code port (0x80): firmware writes progress codes here; it also serves as a
//! short I/O delay (Linux's `outb_p`).
//!
//! Writes are accepted and the last value kept for diagnostics; reads return 0xff, as with
//! nothing decoding the read. A wider write keeps its low byte. Warts: no display, no log.

use tandem_softmmu::PortDevice;

/// The POST-code port.
#[derive(Debug, Default)]
pub struct Port80 {
    last: Option<u8>,
}

impl Port80 {
    /// A port that has seen no write.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last value written, if any.
    pub fn last(&self) -> Option<u8> {
        self.last
    }
}

impl PortDevice for Port80 {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) {
        if let Some(&b) = data.first() {
            self.last = Some(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_last_write_and_reads_ones() {
        let mut p = Port80::new();
        assert_eq!(p.last(), None);
        p.write(0, &[0x55]);
        p.write(0, &[0xaa, 0x01]);
        assert_eq!(p.last(), Some(0xaa));
        p.write(0, &[]);
        assert_eq!(p.last(), Some(0xaa));
        let mut d = [0u8; 2];
        p.read(0, &mut d);
        assert_eq!(d, [0xff, 0xff]);
    }
}
