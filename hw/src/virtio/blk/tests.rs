//! virtio-blk tests: requests built as chains in guest memory, run against an in-memory disk;
//! data, status bytes and used lengths checked, malformed requests included.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tandem_block::{check_range, BlockDriver, BlockError};
use tandem_softmmu::AddressSpace;

use super::config::feature;
use super::request::{process_queue, req_type, status};
use super::*;
use crate::virtio::queue::QueueError;
use crate::virtio::testing::*;

/// What the test can see of the in-memory disk after the device took it.
#[derive(Default)]
struct DiskState {
    data: Mutex<Vec<u8>>,
    flushes: AtomicU32,
    discards: Mutex<Vec<(u64, u64)>>,
}

struct MemDisk {
    state: Arc<DiskState>,
    read_only: bool,
}

impl BlockDriver for MemDisk {
    fn format_name(&self) -> &'static str {
        "mem"
    }
    fn size(&self) -> u64 {
        self.state.data.lock().unwrap().len() as u64
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let d = self.state.data.lock().unwrap();
        buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(self.size(), offset, data.len() as u64)?;
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let mut d = self.state.data.lock().unwrap();
        d[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.state.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), BlockError> {
        check_range(self.size(), offset, len)?;
        self.state.discards.lock().unwrap().push((offset, len));
        Ok(())
    }
}

/// A 64 KiB disk whose byte `i` is `i * 7 % 251`, and the state the test inspects.
fn mem_disk(read_only: bool) -> (Box<dyn BlockDriver>, Arc<DiskState>) {
    let state = Arc::new(DiskState::default());
    *state.data.lock().unwrap() = (0..64 << 10).map(|i: u32| (i * 7 % 251) as u8).collect();
    let disk = MemDisk {
        state: state.clone(),
        read_only,
    };
    (Box::new(disk), state)
}

const HDR: u64 = DATA;
const BUF: u64 = DATA + 0x1000;
const STATUS: u64 = DATA + 0x800;

struct Bench {
    mem: Arc<AddressSpace>,
    ring: DriverRing,
    queue: Queue,
    disk: BlkDisk,
    state: Arc<DiskState>,
}

impl Bench {
    fn new(read_only: bool) -> Self {
        let mem = guest_memory();
        let ring = DriverRing::new(16);
        let queue = Queue::new(&mem, ring.layout, 16, true, true).unwrap();
        let (driver, state) = mem_disk(read_only);
        let blk = VirtioBlk::new(driver, "tandem-disk-0", read_only);
        Self {
            mem,
            ring,
            queue,
            disk: blk.disk,
            state,
        }
    }

    fn header(&self, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(HDR, &h).unwrap();
        self.mem.write(STATUS, &[0xee]).unwrap();
    }

    /// Runs one chain; returns (status byte, used length).
    fn run(&mut self, bufs: &[(u64, u32, bool)]) -> (u8, u32) {
        let head = self.ring.add_chain(&self.mem, bufs);
        // As a driver waiting for this completion: interrupt once the used index moves.
        let used = self.ring.used_idx(&self.mem);
        self.ring.set_used_event(&self.mem, used);
        assert!(process_queue(&mut self.queue, &self.mem, &mut self.disk).unwrap());
        let used = self.ring.used(&self.mem, self.ring.used_idx(&self.mem) - 1);
        assert_eq!(used.0, u32::from(head));
        let mut s = [0u8];
        self.mem.read(STATUS, &mut s).unwrap();
        (s[0], used.1)
    }

    /// A request of `kind` with `data` bytes of data in the usual three-part layout.
    fn request(&mut self, kind: u32, sector: u64, data: u32, device_writes: bool) -> (u8, u32) {
        self.header(kind, sector);
        self.run(&[
            (HDR, 16, false),
            (BUF, data, device_writes),
            (STATUS, 1, true),
        ])
    }

    fn disk_bytes(&self, at: usize, len: usize) -> Vec<u8> {
        self.state.data.lock().unwrap()[at..at + len].to_vec()
    }

    fn guest_bytes(&self, at: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read(at, &mut b).unwrap();
        b
    }
}

#[test]
fn reads_sectors_into_guest_buffers() {
    let mut b = Bench::new(false);
    assert_eq!(b.request(req_type::IN, 3, 1024, true), (status::OK, 1025));
    assert_eq!(b.guest_bytes(BUF, 1024), b.disk_bytes(3 * 512, 1024));
}

