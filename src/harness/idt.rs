//! The harness's IDT and its exception stubs.
//!
//! Every vector has an interrupt gate (CS 0x08, IST 1, so delivery always lands on the
//! harness's stack whatever the snippet did to RSP) pointing at an 8-byte stub:
//!
//! ```text
//! push imm8 vector   ; 6a vv   the only thing the handler stores
//! hlt                ; f4      the engine returns "halted" with RIP inside the stubs
//! jmp short hlt      ; eb fd   never resumed, but a stray resume halts again
//! ```
//!
//! The stubs run at CPL0, emulated on PVM (about 1 µs per instruction), so they do as little as
//! possible: no register is clobbered, the flags are the CPU's frame copy, and the harness reads
//! the vector, the error code (if any) and the interrupted RIP/CS/RFLAGS/RSP/SS off the stack.
//! Gates are DPL0 except vectors 3 and 4 (`int3`, `into`), DPL3 so that a snippet's `int3`
//! reports #BP as a user program sees it; `int n` for any other vector raises #GP.

use tandem_hw::loader::boot_setup::SEL_CODE64;

use super::layout::{STUBS_ADDR, STUB_SIZE};

/// Bytes in the IDT.
pub const IDT_SIZE: usize = 256 * 16;

/// One 64-bit interrupt gate to `target` on IST 1 with privilege `dpl`.
fn gate(target: u64, dpl: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(target as u16).to_le_bytes());
    g[2..4].copy_from_slice(&SEL_CODE64.to_le_bytes());
    g[4] = 1; // IST 1
    g[5] = 0x80 | (dpl & 3) << 5 | 0xe; // present, 64-bit interrupt gate
    g[6..8].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((target >> 32) as u32).to_le_bytes());
    g
}

/// The IDT's bytes.
pub fn idt() -> Vec<u8> {
    let mut v = Vec::with_capacity(IDT_SIZE);
    for vector in 0..256u64 {
        let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
        v.extend_from_slice(&gate(STUBS_ADDR + vector * STUB_SIZE, dpl));
    }
    v
}

/// The stubs' bytes, [`STUB_SIZE`] per vector.
pub fn stubs() -> Vec<u8> {
    let mut v = Vec::with_capacity(256 * STUB_SIZE as usize);
    for vector in 0..=255u8 {
        v.extend_from_slice(&[0x6a, vector, 0xf4, 0xeb, 0xfd, 0xcc, 0xcc, 0xcc]);
    }
    v
}

/// The vector whose stub holds `rip`, if `rip` is inside the stubs.
pub fn stub_vector(rip: u64) -> Option<u8> {
    let off = rip.checked_sub(STUBS_ADDR)?;
    u8::try_from(off / STUB_SIZE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_point_at_their_stubs() {
        let t = idt();
        assert_eq!(t.len(), IDT_SIZE);
        // Vector 14: offset 0x9070, selector 8, IST 1, DPL0 interrupt gate.
        assert_eq!(
            &t[14 * 16..14 * 16 + 12],
            &[0x70, 0x90, 8, 0, 1, 0x8e, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(t[3 * 16 + 5], 0xee);
        let s = stubs();
        assert_eq!(&s[14 * 8..14 * 8 + 3], &[0x6a, 14, 0xf4]);
        assert_eq!(stub_vector(STUBS_ADDR + 14 * 8 + 3), Some(14));
        assert_eq!(stub_vector(STUBS_ADDR + 256 * 8), None);
        assert_eq!(stub_vector(0x40_0000 - 0x40_0000), None);
    }
}
