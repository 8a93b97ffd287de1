//! Segment and gate descriptors as read from the GDT, LDT and IDT (Intel SDM Vol. 3A 3.4.5
//! segment descriptors, 3.5 system descriptor types, 5.8.3 call gates, 6.11/6.14.1 IDT gates,
//! 7.2.3 the 64-bit TSS descriptor).
//!
//! Every table access is bounds-checked against the table limit with checked arithmetic and
//! goes through [`LinearMemory`] as an implicit supervisor access. Errors are the selector
//! error codes the SDM gives (`selector & 0xfffc`); callers that deliver external events add
//! the EXT bit.
//!
//! Warts: the accessed bit is set in memory on segment loads but never checked by anyone.

use crate::context::X86Context;
use crate::exception::Fault;
use crate::memory::{LinearMemory, LinearMemoryExt};
use crate::segment::Segment;

/// An 8-byte descriptor, plus the upper 8 bytes of a 16-byte system descriptor in IA-32e mode
/// (0 when not read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Bytes 0..8.
    pub lo: u64,
    /// Bytes 8..16 (16-byte system descriptors and 64-bit gates only).
    pub hi: u64,
}

impl Descriptor {
    /// Descriptor type (4 bits).
    pub fn type_(&self) -> u8 {
        ((self.lo >> 40) & 0xf) as u8
    }
    /// S: code/data (true) or system (false).
    pub fn s(&self) -> bool {
        self.lo & (1 << 44) != 0
    }
    /// DPL.
    pub fn dpl(&self) -> u8 {
        ((self.lo >> 45) & 3) as u8
    }
    /// Present.
    pub fn present(&self) -> bool {
        self.lo & (1 << 47) != 0
    }
    /// L (64-bit code).
    pub fn l(&self) -> bool {
        self.lo & (1 << 53) != 0
    }
    /// D/B.
    pub fn db(&self) -> bool {
        self.lo & (1 << 54) != 0
    }
    /// G.
    pub fn g(&self) -> bool {
        self.lo & (1 << 55) != 0
    }
    /// AVL.
    pub fn avl(&self) -> bool {
        self.lo & (1 << 52) != 0
    }
    /// Base (bits 63:32 from `hi` for 16-byte system descriptors).
    pub fn base(&self) -> u64 {
        let b = ((self.lo >> 16) & 0xff_ffff) | (((self.lo >> 56) & 0xff) << 24);
        b | ((self.hi & 0xffff_ffff) << 32)
    }
    /// Limit in bytes, scaled by G.
    pub fn limit(&self) -> u32 {
        let raw = ((self.lo & 0xffff) | (((self.lo >> 48) & 0xf) << 16)) as u32;
        if self.g() {
            (raw << 12) | 0xfff
        } else {
            raw
        }
    }
    /// A code segment (S = 1, type bit 3).
    pub fn is_code(&self) -> bool {
        self.s() && self.type_() & 0x8 != 0
    }
    /// A conforming code segment.
    pub fn is_conforming(&self) -> bool {
        self.is_code() && self.type_() & 0x4 != 0
    }
    /// A readable segment: any data segment or readable code.
    pub fn is_readable(&self) -> bool {
        self.s() && (self.type_() & 0x8 == 0 || self.type_() & 0x2 != 0)
    }
    /// A writable data segment.
    pub fn is_writable_data(&self) -> bool {
        self.s() && self.type_() & 0xa == 0x2
    }
    /// Gate target offset (bits 63:32 from `hi` for 64-bit gates).
    pub fn gate_offset(&self) -> u64 {
        (self.lo & 0xffff) | (((self.lo >> 48) & 0xffff) << 16) | ((self.hi & 0xffff_ffff) << 32)
    }
    /// Gate target selector.
    pub fn gate_selector(&self) -> u16 {
        ((self.lo >> 16) & 0xffff) as u16
    }
    /// IST index of a 64-bit gate (0: none).
    pub fn gate_ist(&self) -> u8 {
        ((self.lo >> 32) & 7) as u8
    }

