//! Port and MMIO exits, dispatched to the machine's buses.
//!
//! Plain functions over (buses, exit data) so they are tested without /dev/kvm. A string
//! instruction (`rep insb`) arrives as one exit with `count` elements of `size` bytes; each
//! element is a separate device access, as on hardware.

use tandem_softmmu::{AddressSpace, PortBus};

/// A port read of `count = data.len() / size` elements.
pub fn io_in(ports: &PortBus, port: u16, size: usize, data: &mut [u8]) {
    if size == 0 {
        return;
    }
    for chunk in data.chunks_mut(size) {
        ports.read(port, chunk);
    }
}

/// A port write of `count = data.len() / size` elements.
pub fn io_out(ports: &PortBus, port: u16, size: usize, data: &[u8]) {
    if size == 0 {
        return;
    }
    for chunk in data.chunks(size) {
        ports.write(port, chunk);
    }
}

/// A guest load from an address with no memory slot.
pub fn mmio_read(memory: &AddressSpace, addr: u64, data: &mut [u8]) {
    memory.mmio_read(addr, data);
}

/// A guest store to an address with no memory slot (MMIO, or ROM).
pub fn mmio_write(memory: &AddressSpace, addr: u64, data: &[u8]) {
    memory.mmio_write(addr, data);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tandem_softmmu::{AddressSpaceBuilder, PortDevice};

    use super::*;

    #[derive(Default)]
    struct Fifo {
        out: Vec<Vec<u8>>,
        next: u8,
    }
    impl PortDevice for Fifo {
        fn read(&mut self, _offset: u16, data: &mut [u8]) {
            data.fill(self.next);
            self.next += 1;
        }
        fn write(&mut self, _offset: u16, data: &[u8]) {
            self.out.push(data.to_vec());
        }
    }

    #[test]
    fn string_io_is_one_device_access_per_element() {
        let dev = Arc::new(Mutex::new(Fifo::default()));
        let mut bus = PortBus::new();
        bus.register(0x3f8, 8, dev.clone()).unwrap();
        let mut data = [0u8; 6];
        io_in(&bus, 0x3f8, 2, &mut data);
        assert_eq!(data, [0, 0, 1, 1, 2, 2]);
        io_out(&bus, 0x3f8, 1, b"hi");
        assert_eq!(dev.lock().unwrap().out, vec![b"h".to_vec(), b"i".to_vec()]);
    }

    #[test]
    fn unmapped_mmio_reads_all_ones() {
        let space = AddressSpaceBuilder::new().build();
        let mut data = [0u8; 4];
        mmio_read(&space, 0xfeb0_0000, &mut data);
        assert_eq!(data, [0xff; 4]);
        mmio_write(&space, 0xfeb0_0000, &data);
        assert_eq!(space.unassigned_accesses(), 2);
    }
}
