//! Being told of writes to guest RAM that an engine did not make itself: device DMA, page-walk
//! accessed/dirty updates, loaders. The JIT needs them: a disk read into a page that held
//! translated code must drop those translations, as a guest store there does.

/// Receives every write to RAM through [`AddressSpace`](crate::AddressSpace)'s `write`,
/// `load` and `zero`; not `mmio_write`, an engine's own store, which the engine tracks itself.
pub trait WriteWatch: Send + Sync {
    /// `[gpa, gpa + len)` of RAM was written.
    fn ram_written(&self, gpa: u64, len: u64);
}
