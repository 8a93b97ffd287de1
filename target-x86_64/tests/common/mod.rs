//! A minimal executor for semantics tests: tcg's interpreter over a flat 1 MiB memory (no
//! paging, no devices), running 64-bit code from CODE until HLT, a fault or an instruction
//! without semantics.

#![allow(dead_code)]

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions};
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::flags::bit;
use tandem_target_x86_64::semantics::{translate, Dc, Flow};
use tandem_target_x86_64::{CpuState, X86Context};
use tandem_tcg::{Interp, InterpEnv, InterpTrap, Width};

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
        (v != 0).then(|| InterpTrap::Exception {
            vector: (v - 1) as u8,
            error_code: None,
        })
    }
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// HLT.
    Halted,
    Exception(u8, Option<u32>),
    Undefined,
}

/// Assembles `build` at CODE, runs it from there with `setup` applied, until HLT or a trap.
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
    let mut env = FlatEnv {
        ctx: X86Context::new(cpu),
        mem: vec![0; MEM],
    };
    env.mem[CODE as usize..CODE as usize + code.len()].copy_from_slice(&code);
    let dc = Dc { bitness: 64 };
    for _ in 0..100_000 {
        let rip = env.ctx.cpu.rip as usize;
        let mut d = Decoder::with_ip(64, &env.mem[rip..], rip as u64, DecoderOptions::NONE);
        let insn = d.decode();
        let r = translate(&mut Interp::new(&mut env), &dc, &insn);
        match r {
            Ok(Ok(Flow::Next)) => env.ctx.cpu.rip = insn.next_ip(),
            Ok(Ok(Flow::Jump)) => {}
            Ok(Ok(Flow::Halt)) => {
                env.ctx.sync_flags();
                return (env, End::Halted);
            }
            Ok(Err(_)) | Ok(Ok(Flow::System)) => return (env, End::Undefined),
            Err(InterpTrap::Exception { vector, error_code }) => {
                env.ctx.sync_flags();
                return (env, End::Exception(vector, error_code));
            }
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
