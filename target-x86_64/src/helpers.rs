//! Helpers that both tiers call (`extern "C"`, tcg's one signature).

use tandem_tcg::Helper;

use crate::context::X86Context;

/// Folds the lazy flags into RFLAGS and returns it.
extern "C" fn helper_sync_flags(ctx: *mut u8, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: both tiers call helpers with the vCPU's X86Context as the context block.
    let ctx = unsafe { &mut *ctx.cast::<X86Context>() };
    ctx.sync_flags();
    ctx.cpu.rflags
}

/// `helper_sync_flags`.
pub const SYNC_FLAGS: Helper = Helper {
    func: helper_sync_flags,
    name: "sync_flags",
    may_raise: false,
};
