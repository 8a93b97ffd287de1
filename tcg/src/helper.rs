//! Helpers: ordinary `extern "C"` functions that both tiers call for what is not worth
//! expressing as operations (division with #DE, CPUID, descriptor loads, string instructions).
//!
//! Every helper has one signature: the context block and up to four arguments in, one value
//! out. A helper that raises a guest exception records it in the context (where, is the guest's
//! business: [`Helper::may_raise`] tells the builder to check after the call) and returns.

/// The one helper signature: `(context, a0, a1, a2, a3) -> result`.
pub type HelperFn = extern "C" fn(ctx: *mut u8, a0: u64, a1: u64, a2: u64, a3: u64) -> u64;

/// A helper and what the builder must know about it.
#[derive(Clone, Copy)]
pub struct Helper {
    /// The function.
    pub func: HelperFn,
    /// Its name, for traces and IR dumps.
    pub name: &'static str,
    /// It may raise a guest exception: check the context's pending-exception field after it.
    pub may_raise: bool,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "helper_{}", self.name)
    }
}
