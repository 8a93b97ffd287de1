//! One definition, two tiers: the same generic semantics run by the interpreter and compiled by
//! Cranelift must leave the same context, including on the trap paths.

use tandem_tcg::jit::{Compiler, JitAbi, EXIT_NORMAL, EXIT_TRAP};
use tandem_tcg::{Builder, Cond, Helper, Interp, InterpEnv, InterpTrap, Width};

/// The test context: 8 u64 slots. 0: pc, 1: trap vector (+1), 2: trap error, 3..7: data;
/// memory is 64 bytes at the end, addresses 0..64 (anything else faults with #PF).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ctx {
    slot: [u64; 8],
    mem: [u8; 64],
}

const PC: usize = 0;
const TRAP_VEC: usize = 8;
const TRAP_ERR: usize = 16;
const A: usize = 24;
const B: usize = 32;
const OUT: usize = 40;
const OUT2: usize = 48;

fn bytes(c: &mut Ctx) -> &mut [u8] {
    // SAFETY: Ctx is repr(C) plain integers; the slice covers it exactly.
    unsafe { std::slice::from_raw_parts_mut((c as *mut Ctx).cast::<u8>(), size_of::<Ctx>()) }
}

fn mem_access(ctx: *mut u8, addr: u64, size: u64) -> Option<*mut u8> {
    if addr.checked_add(size)? > 64 {
        // SAFETY: ctx is a Ctx (both tiers pass the one under test).
        let c = unsafe { &mut *ctx.cast::<Ctx>() };
        c.slot[1] = 14 + 1;
        c.slot[2] = 0;
        return None;
    }
    // SAFETY: in bounds of the 64-byte memory (checked above).
    Some(unsafe { ctx.add(64 + addr as usize) })
}

extern "C" fn load(ctx: *mut u8, addr: u64, size: u64) -> u64 {
    let Some(p) = mem_access(ctx, addr, size) else {
        return 0;
    };
    let mut b = [0u8; 8];
    // SAFETY: p..p+size is inside the memory (mem_access).
    unsafe { std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), size as usize) };
    u64::from_le_bytes(b)
}

extern "C" fn store(ctx: *mut u8, addr: u64, size: u64, v: u64) {
    if let Some(p) = mem_access(ctx, addr, size) {
        // SAFETY: as in `load`.
        unsafe { std::ptr::copy_nonoverlapping(v.to_le_bytes().as_ptr(), p, size as usize) };
    }
}

extern "C" fn helper_div(ctx: *mut u8, a: u64, b: u64, _: u64, _: u64) -> u64 {
    if b == 0 {
        // SAFETY: ctx is a Ctx.
        unsafe { (*ctx.cast::<Ctx>()).slot[1] = 1 };
        return 0;
    }
    a / b
}

const DIV: Helper = Helper {
    func: helper_div,
    name: "div",
    may_raise: true,
};

struct Env(Ctx);
impl InterpEnv for Env {
    fn context(&mut self) -> &mut [u8] {
        bytes(&mut self.0)
    }
    fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap> {
        let v = load(bytes(&mut self.0).as_mut_ptr(), addr, w.bytes() as u64);
        self.take_helper_exception().map_or(Ok(v), Err)
    }
    fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap> {
        store(bytes(&mut self.0).as_mut_ptr(), addr, w.bytes() as u64, v);
        self.take_helper_exception().map_or(Ok(()), Err)
    }
    fn take_helper_exception(&mut self) -> Option<InterpTrap> {
        let v = std::mem::take(&mut self.0.slot[1]);
        let e = std::mem::replace(&mut self.0.slot[2], u64::MAX);
        (v != 0).then(|| InterpTrap::Exception {
            vector: (v - 1) as u8,
            error_code: (e != u64::MAX).then_some(e as u32),
        })
    }
}

