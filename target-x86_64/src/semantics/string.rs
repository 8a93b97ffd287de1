//! String instructions: MOVS, STOS, LODS, CMPS, SCAS in their 8/16/32/64-bit forms, with
//! REP, REPE/REPZ and REPNE/REPNZ (SDM Vol. 2A "CMPS", Vol. 2B "LODS", "MOVS", "REP/REPE/
//! REPZ/REPNE/REPNZ", "SCAS", "STOS").
//!
//! Addresses: the source is seg:rSI (DS unless overridden; no base in 64-bit mode except FS and
//! GS), the destination ES:rDI; rSI, rDI and rCX are used and updated at the instruction's
//! address size (a 32-bit update zero-extends, a 16-bit one merges). The direction flag picks
//! increment or decrement by the element size.
//!
//! One iteration per execution: with a REP prefix and rCX = 0 the instruction does nothing
//! and continues after itself; otherwise it does one element, decrements rCX, and when more
//! remain (and, for CMPS/SCAS, the REPE/REPNE condition still holds) leaves RIP at the
//! instruction itself, so the engine re-executes it and can take interrupts between
//! iterations, as hardware does. A REP form always ends the block (`Flow::Jump`). An engine
//! fast path (whole runs of MOVS/STOS in a helper, bounded by the page) may come later.
//! Either prefix (F2 or F3) repeats MOVS/STOS/LODS, as on hardware.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use tandem_tcg::{Builder, Cond, Width};

use super::bits::accumulator;
use super::flag_ops::set_cc;
use super::operand::{linear, read_reg, write_reg};
use super::translate::{Dc, Flow, Untranslated};
use crate::context::RIP;
use crate::flags::{bit, CcKind};

type Outcome = Result<Flow, Untranslated>;

/// The rSI, rDI and rCX registers of the instruction's address size, from its string operand.
fn index_regs(i: &Instruction) -> Option<(Register, Register, Register)> {
    let kinds = [i.op_kind(0), i.op_kind(1)];
    let size = kinds.iter().find_map(|k| match k {
        OpKind::MemorySegSI | OpKind::MemoryESDI => Some(16),
        OpKind::MemorySegESI | OpKind::MemoryESEDI => Some(32),
        OpKind::MemorySegRSI | OpKind::MemoryESRDI => Some(64),
        _ => None,
    })?;
    Some(match size {
        16 => (Register::SI, Register::DI, Register::CX),
        32 => (Register::ESI, Register::EDI, Register::ECX),
        _ => (Register::RSI, Register::RDI, Register::RCX),
    })
}

/// True when `i` is the string form of its mnemonic (MOVSD and CMPSD are also SSE names).
pub fn is_string(i: &Instruction) -> bool {
    index_regs(i).is_some()
}

/// The element width: the memory operand's size.
fn element_width(i: &Instruction) -> Option<Width> {
    Width::from_bytes(i.memory_size().size())
}

/// One element of the string operation; returns the CMPS/SCAS result (0 when equal) if any.
fn element<B: Builder>(
    b: &mut B,
    dc: &Dc,
    i: &Instruction,
    w: Width,
    (si, di): (Register, Register),
) -> Result<Option<B::Value>, B::Trap> {
    let m = i.mnemonic();
    let uses_si = matches!(
        m,
        Mnemonic::Movsb
            | Mnemonic::Movsw
            | Mnemonic::Movsd
            | Mnemonic::Movsq
            | Mnemonic::Lodsb
            | Mnemonic::Lodsw
            | Mnemonic::Lodsd
            | Mnemonic::Lodsq
            | Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
    );
    let uses_di = !matches!(
        m,
        Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq
    );
    let (Some(rsi), Some(rdi)) = (read_reg(b, si), read_reg(b, di)) else {
        return Ok(None);
    };
    let src = linear(b, dc, i.memory_segment(), rsi);
    let dst = linear(b, dc, Register::ES, rdi);
    let acc = accumulator(w);
    let mut result = None;
    match m {
        Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq => {
            let v = b.load(src, w)?;
            b.store(dst, w, v)?;
        }
        Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => {
            let v = read_reg(b, acc).unwrap_or_else(|| b.imm(0));
            b.store(dst, w, v)?;
        }
        Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq => {
            let v = b.load(src, w)?;
            write_reg(b, acc, v);
        }
        _ => {
            // CMPS compares [rSI] - [rDI]; SCAS compares the accumulator - [rDI].
            let x = if uses_si {
                b.load(src, w)?
            } else {
                read_reg(b, acc).unwrap_or_else(|| b.imm(0))
            };
            let y = b.load(dst, w)?;
            let d = b.sub(x, y);
            let d = b.zext(d, w);
            set_cc(b, CcKind::Sub, w, d, x, y);
            result = Some(d);
        }
    }
    // Step the index registers after every access succeeded.
    let f = b.load_state(crate::context::RFLAGS, Width::W64);
    let dfm = b.imm(bit::DF);
    let df = b.and(f, dfm);
    let size = b.imm(w.bytes() as u64);
    let neg = b.neg(size);
    let step = b.select(df, neg, size);
    if uses_si {
        let n = b.add(rsi, step);
        write_reg(b, si, n);
    }
    if uses_di {
        let n = b.add(rdi, step);
        write_reg(b, di, n);
    }
    Ok(result)
}

/// MOVS, STOS, LODS, CMPS, SCAS (with or without a repeat prefix).
pub fn string<B: Builder>(b: &mut B, dc: &Dc, i: &Instruction) -> Result<Outcome, B::Trap> {
    let (Some((si, di, cx)), Some(w)) = (index_regs(i), element_width(i)) else {
        return Ok(Err(Untranslated));
    };
    let compares = matches!(
        i.mnemonic(),
        Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
    );
    let repeat = i.has_rep_prefix() || i.has_repne_prefix();
    if !repeat {
        element(b, dc, i, w, (si, di))?;
        return Ok(Ok(Flow::Next));
    }
    let Some(count) = read_reg(b, cx) else {
        return Ok(Err(Untranslated));
    };
    let z = b.imm(0);
    let idle = b.icmp(Cond::Eq, count, z);
    let busy = b.icmp(Cond::Ne, count, z);
    let next = b.imm(i.next_ip());
    b.if_then(idle, |b| {
        b.store_state(RIP, Width::W64, next);
        Ok(())
    })?;
    b.if_then(busy, |b| {
        let r = element(b, dc, i, w, (si, di))?;
        let one = b.imm(1);
        let left = b.sub(count, one);
        write_reg(b, cx, left);
        let cw = Width::from_bytes(cx.size()).unwrap_or(Width::W64);
        let left = b.zext(left, cw);
        let mut more = b.icmp(Cond::Ne, left, z);
        if let (true, Some(r)) = (compares, r) {
            // REPE continues while equal, REPNE while not equal.
            let cond = if i.has_repne_prefix() {
                Cond::Ne
            } else {
                Cond::Eq
            };
            let holds = b.icmp(cond, r, z);
            more = b.and(more, holds);
        }
        let here = b.imm(i.ip());
        let rip = b.select(more, here, next);
        b.store_state(RIP, Width::W64, rip);
        Ok(())
    })?;
    Ok(Ok(Flow::Jump))
}
