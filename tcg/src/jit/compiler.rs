//! The compiler: Cranelift settings, one reused codegen context, the code buffer.

use std::time::Instant;

use cranelift_codegen::ir::{types, AbiParam, Function, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{control::ControlPlane, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use crate::jit::{CodeBuffer, JitAbi, JitBuilder, JitError};

/// Size of the code region.
const CODE_BYTES: usize = 64 << 20;

/// A compiled block: call it with the context block.
#[derive(Clone, Copy, Debug)]
pub struct CompiledBlock {
    entry: *const u8,
    /// The SystemV-to-Tail entry trampoline.
    trampoline: *const u8,
    /// Host code bytes.
    pub size: usize,
}

// SAFETY: a pointer into the owning compiler's code buffer; only called by the vCPU that
// compiled it, while the buffer lives (blocks are dropped before the buffer resets).
unsafe impl Send for CompiledBlock {}

impl CompiledBlock {
    /// Host address of the code (what a chain slot links to).
    pub fn address(&self) -> u64 {
        self.entry as u64
    }

    /// Runs the block on `ctx`; returns its exit code.
    ///
    /// # Safety
    /// `ctx` must point to the context block the code was compiled for (its ABI offsets), and
    /// the compiler that produced this block must not have been reset since.
    pub unsafe fn call(&self, ctx: *mut u8) -> u64 {
        // SAFETY: the trampoline was compiled as `extern "C" fn(ctx, code) -> u64` and calls
        // `code`, a Tail-convention `fn(ctx) -> u64`, which this entry is; see the contract.
        let f: extern "C" fn(*mut u8, *const u8) -> u64 =
            unsafe { std::mem::transmute(self.trampoline) };
        f(ctx, self.entry)
    }
}

/// Compilation counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct CompilerStats {
    /// Blocks compiled.
    pub blocks: u64,
    /// Guest instructions compiled.
    pub insns: u64,
    /// Host code bytes produced.
    pub code_bytes: u64,
    /// Nanoseconds spent building IR and compiling.
    pub nanos: u64,
    /// Times the code buffer filled and was reset.
    pub flushes: u64,
}

/// Compiles blocks for one vCPU.
pub struct Compiler {
    isa: OwnedTargetIsa,
    ctx: Context,
    fctx: FunctionBuilderContext,
    code: CodeBuffer,
    /// The trampoline lives apart from the blocks: resets of the block region keep it.
    _trampoline_code: CodeBuffer,
    trampoline: *const u8,
    /// Counters.
    pub stats: CompilerStats,
    /// Keep the IR text and host code of the last block (for `-d op,out_asm`).
    pub keep_listing: bool,
    last_ir: String,
    last_code: Vec<u8>,
}

// SAFETY: the raw pointer is the trampoline in the compiler's own code region, which moves with
// it; Cranelift's context and ISA are plain owned data.
unsafe impl Send for Compiler {}

impl Compiler {
    /// A compiler for the host, at Cranelift's cheapest useful settings (DESIGN.md).
    pub fn new() -> Result<Self, JitError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| JitError::Codegen(format!("{k}={v}: {e}")))
        };
        set(&mut flags, "opt_level", "none")?;
        // Tail calls between blocks need frame pointers on x64 (DESIGN.md).
        set(&mut flags, "preserve_frame_pointers", "true")?;
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Isa(e.to_string()))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError::Isa(e.to_string()))?;
        let mut c = Self {
            isa,
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
            code: CodeBuffer::new(CODE_BYTES)?,
            _trampoline_code: CodeBuffer::new(4096)?,
            trampoline: std::ptr::null(),
            stats: CompilerStats::default(),
            keep_listing: false,
            last_ir: String::new(),
            last_code: Vec::new(),
        };
        c.trampoline = c.build_trampoline()?;
        Ok(c)
    }

    /// The signature of compiled blocks: `fn(ctx) -> exit code`, tail-callable.
    fn block_sig(&self) -> Signature {
        let mut s = Signature::new(CallConv::Tail);
        s.params.push(AbiParam::new(types::I64));
        s.returns.push(AbiParam::new(types::I64));
        s
    }

    /// `extern "C" fn(ctx, code) -> u64` calling the Tail-convention block `code`.
    fn build_trampoline(&mut self) -> Result<*const u8, JitError> {
        let sig = self.sig(2, true);
        let tail = self.block_sig();
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, 1), sig);
        {
            let mut fb = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let tail_ref = fb.import_signature(tail);
            let entry = fb.create_block();
            fb.append_block_params_for_function_params(entry);
            fb.switch_to_block(entry);
            fb.seal_block(entry);
            let (ctx, code) = (fb.block_params(entry)[0], fb.block_params(entry)[1]);
            let call = fb.ins().call_indirect(tail_ref, code, &[ctx]);
            let r = fb.inst_results(call)[0];
            fb.ins().return_(&[r]);
            fb.finalize(self.isa.frontend_config());
        }
        let compiled = self
            .ctx
            .compile(&*self.isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Codegen(format!("trampoline: {:?}", e.inner)))?;
        self._trampoline_code
            .push(compiled.code_buffer())
            .ok_or(JitError::Full)
    }

    fn sig(&self, params: usize, ret: bool) -> Signature {
        let mut s = Signature::new(self.isa.default_call_conv());
        for _ in 0..params {
            s.params.push(AbiParam::new(types::I64));
        }
        if ret {
            s.returns.push(AbiParam::new(types::I64));
        }
        s
    }

    /// Compiles one function: `emit` writes the body through the builder (and must end it
    /// with [`JitBuilder::finish`]); `insns` is how many guest instructions it covers.
    pub fn compile(
        &mut self,
        abi: &JitAbi,
        insns: u64,
        emit: impl FnOnce(&mut JitBuilder),
    ) -> Result<CompiledBlock, JitError> {
        let start = Instant::now();
        let sig = self.block_sig();
        let sig_helper = self.sig(5, true);
        let sig_load = self.sig(3, true);
        let sig_store = self.sig(4, false);
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, 0), sig);
        {
            let mut fb = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let tail = fb.import_signature(Signature {
                params: vec![AbiParam::new(types::I64)],
                returns: vec![AbiParam::new(types::I64)],
                call_conv: CallConv::Tail,
            });
            let sigs = (
                fb.import_signature(sig_helper),
                fb.import_signature(sig_load),
                fb.import_signature(sig_store),
                Some(tail),
            );
            let entry = fb.create_block();
            fb.append_block_params_for_function_params(entry);
            fb.switch_to_block(entry);
            fb.seal_block(entry);
            let ctx = fb.block_params(entry)[0];
            let mut jb = JitBuilder::new(fb, ctx, *abi, sigs);
            emit(&mut jb);
            jb.fill_trap_exit();
            jb.fb.seal_all_blocks();
            jb.fb.finalize(self.isa.frontend_config());
        }
        if self.keep_listing {
            self.last_ir = self.ctx.func.display().to_string();
        }
        let compiled = self
            .ctx
            .compile(&*self.isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Codegen(format!("{:?}", e.inner)))?;
        let bytes = compiled.code_buffer();
        if self.keep_listing {
            self.last_code = bytes.to_vec();
        }
        let entry = match self.code.push(bytes) {
            Some(p) => p,
            None => return Err(JitError::Full),
        };
        self.stats.blocks += 1;
        self.stats.insns += insns;
        self.stats.code_bytes += bytes.len() as u64;
        self.stats.nanos += start.elapsed().as_nanos() as u64;
        Ok(CompiledBlock {
            entry,
            trampoline: self.trampoline,
            size: bytes.len(),
        })
    }

    /// The IR text of the last block compiled with `keep_listing` (Cranelift's CLIF).
    pub fn last_ir(&self) -> &str {
        &self.last_ir
    }

    /// The host code of the last block compiled with `keep_listing`.
    pub fn last_code(&self) -> &[u8] {
        &self.last_code
    }

    /// Drops every compiled block (their pointers must be forgotten by the caller first).
    pub fn reset(&mut self) {
        self.stats.flushes += 1;
        self.code.reset();
    }
}
