//! What compiled code calls back into: guest loads and stores through the vCPU's memory, and
//! the ABI that tells the compiler where the PC and the trap record live in `X86Context`.

use tandem_target_x86_64::context::{
    CHAIN_HOPS, CHAIN_LAST, FAST_TLB, HELPER_ERROR, HELPER_VECTOR, JIT_CACHEABLE, RIP,
};
use tandem_target_x86_64::exception::vector;
use tandem_target_x86_64::X86Context;
use tandem_tcg::jit::JitAbi;

use super::memory::Linear;

/// The ABI of this engine's compiled blocks; `exit_request` is the address of the vCPU's
/// exit-request flag.
pub fn abi(exit_request: u64) -> JitAbi {
    JitAbi {
        exit_request,
        chain_last_offset: CHAIN_LAST as i32,
        chain_hops_offset: CHAIN_HOPS as i32,
        pc_offset: RIP as i32,
        trap_vector_offset: HELPER_VECTOR as i32,
        trap_error_offset: HELPER_ERROR as i32,
        cacheable: JIT_CACHEABLE,
        fast_tlb_offset: Some(FAST_TLB as i32),
        load: jit_load,
        store: jit_store,
    }
}

/// # Safety
/// `ctx` must be the X86Context a compiled block was called with, whose `engine` field the
/// engine set to a live `Linear` for the duration of the call.
unsafe fn parts<'a>(ctx: *mut u8) -> (&'a mut X86Context, &'a mut Linear<'a>) {
    // SAFETY: per the function's contract; the engine does not touch either while compiled
    // code runs, so these are the only live references.
    unsafe {
        let c = &mut *ctx.cast::<X86Context>();
        let l = &mut *(c.engine as *mut Linear<'a>);
        (c, l)
    }
}

fn record(c: &mut X86Context, l: &mut Linear<'_>, f: tandem_target_x86_64::Fault) {
    if f.vector == vector::PF {
        l.state.last_cr2 = f.cr2;
    }
    c.helper_vector = u64::from(f.vector) + 1;
    c.helper_error = f.error_code.map_or(u64::MAX, u64::from);
}

extern "C" fn jit_load(ctx: *mut u8, addr: u64, size: u64) -> u64 {
    // SAFETY: only compiled blocks call this, with their context (see `parts`).
    let (c, l) = unsafe { parts(ctx) };
    let mut b = [0u8; 8];
    let n = (size as usize).min(8);
    match l.read(&c.cpu, addr, &mut b[..n], false) {
        Ok(()) => u64::from_le_bytes(b),
        Err(f) => {
            record(c, l, f);
            0
        }
    }
}

extern "C" fn jit_store(ctx: *mut u8, addr: u64, size: u64, value: u64) {
    // SAFETY: as in `jit_load`.
    let (c, l) = unsafe { parts(ctx) };
    let n = (size as usize).min(8);
    if let Err(f) = l.write(&c.cpu, addr, &value.to_le_bytes()[..n], false) {
        record(c, l, f);
    }
}