#[test]
fn writes_sectors_from_guest_buffers() {
    let mut b = Bench::new(false);
    b.mem.write(BUF, &[0x5a; 512]).unwrap();
    assert_eq!(b.request(req_type::OUT, 127, 512, false), (status::OK, 1));
    assert_eq!(b.disk_bytes(127 * 512, 512), vec![0x5a; 512]);
}

#[test]
fn any_framing_is_served() {
    // Header split in two, data and status sharing one writable descriptor.
    let mut b = Bench::new(false);
    b.header(req_type::IN, 1);
    let (s, used) = b.run(&[
        (HDR, 5, false),
        (HDR + 5, 11, false),
        (STATUS - 512, 513, true),
    ]);
    assert_eq!((s, used), (status::OK, 513));
    assert_eq!(b.guest_bytes(STATUS - 512, 512), b.disk_bytes(512, 512));
}

#[test]
fn flush_get_id_and_unknown_types() {
    let mut b = Bench::new(false);
    assert_eq!(b.request(req_type::FLUSH, 0, 0, false).0, status::OK);
    assert_eq!(b.state.flushes.load(Ordering::SeqCst), 1);
    // A FLUSH without data: header and status only.
    b.header(req_type::FLUSH, 0);
    assert_eq!(
        b.run(&[(HDR, 16, false), (STATUS, 1, true)]),
        (status::OK, 1)
    );
    assert_eq!(b.request(req_type::GET_ID, 0, 20, true), (status::OK, 21));
    assert_eq!(&b.guest_bytes(BUF, 20), b"tandem-disk-0\0\0\0\0\0\0\0");
    assert_eq!(b.request(10, 0, 16, true), (status::UNSUPP, 1));
}

fn dwz_segment(mem: &AddressSpace, at: u64, sector: u64, sectors: u32, flags: u32) {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&sectors.to_le_bytes());
    s[12..].copy_from_slice(&flags.to_le_bytes());
    mem.write(at, &s).unwrap();
}

#[test]
fn discard_and_write_zeroes() {
    let mut b = Bench::new(false);
    dwz_segment(&b.mem, BUF, 8, 16, 0);
    dwz_segment(&b.mem, BUF + 16, 64, 8, 0);
    assert_eq!(b.request(req_type::DISCARD, 0, 32, false), (status::OK, 1));
    assert_eq!(
        *b.state.discards.lock().unwrap(),
        vec![(4096, 8192), (32768, 4096)]
    );
    dwz_segment(&b.mem, BUF, 2, 3, 1);
    assert_eq!(
        b.request(req_type::WRITE_ZEROES, 0, 16, false).0,
        status::OK
    );
    assert_eq!(b.disk_bytes(1024, 1536), vec![0; 1536]);
    assert_ne!(b.disk_bytes(1024 + 1536, 1), vec![0]);
    // Unmap on a discard and unknown flags are unsupported; ranges past the end are errors;
    // a bad segment anywhere in the list stops the whole request.
    dwz_segment(&b.mem, BUF, 0, 1, 1);
    assert_eq!(b.request(req_type::DISCARD, 0, 16, false).0, status::UNSUPP);
    dwz_segment(&b.mem, BUF, 0, 1, 2);
    assert_eq!(
        b.request(req_type::WRITE_ZEROES, 0, 16, false).0,
        status::UNSUPP
    );
    dwz_segment(&b.mem, BUF, 0, 1, 0);
    dwz_segment(&b.mem, BUF + 16, 127, 2, 0);
    assert_eq!(b.request(req_type::DISCARD, 0, 32, false).0, status::IOERR);
    assert_eq!(b.state.discards.lock().unwrap().len(), 2);
    // More segments than max_write_zeroes_seg, and a length that is not whole segments.
    assert_eq!(
        b.request(req_type::WRITE_ZEROES, 0, 32, false).0,
        status::UNSUPP
    );
    assert_eq!(b.request(req_type::DISCARD, 0, 17, false).0, status::UNSUPP);
}

