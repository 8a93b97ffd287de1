//! REP MOVS and REP STOS done a page at a time by the engine.
//!
//! The x86 semantics do one element per execution and leave RIP on the instruction while
//! elements remain (target-x86_64's `semantics/string.rs`), so a `rep stosb` clearing 4 KiB
//! went round the dispatcher 4,096 times: in the guest workloads of bench/run, busybox's
//! memset and memcpy made 1.4 billion dispatches, most of the time of the awk workloads.
//! When the dispatcher is about to run such an instruction, this does every element that
//! stays within the current destination (and source) page with host memory operations, then
//! lets the dispatcher come round again: interrupts are still taken between chunks, as
//! hardware takes them between iterations.
//!
//! Only the plain case is done here: 64-bit mode, 64-bit addresses, no segment override, DF
//! clear, RAM on both sides and no translated code on the destination page. Anything else
//! (and a fault) falls back to the semantics, which raise the fault on the precise element.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;
use tandem_target_x86_64::memory::Access;
use tandem_target_x86_64::CpuState;

use super::memory::Linear;

/// The element size of a REP MOVS/STOS this module can do, and whether it is a MOVS.
pub fn candidate(i: &Instruction) -> Option<(u64, bool)> {
    if !(i.has_rep_prefix() || i.has_repne_prefix()) || i.op0_kind() != OpKind::MemoryESRDI {
        return None;
    }
    let (w, movs) = match i.mnemonic() {
        Mnemonic::Stosb => (1, false),
        Mnemonic::Stosw => (2, false),
        Mnemonic::Stosd => (4, false),
        Mnemonic::Stosq => (8, false),
        Mnemonic::Movsb => (1, true),
        Mnemonic::Movsw => (2, true),
        Mnemonic::Movsd => (4, true),
        Mnemonic::Movsq => (8, true),
        _ => return None,
    };
    let plain_source = !movs
        || (i.op1_kind() == OpKind::MemorySegRSI
            && matches!(i.segment_prefix(), Register::None | Register::DS));
    plain_source.then_some((w, movs))
}

/// Does the elements of the REP MOVS/STOS `i` (element size `w`) that stay within the current
/// pages; true if it did any. `cpu` is the vCPU's state in 64-bit mode, its RIP at `i`.
pub fn run_chunk(
    cpu: &mut CpuState,
    linear: &mut Linear,
    i: &Instruction,
    w: u64,
    movs: bool,
) -> bool {
    let count = cpu.gpr[reg::RCX];
    if count == 0 || cpu.rflags & bit::DF != 0 {
        return false;
    }
    let (dst, src) = (cpu.gpr[reg::RDI], cpu.gpr[reg::RSI]);
    let room = |a: u64| (4096 - (a & 0xfff)) / w;
    let mut k = count.min(room(dst));
    if movs {
        k = k.min(room(src));
    }
    if k == 0 {
        return false;
    }
    // The source first: the order the semantics access them in, so a fault is left for them
    // before anything changed.
    let len = (k * w) as usize;
    let s = if movs {
        match linear.host_range(cpu, src, len, Access::Read) {
            Some(p) => p,
            None => return false,
        }
    } else {
        std::ptr::null_mut()
    };
    let Some(d) = linear.host_range(cpu, dst, len, Access::Write) else {
        return false;
    };
    if movs {
        // Element by element in order when the destination overlaps the source ahead of it
        // (the guest sees its own writes re-read); otherwise the result equals a memmove.
        let ahead = (d as usize) > (s as usize) && (d as usize) < (s as usize) + len;
        if ahead {
            for e in 0..k as usize {
                let o = e * w as usize;
                // SAFETY: both ranges lie in RAM pages returned by `host_range` (k elements
                // fit in each page), which the address space keeps mapped while the vCPU runs.
                unsafe { std::ptr::copy(s.add(o), d.add(o), w as usize) };
            }
        } else {
            // SAFETY: as above.
            unsafe { std::ptr::copy(s, d, len) };
        }
        cpu.gpr[reg::RSI] = src.wrapping_add(k * w);
    } else {
        let value = cpu.gpr[reg::RAX].to_le_bytes();
        if w == 1 {
            // SAFETY: the destination range lies in one RAM page returned by `host_range`.
            unsafe { std::ptr::write_bytes(d, value[0], len) };
        } else {
            for e in 0..k as usize {
                // SAFETY: as above.
                unsafe {
                    std::ptr::copy_nonoverlapping(value.as_ptr(), d.add(e * w as usize), w as usize)
                };
            }
        }
    }
    cpu.gpr[reg::RDI] = dst.wrapping_add(k * w);
    cpu.gpr[reg::RCX] = count - k;
    if count == k {
        cpu.rip = i.next_ip();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn insn(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn only_plain_rep_movs_and_stos_are_candidates() {
        assert_eq!(candidate(&insn(&[0xf3, 0xaa])), Some((1, false))); // rep stosb
        assert_eq!(candidate(&insn(&[0xf3, 0x48, 0xab])), Some((8, false))); // rep stosq
        assert_eq!(candidate(&insn(&[0xf3, 0xa4])), Some((1, true))); // rep movsb
        assert_eq!(candidate(&insn(&[0xf3, 0xa5])), Some((4, true))); // rep movsd
        assert_eq!(candidate(&insn(&[0xaa])), None); // stosb without rep
        assert_eq!(candidate(&insn(&[0xf3, 0x67, 0xaa])), None); // 32-bit addresses
        assert_eq!(candidate(&insn(&[0xf3, 0x64, 0xa4])), None); // fs: source
        assert_eq!(candidate(&insn(&[0xf3, 0xa6])), None); // repe cmpsb
        assert_eq!(candidate(&insn(&[0xf2, 0x0f, 0x10, 0xc1])), None); // SSE movsd
    }
}
