//! Tier 0: the interpreter. Every [`Builder`] operation computes its result at once.
//!
//! The environment ([`InterpEnv`]) supplies the context block (the bytes that `load_state` and
//! `store_state` offsets index, and that helpers receive) and guest memory. Context offsets come
//! from the guest's `offset_of!` constants; an offset outside the block is a translator bug:
//! it reads 0 and writes nothing (and asserts in debug builds) rather than touching other memory.

use crate::builder::{Builder, Cond, FlagsMemo};
use crate::helper::Helper;
use crate::width::Width;

/// Why an interpreted instruction stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpTrap {
    /// A guest exception, to be delivered by the engine.
    Exception {
        /// Vector.
        vector: u8,
        /// Error code, for the vectors that push one.
        error_code: Option<u32>,
    },
}

/// What the interpreter runs against.
pub trait InterpEnv {
    /// The context block.
    fn context(&mut self) -> &mut [u8];
    /// A guest load at linear address `addr`.
    fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap>;
    /// A guest store at linear address `addr`.
    fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap>;
    /// The exception the last helper recorded in the context, if any (cleared on return).
    fn take_helper_exception(&mut self) -> Option<InterpTrap>;
}

/// The interpreter over an environment.
pub struct Interp<'e, E: InterpEnv> {
    env: &'e mut E,
    memo: Option<FlagsMemo<u64>>,
}

impl<'e, E: InterpEnv> Interp<'e, E> {
    /// An interpreter running against `env`.
    pub fn new(env: &'e mut E) -> Self {
        Self { env, memo: None }
    }

    /// The environment.
    pub fn env(&mut self) -> &mut E {
        self.env
    }
}