    /// The segment-register value loaded from this descriptor with `selector`.
    pub fn to_segment(&self, selector: u16) -> Segment {
        Segment {
            base: self.base(),
            limit: self.limit(),
            selector,
            type_: self.type_(),
            present: self.present(),
            dpl: self.dpl(),
            db: self.db(),
            s: self.s(),
            l: self.l(),
            g: self.g(),
            avl: self.avl(),
            unusable: false,
        }
    }
}

/// True for a null selector (index 0 in the GDT, any RPL).
pub fn is_null(selector: u16) -> bool {
    selector & 0xfffc == 0
}

/// The #GP error code for `selector`.
pub fn sel_code(selector: u16) -> u32 {
    u32::from(selector & 0xfffc)
}

/// The linear address of `selector`'s descriptor of `size` (8 or 16) bytes in the GDT or LDT,
/// or #GP(selector) when it is past the table's limit (or the LDT is unusable).
pub fn descriptor_address(ctx: &X86Context, selector: u16, size: u64) -> Result<u64, Fault> {
    let (base, limit) = if selector & 4 != 0 {
        let ldt = &ctx.cpu.ldt;
        if ldt.unusable || is_null(ldt.selector) {
            return Err(Fault::gp(sel_code(selector)));
        }
        (ldt.base, u64::from(ldt.limit))
    } else {
        (ctx.cpu.gdt.base, u64::from(ctx.cpu.gdt.limit))
    };
    let offset = u64::from(selector & 0xfff8);
    if offset + size - 1 > limit {
        return Err(Fault::gp(sel_code(selector)));
    }
    Ok(base.wrapping_add(offset))
}

/// Reads `selector`'s 8-byte descriptor (`wide`: 16 bytes, for system descriptors in IA-32e
/// mode).
pub fn read_descriptor(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
    wide: bool,
) -> Result<Descriptor, Fault> {
    let addr = descriptor_address(ctx, selector, if wide { 16 } else { 8 })?;
    let lo = mem.read_u64(addr, true)?;
    let hi = if wide {
        mem.read_u64(addr.wrapping_add(8), true)?
    } else {
        0
    };
    Ok(Descriptor { lo, hi })
}

/// Sets the accessed bit (type bit 0) of a code/data descriptor in memory if it is clear.
pub fn set_accessed(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
    d: &Descriptor,
) -> Result<(), Fault> {
    if !d.s() || d.type_() & 1 != 0 {
        return Ok(());
    }
    let addr = descriptor_address(ctx, selector, 8)?.wrapping_add(5);
    let byte = ((d.lo >> 40) & 0xff) as u8 | 1;
    mem.write_linear(addr, &[byte], true)
}

/// Sets the busy bit (type bit 1) of a TSS descriptor in the GDT.
pub fn set_tss_busy(
    ctx: &X86Context,
    mem: &mut dyn LinearMemory,
    selector: u16,
    d: &Descriptor,
) -> Result<(), Fault> {
    let addr = descriptor_address(ctx, selector, 8)?.wrapping_add(5);
    let byte = ((d.lo >> 40) & 0xff) as u8 | 2;
    mem.write_linear(addr, &[byte], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_classic_flat_descriptors() {
        let code64 = Descriptor {
            lo: 0x00af_9b00_0000_ffff,
            hi: 0,
        };
        assert!(code64.is_code() && code64.l() && !code64.db());
        assert_eq!(code64.limit(), 0xffff_ffff);
        assert_eq!(code64.to_segment(8), Segment::flat(8, true, true));
        let data = Descriptor {
            lo: 0x00cf_9300_0000_ffff,
            hi: 0,
        };
        assert!(data.is_writable_data() && data.is_readable() && !data.is_code());
        assert_eq!(data.to_segment(16), Segment::flat(16, false, false));
    }

    #[test]
    fn gate_fields_follow_the_sdm_layout() {
        // 64-bit interrupt gate: offset 0x1234_5678_9abc_def0, selector 8, IST 3, DPL 3, P.
        let g = Descriptor {
            lo: 0x9abc_ee03_0008_def0,
            hi: 0x1234_5678,
        };
        assert_eq!(g.gate_offset(), 0x1234_5678_9abc_def0);
        assert_eq!(g.gate_selector(), 8);
        assert_eq!(g.gate_ist(), 3);
        assert_eq!(
            (g.type_(), g.dpl(), g.present(), g.s()),
            (0xe, 3, true, false)
        );
    }
}