/// The semantics under test: a mix of every kind of operation.
fn semantics<B: Builder>(b: &mut B) -> Result<(), B::Trap> {
    let a = b.load_state(A, Width::W64);
    let x = b.load_state(B, Width::W64);
    let m = b.load(x, Width::W32)?;
    let s = b.add(a, m);
    let sx = b.sext(s, Width::W16);
    let hi = b.umulh(sx, a);
    let three = b.imm(3);
    let r = b.rotr(sx, three);
    let zero = b.imm(0);
    let is_zero = b.icmp(Cond::Eq, a, zero);
    b.if_then(is_zero, |b| {
        let e = b.imm(0x77);
        Err(b.raise(13, Some(e)))
    })?;
    let mask = b.imm(0xff);
    let low = b.and(a, mask);
    let q = b.call(&DIV, &[r, low])?;
    let lt = b.icmp(Cond::Slt, sx, q);
    let pick = b.select(lt, hi, q);
    let pc = b.clz(pick);
    b.store_state(OUT, Width::W64, pc);
    b.store_state(OUT2, Width::W16, pick);
    let addr = b.imm(8);
    b.store(addr, Width::W64, pick)?;
    Ok(())
}

fn abi() -> JitAbi {
    JitAbi {
        pc_offset: PC as i32,
        trap_vector_offset: TRAP_VEC as i32,
        trap_error_offset: TRAP_ERR as i32,
        cacheable: [(24, 56), (0, 0)],
        fast_tlb_offset: None,
        exit_request: 0,
        chain_last_offset: 0,
        chain_hops_offset: 0,
        load,
        store,
    }
}

fn start(a: u64, b: u64) -> Ctx {
    let mut c = Ctx {
        slot: [0; 8],
        mem: [0; 64],
    };
    c.slot[2] = u64::MAX;
    c.slot[3] = a;
    c.slot[4] = b;
    c.mem[16..20].copy_from_slice(&0x8765_4321u32.to_le_bytes());
    c
}

#[test]
fn interpreter_and_cranelift_leave_the_same_state() {
    let mut compiler = Compiler::new().unwrap();
    let block = compiler
        .compile(&abi(), 1, |jb| {
            jb.begin_insn(0x1234);
            let _ = semantics(jb);
            jb.finish(EXIT_NORMAL);
        })
        .unwrap();
    // Normal path; a load fault (#PF); the helper's #DE; the explicit #GP(0x77).
    let cases = [
        (5, 16, None),
        (0xffff_ffff_ffff_fff0, 16, None),
        (5, 100, Some(14)),
        (0x100, 16, Some(0)),
        (0, 16, Some(13)),
    ];
    for (a, b, expect) in cases {
        let mut env = Env(start(a, b));
        let interp = semantics(&mut Interp::new(&mut env));
        let mut jit = start(a, b);
        // SAFETY: the block was compiled for Ctx's offsets by the live compiler.
        let code = unsafe { block.call(bytes(&mut jit).as_mut_ptr()) };
        let got = match interp {
            Ok(()) => None,
            Err(InterpTrap::Exception { vector, .. }) => Some(vector),
        };
        assert_eq!(
            got, expect,
            "a={a:#x} b={b}: the case takes its intended path"
        );
        match interp {
            Ok(()) => {
                assert_eq!(code, EXIT_NORMAL, "a={a:#x} b={b}");
                assert_eq!(env.0.slot[3..], jit.slot[3..], "a={a:#x} b={b}");
                assert_eq!(env.0.mem, jit.mem, "a={a:#x} b={b}");
            }
            Err(InterpTrap::Exception { vector, error_code }) => {
                assert_eq!(code, EXIT_TRAP, "a={a:#x} b={b}");
                assert_eq!(jit.slot[0], 0x1234, "the trapping PC is stored");
                assert_eq!(jit.slot[1], u64::from(vector) + 1, "a={a:#x} b={b}");
                let je = (jit.slot[2] != u64::MAX).then_some(jit.slot[2] as u32);
                assert_eq!(je, error_code, "a={a:#x} b={b}");
                assert_eq!(env.0.slot[5..], jit.slot[5..], "partial effects agree");
            }
        }
    }
    assert!(compiler.stats.code_bytes > 0);
}
