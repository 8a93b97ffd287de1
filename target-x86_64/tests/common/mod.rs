//! A minimal executor for semantics tests: a flat 1 MiB memory (no paging, no devices), running
//! 64-bit code from CODE until HLT, a fault or an instruction without semantics — on both
//! tiers: tcg's interpreter and the Cranelift compiler (each instruction compiled on its own),
//! which must agree on every register, flag, byte of memory and on how the run ended. The
//! interpreter's result is what tests check by hand.

#![allow(dead_code)]

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions};
use std::collections::HashMap;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_target_x86_64::{CpuState, X86Context};

use tandem_target_x86_64::context::{HELPER_ERROR, HELPER_VECTOR, RIP};
use tandem_tcg::jit::{CompiledBlock, Compiler, JitAbi, EXIT_NORMAL, EXIT_TRAP};
use tandem_tcg::{Builder, Interp, InterpEnv, InterpTrap, Probe, Width};

/// Size of the flat memory.
pub const MEM: usize = 1 << 20;
/// Where code is assembled and starts.
pub const CODE: u64 = 0x1000;
/// Initial RSP.
pub const STACK_TOP: u64 = 0x8_0000;

/// The context and the flat memory.
pub struct FlatEnv {
    /// Registers and lazy flags.
    pub ctx: X86Context,
    /// Guest memory at physical = linear 0..MEM.
    pub mem: Vec<u8>,
}

fn page_fault(addr: u64, write: bool) -> InterpTrap {
    let _ = addr;
    InterpTrap::Exception {
        vector: 14,
        error_code: Some(if write { 2 } else { 0 }),
    }
}

impl InterpEnv for FlatEnv {
    fn context(&mut self) -> &mut [u8] {
        self.ctx.as_bytes_mut()
    }
    fn load(&mut self, addr: u64, w: Width) -> Result<u64, InterpTrap> {
        let a = usize::try_from(addr).map_err(|_| page_fault(addr, false))?;
        let bytes = self
            .mem
            .get(a..a + w.bytes())
            .ok_or_else(|| page_fault(addr, false))?;
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(b))
    }
    fn store(&mut self, addr: u64, w: Width, v: u64) -> Result<(), InterpTrap> {
        let a = usize::try_from(addr).map_err(|_| page_fault(addr, true))?;
        let bytes = self
            .mem
            .get_mut(a..a + w.bytes())
            .ok_or_else(|| page_fault(addr, true))?;
        bytes.copy_from_slice(&v.to_le_bytes()[..w.bytes()]);
        Ok(())
    }
    fn take_helper_exception(&mut self) -> Option<InterpTrap> {
        let v = std::mem::take(&mut self.ctx.helper_vector);
        let e = std::mem::replace(&mut self.ctx.helper_error, u64::MAX);
        (v != 0).then(|| InterpTrap::Exception {
            vector: (v - 1) as u8,
            error_code: (e != u64::MAX).then_some(e as u32),
        })
    }
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// HLT.
    Halted,
    /// A guest exception: vector and error code.
    Exception(u8, Option<u32>),
    /// An instruction without semantics (or a system instruction the executor does not run).
    Undefined,
}

/// Assembles `build` at CODE, runs it from there with `setup` applied, until HLT or a trap,
/// on both tiers; panics if they disagree.
pub fn run(
    build: impl FnOnce(&mut CodeAssembler),
    setup: impl FnOnce(&mut CpuState),
) -> (FlatEnv, End) {
    let mut a = CodeAssembler::new(64).unwrap();
    build(&mut a);
    let code = a.assemble(CODE).unwrap();
    let mut cpu = CpuState {
        rip: CODE,
        ..CpuState::default()
    };
    cpu.gpr[reg::RSP] = STACK_TOP;
    setup(&mut cpu);
    let fresh = || {
        let mut env = FlatEnv {
            ctx: X86Context::new(cpu),
            mem: vec![0; MEM],
        };
        env.mem[CODE as usize..CODE as usize + code.len()].copy_from_slice(&code);
        env
    };
    let (interp, interp_end) = run_interpreted(fresh());
    let (jit, jit_end) = run_compiled(fresh());
    assert_eq!(interp_end, jit_end, "the tiers end differently");
    assert_eq!(
        interp.ctx.cpu, jit.ctx.cpu,
        "the tiers leave different CPU states"
    );
    if interp.mem != jit.mem {
        let at = interp.mem.iter().zip(&jit.mem).position(|(a, b)| a != b);
        panic!("the tiers leave different memory, first at {at:#x?}");
    }
    (interp, interp_end)
}

fn decode_at(env: &FlatEnv) -> iced_x86::Instruction {
    let rip = (env.ctx.cpu.rip as usize).min(MEM);
    let mut d = Decoder::with_ip(64, &env.mem[rip..], rip as u64, DecoderOptions::NONE);
    d.decode()
}

