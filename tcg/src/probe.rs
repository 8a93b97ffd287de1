//! A builder that computes nothing: running semantics over it tells whether an instruction
//! has semantics at all, before the compiler commits IR to it.

use crate::builder::{Builder, Cond, FlagsMemo};
use crate::helper::Helper;
use crate::width::Width;

/// The do-nothing builder.
#[derive(Debug, Default)]
pub struct Probe {
    memo: Option<FlagsMemo<()>>,
}

impl Builder for Probe {
    type Value = ();
    type Trap = ();

    fn imm(&mut self, _: u64) {}
    fn add(&mut self, _: (), _: ()) {}
    fn sub(&mut self, _: (), _: ()) {}
    fn mul(&mut self, _: (), _: ()) {}
    fn umulh(&mut self, _: (), _: ()) {}
    fn smulh(&mut self, _: (), _: ()) {}
    fn and(&mut self, _: (), _: ()) {}
    fn or(&mut self, _: (), _: ()) {}
    fn xor(&mut self, _: (), _: ()) {}
    fn not(&mut self, _: ()) {}
    fn neg(&mut self, _: ()) {}
    fn shl(&mut self, _: (), _: ()) {}
    fn lshr(&mut self, _: (), _: ()) {}
    fn ashr(&mut self, _: (), _: ()) {}
    fn rotl(&mut self, _: (), _: ()) {}
    fn rotr(&mut self, _: (), _: ()) {}
    fn popcnt(&mut self, _: ()) {}
    fn clz(&mut self, _: ()) {}
    fn ctz(&mut self, _: ()) {}
    fn bswap(&mut self, _: ()) {}
    fn icmp(&mut self, _: Cond, _: (), _: ()) {}
    fn select(&mut self, _: (), _: (), _: ()) {}
    fn zext(&mut self, _: (), _: Width) {}
    fn sext(&mut self, _: (), _: Width) {}
    fn load_state(&mut self, _: usize, _: Width) {}
    fn store_state(&mut self, _: usize, _: Width, _: ()) {}
    fn load(&mut self, _: (), _: Width) -> Result<(), ()> {
        Ok(())
    }
    fn store(&mut self, _: (), _: Width, _: ()) -> Result<(), ()> {
        Ok(())
    }
    fn call(&mut self, _: &Helper, _: &[()]) -> Result<(), ()> {
        Ok(())
    }
    fn raise(&mut self, _: u8, _: Option<()>) {}
    fn flags_memo(&mut self) -> &mut Option<FlagsMemo<()>> {
        &mut self.memo
    }
    fn if_then(&mut self, _: (), then: impl FnOnce(&mut Self) -> Result<(), ()>) -> Result<(), ()> {
        // Both paths are explored: a missing piece inside a conditional counts too.
        let _ = then(self);
        Ok(())
    }
}
