//! virtio-blk requests (virtio 1.x §5.2.6): a 16-byte header (type, reserved, sector) in the
//! device-readable buffers, data, and a status byte as the last device-writable byte.
//!
//! Processing is a pure function of (queue, guest memory, disk): [`process_queue`] drains a
//! queue against a [`BlkDisk`], so it can run on the vCPU that notified or, later, on an I/O
//! thread. Framing is free (§2.6.4): header, data and status may be split across descriptors
//! in any way, since chains are read and written as byte streams.
//!
//! A request the driver got wrong (too short a header, data beyond the disk, a length not a
//! multiple of 512, a write to a read-only disk) completes with VIRTIO_BLK_S_IOERR or
//! VIRTIO_BLK_S_UNSUPP; one without a writable status byte completes with a used length of 0
//! and does nothing, since there is nowhere to say what went wrong. Only a broken ring stops
//! the device ([`QueueError`]).

use tandem_block::BlockDriver;
use tandem_softmmu::AddressSpace;

use super::config::{BlkConfig, SECTOR_SIZE};
use super::iobuf::IoBuf;
use crate::virtio::queue::{DescriptorChain, Queue, QueueError};

/// Request types (§5.2.6).
pub mod req_type {
    /// Read sectors.
    pub const IN: u32 = 0;
    /// Write sectors.
    pub const OUT: u32 = 1;
    /// Make completed writes durable.
    pub const FLUSH: u32 = 4;
    /// Read the device's serial (20 bytes).
    pub const GET_ID: u32 = 8;
    /// Deallocate ranges.
    pub const DISCARD: u32 = 11;
    /// Zero ranges.
    pub const WRITE_ZEROES: u32 = 13;
}

/// Status values (§5.2.6).
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// The request failed.
    pub const IOERR: u8 = 1;
    /// The request is not supported.
    pub const UNSUPP: u8 = 2;
}

/// Length of the serial GET_ID returns.
pub const SERIAL_LEN: usize = 20;
/// Bytes of the request header.
const HEADER_LEN: u64 = 16;
/// Bytes of one discard / write-zeroes segment: le64 sector, le32 num_sectors, le32 flags.
const DWZ_SEGMENT_LEN: u64 = 16;
/// Write-zeroes flag: the device may deallocate.
const DWZ_F_UNMAP: u32 = 1;
/// Most bytes of a request moved by one block-layer call. A request is one contiguous disk
/// range, so it takes one call unless it is longer than this (Linux sends at most about
/// 1 MiB); the bound keeps what a guest can make the device allocate small, since the buffer
/// it goes through is kept for the next request.
const MAX_RUN: u64 = 4 << 20;

/// What virtio-blk serves requests from: the image and what the device says about it.
pub struct BlkDisk {
    /// The image.
    pub driver: Box<dyn BlockDriver>,
    /// GET_ID's answer, zero-padded.
    pub serial: [u8; SERIAL_LEN],
    /// Writes, discards and write-zeroes are refused.
    pub read_only: bool,
    /// Limits the configuration space advertises, enforced here.
    pub config: BlkConfig,
    /// What request data passes through between guest memory and the image.
    buf: IoBuf,
}

impl BlkDisk {
    /// A disk serving `driver`.
    pub fn new(
        driver: Box<dyn BlockDriver>,
        serial: [u8; SERIAL_LEN],
        read_only: bool,
        config: BlkConfig,
    ) -> Self {
        Self {
            driver,
            serial,
            read_only,
            config,
            buf: IoBuf::default(),
        }
    }
}

/// Drains `queue`: serves every available request, re-enabling notifications at the end and
/// serving what arrived meanwhile. True if the driver wants an interrupt.
pub fn process_queue(
    queue: &mut Queue,
    mem: &AddressSpace,
    disk: &mut BlkDisk,
) -> Result<bool, QueueError> {
    loop {
        queue.disable_notification(mem)?;
        while let Some(chain) = queue.pop(mem)? {
            let used = execute(&chain, mem, disk)?;
            queue.add_used(mem, chain.head, used)?;
        }
        if !queue.enable_notification(mem)? {
            break;
        }
    }
    queue.needs_notification(mem)
}

/// Serves one request; returns the bytes written into its buffers (the used length).
pub fn execute(
    chain: &DescriptorChain,
    mem: &AddressSpace,
    disk: &mut BlkDisk,
) -> Result<u32, QueueError> {
    let writable = chain.writable_len();
    let Some(status_at) = writable.checked_sub(1) else {
        return Ok(0);
    };
    let (status, data_written) = if chain.readable_len() < HEADER_LEN {
        (status::IOERR, 0)
    } else {
        let mut h = [0u8; HEADER_LEN as usize];
        chain.read_at(mem, 0, &mut h)?;
        let kind = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let sector = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let req = Request {
            chain,
            mem,
            sector,
            data_in: status_at,
        };
        req.run(kind, disk)?
    };
    chain.write_at(mem, status_at, &[status])?;
    // Writable bytes are at most the chain's total, and a chain's lengths are u32 each; the
    // used length field is u32, so saturate rather than wrap for absurd chains.
    Ok(u32::try_from(data_written + 1).unwrap_or(u32::MAX))
}

