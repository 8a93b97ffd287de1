//! virtio-blk's feature bits and configuration space (virtio 1.x §5.2.3-§5.2.4).

/// The unit of `capacity` and of request sectors, whatever the block size.
pub const SECTOR_SIZE: u64 = 512;

/// Device feature bits (§5.2.3), as masks.
pub mod feature {
    /// `size_max` is valid.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// `geometry` is valid.
    pub const GEOMETRY: u64 = 1 << 4;
    /// The disk is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are served.
    pub const FLUSH: u64 = 1 << 9;
    /// `topology` is valid.
    pub const TOPOLOGY: u64 = 1 << 10;
    /// DISCARD requests are served.
    pub const DISCARD: u64 = 1 << 13;
    /// WRITE_ZEROES requests are served.
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Bytes of `struct virtio_blk_config` up to `write_zeroes_may_unmap` and its padding.
pub const CONFIG_LEN: usize = 0x3c;

/// The values the configuration space reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkConfig {
    /// Disk size in 512-byte sectors.
    pub capacity: u64,
    /// Most segments in one request (besides header and status).
    pub seg_max: u32,
    /// Logical block size in bytes.
    pub blk_size: u32,
    /// log2(physical block / logical block).
    pub physical_block_exp: u8,
    /// Most sectors in one discard segment.
    pub max_discard_sectors: u32,
    /// Most segments in one discard request.
    pub max_discard_seg: u32,
    /// Discard granularity in sectors.
    pub discard_sector_alignment: u32,
    /// Most sectors in one write-zeroes segment.
    pub max_write_zeroes_sectors: u32,
    /// Most segments in one write-zeroes request.
    pub max_write_zeroes_seg: u32,
    /// Write-zeroes with the unmap flag may deallocate.
    pub write_zeroes_may_unmap: bool,
}

impl BlkConfig {
    /// The little-endian layout the driver reads.
    pub fn to_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0x00, &self.capacity.to_le_bytes());
        // size_max (0x08) and geometry (0x10) stay zero: their features are not offered.
        put(0x0c, &self.seg_max.to_le_bytes());
        put(0x14, &self.blk_size.to_le_bytes());
        // topology: physical_block_exp, alignment_offset, min_io_size, opt_io_size.
        put(0x18, &[self.physical_block_exp]);
        // writeback (0x20) is meaningless without CONFIG_WCE; num_queues (0x22) without MQ.
        put(0x22, &1u16.to_le_bytes());
        put(0x24, &self.max_discard_sectors.to_le_bytes());
        put(0x28, &self.max_discard_seg.to_le_bytes());
        put(0x2c, &self.discard_sector_alignment.to_le_bytes());
        put(0x30, &self.max_write_zeroes_sectors.to_le_bytes());
        put(0x34, &self.max_write_zeroes_seg.to_le_bytes());
        put(0x38, &[u8::from(self.write_zeroes_may_unmap)]);
        b
    }
}