impl<E: InterpEnv> Builder for Interp<'_, E> {
    type Value = u64;
    type Trap = InterpTrap;

    fn imm(&mut self, v: u64) -> u64 {
        v
    }
    fn add(&mut self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
    fn sub(&mut self, a: u64, b: u64) -> u64 {
        a.wrapping_sub(b)
    }
    fn mul(&mut self, a: u64, b: u64) -> u64 {
        a.wrapping_mul(b)
    }
    fn umulh(&mut self, a: u64, b: u64) -> u64 {
        ((u128::from(a) * u128::from(b)) >> 64) as u64
    }
    fn smulh(&mut self, a: u64, b: u64) -> u64 {
        ((i128::from(a as i64) * i128::from(b as i64)) >> 64) as u64
    }
    fn and(&mut self, a: u64, b: u64) -> u64 {
        a & b
    }
    fn or(&mut self, a: u64, b: u64) -> u64 {
        a | b
    }
    fn xor(&mut self, a: u64, b: u64) -> u64 {
        a ^ b
    }
    fn not(&mut self, a: u64) -> u64 {
        !a
    }
    fn neg(&mut self, a: u64) -> u64 {
        a.wrapping_neg()
    }
    fn shl(&mut self, a: u64, n: u64) -> u64 {
        a << (n & 63)
    }
    fn lshr(&mut self, a: u64, n: u64) -> u64 {
        a >> (n & 63)
    }
    fn ashr(&mut self, a: u64, n: u64) -> u64 {
        ((a as i64) >> (n & 63)) as u64
    }
    fn rotl(&mut self, a: u64, n: u64) -> u64 {
        a.rotate_left((n & 63) as u32)
    }
    fn rotr(&mut self, a: u64, n: u64) -> u64 {
        a.rotate_right((n & 63) as u32)
    }
    fn popcnt(&mut self, a: u64) -> u64 {
        u64::from(a.count_ones())
    }
    fn clz(&mut self, a: u64) -> u64 {
        u64::from(a.leading_zeros())
    }
    fn ctz(&mut self, a: u64) -> u64 {
        u64::from(a.trailing_zeros())
    }
    fn bswap(&mut self, a: u64) -> u64 {
        a.swap_bytes()
    }
    fn icmp(&mut self, cond: Cond, a: u64, b: u64) -> u64 {
        u64::from(cond.eval(a, b))
    }
    fn select(&mut self, c: u64, a: u64, b: u64) -> u64 {
        if c != 0 {
            a
        } else {
            b
        }
    }
    fn zext(&mut self, a: u64, w: Width) -> u64 {
        w.zext(a)
    }
    fn sext(&mut self, a: u64, w: Width) -> u64 {
        w.sext(a)
    }

    fn load_state(&mut self, offset: usize, w: Width) -> u64 {
        let ctx = self.env.context();
        let Some(bytes) = offset
            .checked_add(w.bytes())
            .and_then(|end| ctx.get(offset..end))
        else {
            debug_assert!(false, "context read at {offset} out of range");
            return 0;
        };
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(b)
    }

    fn store_state(&mut self, offset: usize, w: Width, v: u64) {
        let ctx = self.env.context();
        let Some(bytes) = offset
            .checked_add(w.bytes())
            .and_then(|end| ctx.get_mut(offset..end))
        else {
            debug_assert!(false, "context write at {offset} out of range");
            return;
        };
        let n = bytes.len();
        bytes.copy_from_slice(&v.to_le_bytes()[..n]);
    }

    fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap> {
        self.env.load(addr, w)
    }

    fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap> {
        self.env.store(addr, w, w.zext(v))
    }

    fn call(&mut self, helper: &Helper, args: &[u64]) -> Result<u64, InterpTrap> {
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        let ctx = self.env.context().as_mut_ptr();
        let r = (helper.func)(ctx, a(0), a(1), a(2), a(3));
        if helper.may_raise {
            if let Some(trap) = self.env.take_helper_exception() {
                return Err(trap);
            }
        }
        Ok(r)
    }

    fn raise(&mut self, vector: u8, error_code: Option<u64>) -> InterpTrap {
        InterpTrap::Exception {
            vector,
            error_code: error_code.map(|e| e as u32),
        }
    }

    fn flags_memo(&mut self) -> &mut Option<FlagsMemo<u64>> {
        &mut self.memo
    }

    fn if_then(
        &mut self,
        c: u64,
        then: impl FnOnce(&mut Self) -> Result<(), InterpTrap>,
    ) -> Result<(), InterpTrap> {
        if c != 0 {
            then(self)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A context of 64 bytes; byte 56 is the "pending exception" slot of the test helpers.
    struct Env {
        ctx: [u8; 64],
        mem: HashMap<u64, u8>,
    }

    impl Env {
        fn new() -> Self {
            Self {
                ctx: [0; 64],
                mem: HashMap::new(),
            }
        }
    }

    impl InterpEnv for Env {
        fn context(&mut self) -> &mut [u8] {
            &mut self.ctx
        }
        fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap> {
            if addr >= 0x1000 {
                return Err(InterpTrap::Exception {
                    vector: 14,
                    error_code: Some(0),
                });
            }
            let mut v = 0u64;
            for i in 0..w.bytes() as u64 {
                v |= u64::from(*self.mem.get(&(addr + i)).unwrap_or(&0)) << (8 * i);
            }
            Ok(v)
        }
        fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap> {
            if addr >= 0x1000 {
                return Err(InterpTrap::Exception {
                    vector: 14,
                    error_code: Some(2),
                });
            }
            for i in 0..w.bytes() as u64 {
                self.mem.insert(addr + i, (v >> (8 * i)) as u8);
            }
            Ok(())
        }
        fn take_helper_exception(&mut self) -> Option<InterpTrap> {
            let v = std::mem::take(&mut self.ctx[56]);
            (v != 0).then(|| InterpTrap::Exception {
                vector: v - 1,
                error_code: None,
            })
        }
    }

    extern "C" fn helper_divu(ctx: *mut u8, a: u64, b: u64, _: u64, _: u64) -> u64 {
        if b == 0 {
            // SAFETY: the interpreter passes its 64-byte test context.
            unsafe { *ctx.add(56) = 1 };
            return 0;
        }
        a / b
    }

    const DIVU: Helper = Helper {
        func: helper_divu,
        name: "divu",
        may_raise: true,
    };

    /// A tiny "semantics": ctx[0..8] = mem[ctx[8]] / ctx[16], generic over any builder.
    fn load_div_store<B: Builder>(b: &mut B) -> Result<(), B::Trap> {
        let addr = b.load_state(8, Width::W64);
        let x = b.load(addr, Width::W32)?;
        let d = b.load_state(16, Width::W64);
        let q = b.call(&DIVU, &[x, d])?;
        b.store_state(0, Width::W64, q);
        Ok(())
    }

    #[test]
    fn arithmetic_matches_the_x86_definitions() {
        let mut env = Env::new();
        let mut b = Interp::new(&mut env);
        let m = b.imm(u64::MAX);
        let two = b.imm(2);
        assert_eq!(b.umulh(m, two), 1);
        assert_eq!(b.smulh(m, two), u64::MAX);
        assert_eq!(b.ashr(m, two), u64::MAX);
        let s = b.imm(0x80);
        assert_eq!(b.sext(s, Width::W8), 0xffff_ffff_ffff_ff80);
        assert_eq!(b.rotl(s, 57), 1);
        let z = b.imm(0);
        assert_eq!(b.clz(z), 64);
        assert_eq!(b.ctz(s), 7);
        let c = b.icmp(Cond::Slt, m, z);
        assert_eq!(b.select(c, two, z), 2);
        let shift = b.imm(64 + 4);
        assert_eq!(b.shl(s, shift), 0x800, "shift counts are taken modulo 64");
    }

    #[test]
    fn state_memory_and_helpers_compose() {
        let mut env = Env::new();
        env.ctx[8] = 0x40; // address
        env.ctx[16] = 7; // divisor
        env.mem.insert(0x40, 100);
        load_div_store(&mut Interp::new(&mut env)).unwrap();
        assert_eq!(env.ctx[0], 14);
    }

    #[test]
    fn faults_and_helper_exceptions_stop_the_instruction() {
        let mut env = Env::new();
        env.ctx[8] = 0x40;
        env.ctx[0] = 0xaa;
        let r = load_div_store(&mut Interp::new(&mut env));
        assert_eq!(
            r,
            Err(InterpTrap::Exception {
                vector: 0,
                error_code: None
            })
        );
        assert_eq!(env.ctx[0], 0xaa, "the destination is untouched");
        env.ctx[9] = 0x20; // address 0x2040: unmapped
        let r = load_div_store(&mut Interp::new(&mut env));
        assert!(matches!(r, Err(InterpTrap::Exception { vector: 14, .. })));
    }

    #[test]
    fn narrow_stores_touch_only_their_bytes() {
        let mut env = Env::new();
        env.ctx[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut b = Interp::new(&mut env);
        let v = b.imm(0x1234);
        b.store_state(0, Width::W16, v);
        let a = b.imm(0x10);
        b.store(a, Width::W8, v).unwrap();
        assert_eq!(b.load_state(0, Width::W64), 0xffff_ffff_ffff_1234);
        assert_eq!(b.load(a, Width::W16).unwrap(), 0x34);
        let one = b.imm(1);
        let mut ran = false;
        b.if_then(one, |_| {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
    }
}
