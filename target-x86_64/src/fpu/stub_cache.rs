//! The process-wide store of host stubs, one per distinct instruction form.
//!
//! Compiled blocks of every vCPU call stubs by address, and nothing tracks which blocks use
//! which stub, so stubs are never freed: the store only grows, and a form is assembled once.
//! A form is the instruction with its memory operand replaced (so displacements and address
//! registers do not multiply forms): opcode, registers and immediate, a few thousand in
//! practice. When the region is full, new forms get no stub and the instruction raises #UD
//! (counted like any untranslated instruction) rather than the process dying.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use iced_x86::{CodeSize, Instruction, OpKind, Register};
use tandem_tcg::jit::CodeBuffer;

use super::plan::Plan;
use super::stub;

/// Bytes of executable memory for stubs.
const REGION: usize = 8 << 20;

struct Store {
    code: CodeBuffer,
    by_form: HashMap<Instruction, usize>,
}

fn store() -> Option<&'static Mutex<Store>> {
    static STORE: OnceLock<Option<Mutex<Store>>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            CodeBuffer::new(REGION).ok().map(|code| {
                Mutex::new(Store {
                    code,
                    by_form: HashMap::new(),
                })
            })
        })
        .as_ref()
}

/// The instruction reduced to what its stub depends on.
fn form(i: &Instruction) -> Instruction {
    let mut f = *i;
    if (0..f.op_count()).any(|n| f.op_kind(n) == OpKind::Memory) {
        f.set_memory_base(Register::None);
        f.set_memory_index(Register::None);
        f.set_memory_index_scale(1);
        f.set_memory_displacement64(0);
        f.set_segment_prefix(Register::None);
    }
    f.set_ip(0);
    f.set_len(0);
    f.set_code_size(CodeSize::Code64);
    f
}

/// The address of the stub for `i` (a `extern "C" fn(*mut X86Context)`), made on first use;
/// `None` if it cannot be assembled or the store is full.
pub fn stub_for(i: &Instruction, plan: &Plan) -> Option<usize> {
    let key = form(i);
    let mut s = store()?.lock().ok()?;
    if let Some(&addr) = s.by_form.get(&key) {
        return Some(addr);
    }
    let bytes = stub::build(i, plan).ok()?;
    let addr = s.code.push(&bytes)? as usize;
    s.by_form.insert(key, addr);
    Some(addr)
}