fn run_interpreted(mut env: FlatEnv) -> (FlatEnv, End) {
    let dc = Dc::new(64);
    for _ in 0..100_000 {
        let insn = decode_at(&env);
        let r = translate(&mut Interp::new(&mut env), &dc, &insn);
        match r {
            Ok(Ok(Flow::Next)) => env.ctx.cpu.rip = insn.next_ip(),
            Ok(Ok(Flow::Jump)) => {}
            Ok(Ok(Flow::Halt)) => {
                env.ctx.sync_flags();
                return (env, End::Halted);
            }
            Ok(Err(_)) | Ok(Ok(Flow::System)) => {
                env.ctx.sync_flags();
                return (env, End::Undefined);
            }
            Err(InterpTrap::Exception { vector, error_code }) => {
                env.ctx.sync_flags();
                return (env, End::Exception(vector, error_code));
            }
        }
    }
    panic!("snippet did not halt");
}

/// The flat memory as compiled code's helpers see it (through `X86Context::engine`).
struct JitMem {
    base: *mut u8,
}

/// # Safety
/// `ctx` is the X86Context a compiled test block runs on, with `engine` pointing at a live
/// JitMem whose `base` covers MEM bytes.
unsafe fn jit_parts<'a>(ctx: *mut u8) -> (&'a mut X86Context, *mut u8) {
    // SAFETY: per the contract above.
    unsafe {
        let c = &mut *ctx.cast::<X86Context>();
        let m = &*(c.engine as *const JitMem);
        (c, m.base)
    }
}

fn in_bounds(addr: u64, size: u64) -> Option<usize> {
    let end = addr.checked_add(size)?;
    (end <= MEM as u64).then_some(addr as usize)
}

extern "C" fn jit_load(ctx: *mut u8, addr: u64, size: u64) -> u64 {
    // SAFETY: called only by test blocks run from `run_compiled`.
    let (c, base) = unsafe { jit_parts(ctx) };
    let Some(a) = in_bounds(addr, size) else {
        c.helper_vector = 15;
        c.helper_error = 0;
        return 0;
    };
    let mut b = [0u8; 8];
    // SAFETY: a..a+size is inside the MEM-byte memory (checked above).
    unsafe { std::ptr::copy_nonoverlapping(base.add(a), b.as_mut_ptr(), size as usize) };
    u64::from_le_bytes(b)
}

extern "C" fn jit_store(ctx: *mut u8, addr: u64, size: u64, v: u64) {
    // SAFETY: as in `jit_load`.
    let (c, base) = unsafe { jit_parts(ctx) };
    let Some(a) = in_bounds(addr, size) else {
        c.helper_vector = 15;
        c.helper_error = 2;
        return;
    };
    // SAFETY: as in `jit_load`.
    unsafe { std::ptr::copy_nonoverlapping(v.to_le_bytes().as_ptr(), base.add(a), size as usize) };
}

fn run_compiled(mut env: FlatEnv) -> (FlatEnv, End) {
    let dc = Dc::new(64);
    let abi = JitAbi {
        pc_offset: RIP as i32,
        trap_vector_offset: HELPER_VECTOR as i32,
        trap_error_offset: HELPER_ERROR as i32,
        cacheable: tandem_target_x86_64::context::JIT_CACHEABLE,
        fast_tlb_offset: None,
        exit_request: 0,
        chain_last_offset: 0,
        chain_hops_offset: 0,
        load: jit_load,
        store: jit_store,
    };
    let mut compiler = Compiler::new().expect("Cranelift for the host");
    let mut cache: HashMap<u64, CompiledBlock> = HashMap::new();
    for _ in 0..100_000 {
        let insn = decode_at(&env);
        match translate(&mut Probe::default(), &dc, &insn) {
            Ok(Ok(Flow::Halt)) => {
                env.ctx.cpu.rip = insn.next_ip();
                env.ctx.sync_flags();
                return (env, End::Halted);
            }
            Ok(Err(_)) | Ok(Ok(Flow::System)) => {
                env.ctx.sync_flags();
                return (env, End::Undefined);
            }
            _ => {}
        }
        let block = *cache.entry(insn.ip()).or_insert_with(|| {
            compiler
                .compile(&abi, 1, |jb| {
                    jb.begin_insn(insn.ip());
                    if let Ok(Ok(Flow::Next)) = translate(jb, &dc, &insn) {
                        let ip = jb.imm(insn.next_ip());
                        jb.store_state(RIP, Width::W64, ip);
                    }
                    jb.finish(EXIT_NORMAL);
                })
                .expect("compiles")
        });
        let mut mem = JitMem {
            base: env.mem.as_mut_ptr(),
        };
        env.ctx.engine = &mut mem as *mut JitMem as u64;
        let ctx = env.ctx.as_bytes_mut().as_mut_ptr();
        // SAFETY: compiled by this compiler for X86Context's ABI; `engine` points at `mem`,
        // which outlives the call.
        let exit = unsafe { block.call(ctx) };
        env.ctx.engine = 0;
        if exit == EXIT_TRAP {
            let v = std::mem::take(&mut env.ctx.helper_vector);
            let e = std::mem::replace(&mut env.ctx.helper_error, u64::MAX);
            env.ctx.sync_flags();
            return (
                env,
                End::Exception((v - 1) as u8, (e != u64::MAX).then_some(e as u32)),
            );
        }
    }
    panic!("snippet did not halt");
}

/// General register `i`.
pub fn gpr(env: &FlatEnv, i: usize) -> u64 {
    env.ctx.cpu.gpr[i]
}

/// The six arithmetic flags.
pub fn arith_flags(env: &FlatEnv) -> u64 {
    env.ctx.cpu.rflags & bit::ARITH
}
