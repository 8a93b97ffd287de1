//! Flat binaries: raw bytes copied to an address the user gives, entered at their first byte in
//! the mode the user asks ([`EntryMode`]).
//!
//! Real mode is for boot-sector-like code: it must end below 1 MiB, gets no boot area (so it may
//! sit at 0x7c00 inside it) and no boot information. Protected and long mode get the same boot
//! area and multiboot information as an ELF kernel, and must lie below 4 GiB.
//! Wart: nothing stops a real-mode image from overwriting the interrupt vector table at 0.

use super::error::LoaderError;
use super::plan::{Chunk, LoadPlan};
use super::{EntryMode, FlatSpec};

const ONE_MIB: u64 = 0x10_0000;
const FOUR_GIB: u64 = 1 << 32;

/// What to load for a flat binary: the whole file at `spec.addr`, entered there.
pub(crate) fn plan<'a>(image: &'a [u8], spec: &FlatSpec) -> Result<LoadPlan<'a>, LoaderError> {
    let addr = spec.addr;
    let len = image.len() as u64;
    let (limit, why) = match spec.mode {
        EntryMode::Real => (ONE_MIB, "a real-mode image must end below 1 MiB"),
        EntryMode::Protected | EntryMode::Long => (FOUR_GIB, "the image must end below 4 GiB"),
    };
    if addr.checked_add(len).is_none_or(|end| end > limit) {
        return Err(LoaderError::FlatAddress { addr, why });
    }
    Ok(LoadPlan {
        chunks: vec![Chunk::new(addr, image, len)?],
        entry: addr,
    })
}