#[test]
fn malformed_requests_get_error_statuses() {
    let mut b = Bench::new(false);
    let before = b.disk_bytes(0, 64 << 10);
    // Header too short.
    b.header(req_type::IN, 0);
    assert_eq!(
        b.run(&[(HDR, 8, false), (BUF, 512, true), (STATUS, 1, true)]),
        (status::IOERR, 1)
    );
    // Data beyond the disk, a sector whose byte offset overflows, a partial sector.
    assert_eq!(b.request(req_type::IN, 128, 512, true), (status::IOERR, 1));
    assert_eq!(b.request(req_type::IN, 127, 1024, true), (status::IOERR, 1));
    assert_eq!(
        b.request(req_type::OUT, 127, 1024, false),
        (status::IOERR, 1)
    );
    assert_eq!(
        b.request(req_type::IN, u64::MAX / 256, 512, true),
        (status::IOERR, 1)
    );
    assert_eq!(b.request(req_type::OUT, 0, 100, false), (status::IOERR, 1));
    // No writable status byte: nothing is done and nothing is written.
    b.header(req_type::OUT, 0);
    assert_eq!(b.run(&[(HDR, 16, false), (BUF, 512, false)]), (0xee, 0));
    b.header(req_type::OUT, 0);
    assert_eq!(
        b.run(&[(HDR, 16, false), (BUF, 512, false), (STATUS, 1, false)]),
        (0xee, 0)
    );
    assert_eq!(b.disk_bytes(0, 64 << 10), before);
}

#[test]
fn read_only_disks_refuse_writes() {
    let mut b = Bench::new(true);
    let before = b.disk_bytes(0, 512);
    b.mem.write(BUF, &[1; 512]).unwrap();
    assert_eq!(b.request(req_type::OUT, 0, 512, false), (status::IOERR, 1));
    dwz_segment(&b.mem, BUF, 0, 1, 0);
    assert_eq!(
        b.request(req_type::WRITE_ZEROES, 0, 16, false).0,
        status::IOERR
    );
    assert_eq!(b.request(req_type::DISCARD, 0, 16, false).0, status::IOERR);
    assert_eq!(b.disk_bytes(0, 512), before);
    assert_eq!(b.request(req_type::IN, 0, 512, true).0, status::OK);
}

#[test]
fn features_and_config_describe_the_disk() {
    let (driver, _) = mem_disk(false);
    let rw = VirtioBlk::new(driver, "x", false);
    let f = rw.features();
    assert_ne!(f & feature::DISCARD, 0);
    assert_eq!(f & feature::RO, 0);
    let mut cap = [0u8; 8];
    rw.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 128);
    let mut blk_size = [0u8; 4];
    rw.read_config(0x14, &mut blk_size);
    assert_eq!(u32::from_le_bytes(blk_size), 512);
    let mut past = [0xffu8; 4];
    rw.read_config(0x1000, &mut past);
    assert_eq!(past, [0; 4]);
    let (driver, _) = mem_disk(true);
    let ro = VirtioBlk::new(driver, "x", false);
    assert!(ro.is_read_only());
    assert_eq!(
        ro.features() & (feature::DISCARD | feature::WRITE_ZEROES),
        0
    );
    assert_ne!(ro.features() & feature::RO, 0);
}

#[derive(Default)]
struct Signals(Mutex<Vec<u16>>);
impl VirtioInterrupt for Signals {
    fn signal_used_queue(&self, queue: u16) {
        self.0.lock().unwrap().push(queue);
    }
    fn signal_config_change(&self) {}
}

#[test]
fn device_serves_notifications_once_active_and_reports_broken_rings() {
    let mem = guest_memory();
    let mut ring = DriverRing::new(16);
    let (driver, _) = mem_disk(false);
    let mut dev = VirtioBlk::new(driver, "x", false);
    let signals = Arc::new(Signals::default());
    assert_eq!(dev.queue_notify(0), Ok(()));
    let queue = Queue::new(&mem, ring.layout, QUEUE_SIZE, true, true).unwrap();
    let act = |queue| Activation {
        memory: GuestMemory::connected(&mem),
        features: dev_features(),
        queues: vec![queue],
        interrupt: signals.clone(),
    };
    assert_eq!(
        dev.activate(act(None)),
        Err(DeviceError::QueueNotEnabled(0))
    );
    dev.activate(act(Some(queue))).unwrap();
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&req_type::FLUSH.to_le_bytes());
    mem.write(HDR, &h).unwrap();
    ring.add_chain(&mem, &[(HDR, 16, false), (STATUS, 1, true)]);
    dev.queue_notify(0).unwrap();
    assert_eq!(*signals.0.lock().unwrap(), vec![0]);
    assert_eq!(ring.used_idx(&mem), 1);
    // A chain that loops stops the device with a typed error.
    ring.write_desc(&mem, 5, (HDR, 16, F_NEXT, 5));
    ring.publish(&mem, 5);
    assert_eq!(
        dev.queue_notify(0),
        Err(DeviceError::Queue {
            index: 0,
            source: QueueError::ChainTooLong(16)
        })
    );
    dev.reset();
    assert_eq!(dev.queue_notify(0), Ok(()));
}

fn dev_features() -> u64 {
    crate::virtio::features::VERSION_1
}