/// One parsed request: its chain, start sector and the length of its device-writable data
/// (the writable bytes before the status byte).
struct Request<'a> {
    chain: &'a DescriptorChain,
    mem: &'a AddressSpace,
    sector: u64,
    data_in: u64,
}

impl Request<'_> {
    /// Device-readable data after the header.
    fn data_out(&self) -> u64 {
        self.chain.readable_len() - HEADER_LEN
    }

    /// Runs the request: (status, bytes of data written to the guest).
    fn run(&self, kind: u32, disk: &mut BlkDisk) -> Result<(u8, u64), QueueError> {
        let writes = matches!(
            kind,
            req_type::OUT | req_type::DISCARD | req_type::WRITE_ZEROES
        );
        if writes && disk.read_only {
            return Ok((status::IOERR, 0));
        }
        match kind {
            req_type::IN => self.read(disk),
            req_type::OUT => self.write(disk).map(|s| (s, 0)),
            req_type::FLUSH => Ok((ok_or_ioerr(disk.driver.flush().is_ok()), 0)),
            req_type::GET_ID => {
                let n = self.data_in.min(SERIAL_LEN as u64);
                self.chain
                    .write_at(self.mem, 0, &disk.serial[..n as usize])?;
                Ok((status::OK, n))
            }
            req_type::DISCARD | req_type::WRITE_ZEROES => self
                .discard_or_zero(kind == req_type::DISCARD, disk)
                .map(|s| (s, 0)),
            _ => Ok((status::UNSUPP, 0)),
        }
    }

    /// The byte range `[sector * 512, + len)` if it is whole sectors within the disk.
    fn disk_range(&self, sector: u64, len: u64, disk: &BlkDisk) -> Option<u64> {
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        let end = offset.checked_add(len)?;
        (len.is_multiple_of(SECTOR_SIZE) && end <= disk.driver.size()).then_some(offset)
    }

    fn read(&self, disk: &mut BlkDisk) -> Result<(u8, u64), QueueError> {
        let Some(offset) = self.disk_range(self.sector, self.data_in, disk) else {
            return Ok((status::IOERR, 0));
        };
        let mut done = 0;
        while done < self.data_in {
            let n = (self.data_in - done).min(MAX_RUN) as usize;
            let buf = disk.buf.get(n);
            if disk.driver.read_at(offset + done, buf).is_err() {
                // What reached the guest so far is still reported as written.
                return Ok((status::IOERR, done));
            }
            // Through AddressSpace::write, so the engine hears of DMA into code pages.
            self.chain.write_at(self.mem, done, buf)?;
            done += n as u64;
        }
        Ok((status::OK, done))
    }

    fn write(&self, disk: &mut BlkDisk) -> Result<u8, QueueError> {
        let len = self.data_out();
        let Some(offset) = self.disk_range(self.sector, len, disk) else {
            return Ok(status::IOERR);
        };
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MAX_RUN) as usize;
            let buf = disk.buf.get(n);
            self.chain.read_at(self.mem, HEADER_LEN + done, buf)?;
            if disk.driver.write_at(offset + done, buf).is_err() {
                return Ok(status::IOERR);
            }
            done += n as u64;
        }
        Ok(status::OK)
    }

    /// DISCARD or WRITE_ZEROES: a list of (sector, num_sectors, flags) segments.
    fn discard_or_zero(&self, discard: bool, disk: &mut BlkDisk) -> Result<u8, QueueError> {
        let c = &disk.config;
        let (max_seg, max_sectors) = if discard {
            (c.max_discard_seg, c.max_discard_sectors)
        } else {
            (c.max_write_zeroes_seg, c.max_write_zeroes_sectors)
        };
        let len = self.data_out();
        let count = len / DWZ_SEGMENT_LEN;
        if len == 0 || !len.is_multiple_of(DWZ_SEGMENT_LEN) || count > u64::from(max_seg) {
            return Ok(status::UNSUPP);
        }
        let mut segs = Vec::with_capacity(count as usize);
        for i in 0..count {
            let mut s = [0u8; DWZ_SEGMENT_LEN as usize];
            self.chain
                .read_at(self.mem, HEADER_LEN + i * DWZ_SEGMENT_LEN, &mut s)?;
            let sector = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            let sectors = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
            let flags = u32::from_le_bytes([s[12], s[13], s[14], s[15]]);
            // §5.2.6.2: unknown flags, and unmap on a discard, are unsupported.
            if flags & !DWZ_F_UNMAP != 0 || (discard && flags != 0) {
                return Ok(status::UNSUPP);
            }
            let bytes = u64::from(sectors) * SECTOR_SIZE;
            let Some(offset) = self.disk_range(sector, bytes, disk) else {
                return Ok(status::IOERR);
            };
            if sectors > max_sectors {
                return Ok(status::IOERR);
            }
            segs.push((offset, bytes));
        }
        // Checked whole before any is applied, so a bad list changes nothing.
        for (offset, bytes) in segs {
            let r = if discard {
                disk.driver.discard(offset, bytes)
            } else {
                disk.driver.write_zeroes(offset, bytes)
            };
            if r.is_err() {
                return Ok(status::IOERR);
            }
        }
        Ok(status::OK)
    }
}

fn ok_or_ioerr(ok: bool) -> u8 {
    if ok {
        status::OK
    } else {
        status::IOERR
    }
}
