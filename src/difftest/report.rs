//! The difference report: everything a developer needs to reproduce and debug one
//! difference — seed and class, the disassembly, the initial state, the differing fields per
//! engine, and the `tandem exec` and `tandem difftest` command lines that rerun it.

use std::fmt::Write;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

use super::generator::Sequence;
use crate::harness::report::{flags_line, st_value};
use crate::harness::CODE_ADDR;
use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::FxsaveArea;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sequence's code, one instruction a line: address, bytes, Intel syntax.
pub fn disassembly(code: &[u8]) -> String {
    let mut out = String::new();
    let mut dec = Decoder::with_ip(64, code, CODE_ADDR, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    let mut text = String::new();
    for insn in &mut dec {
        text.clear();
        fmt.format(&insn, &mut text);
        let start = (insn.ip() - CODE_ADDR) as usize;
        let bytes = code.get(start..start + insn.len()).unwrap_or(&[]);
        let _ = writeln!(out, "  {:#x}: {:<24} {text}", insn.ip(), hex(bytes));
    }
    out
}

/// The x87/SSE registers of `fx` that differ from the reset state, as `name=value` (the
/// `--reg` forms of `tandem exec`).
pub fn fp_assignments(fx: &FxsaveArea) -> Vec<String> {
    let reset = FxsaveArea::default();
    let mut out = Vec::new();
    for i in 0..16 {
        if fx.xmm(i) != reset.xmm(i) {
            out.push(format!("xmm{i}={:#x}", u128::from_le_bytes(fx.xmm(i))));
        }
    }
    let words = [
        ("mxcsr", fx.mxcsr(), reset.mxcsr()),
        ("fcw", fx.fcw().into(), reset.fcw().into()),
        ("fsw", fx.fsw().into(), reset.fsw().into()),
        ("ftw", fx.ftw().into(), reset.ftw().into()),
    ];
    for (name, v, r) in words {
        if v != r {
            out.push(format!("{name}={v:#x}"));
        }
    }
    for i in 0..8 {
        let v = st_value(fx, i);
        if v != 0 {
            out.push(format!("st{i}={v:#x}"));
        }
    }
    out
}

/// The `tandem exec` command line that runs the sequence with its initial state.
pub fn exec_command(seq: &Sequence) -> String {
    let s = &seq.snippet;
    let mut cmd = format!("tandem exec --code {}", hex(&s.code));
    for (i, v) in s.initial.gpr.iter().enumerate() {
        let _ = write!(cmd, " --reg {}={v:#x}", reg::NAMES[i]);
    }
    let _ = write!(cmd, " --reg rflags={:#x}", s.initial.rflags);
    for a in fp_assignments(&s.initial.fx) {
        let _ = write!(cmd, " --reg {a}");
    }
    for (addr, bytes) in &s.memory {
        let _ = write!(cmd, " --mem {addr:#x}={}", hex(bytes));
    }
    cmd.push_str(" --accel both");
    cmd
}

/// The `tandem difftest` command line that reruns just this sequence.
pub fn difftest_command(seq: &Sequence) -> String {
    format!(
        "tandem difftest --class {} --seed {} --count 1",
        seq.class, seq.seed
    )
}

/// The whole report of one difference.
pub fn difference(
    seq: &Sequence,
    fields: &[(String, Vec<(String, String)>)],
    note: &str,
) -> String {
    let s = &seq.snippet;
    let mut out = format!("DIFFERENCE class {} seed {}{note}\n", seq.class, seq.seed);
    out.push_str("code:\n");
    out.push_str(&disassembly(&s.code));
    let _ = writeln!(
        out,
        "initial: rflags={:#x} [{}]",
        s.initial.rflags,
        flags_line(s.initial.rflags)
    );
    for chunk in s.initial.gpr.chunks(4).enumerate() {
        let (k, regs) = chunk;
        let words: Vec<String> = regs
            .iter()
            .enumerate()
            .map(|(j, v)| format!("{}={v:#018x}", reg::NAMES[4 * k + j]))
            .collect();
        let _ = writeln!(out, "  {}", words.join(" "));
    }
    let fp = fp_assignments(&s.initial.fx);
    for line in fp.chunks(4) {
        let _ = writeln!(out, "  {}", line.join(" "));
    }
    out.push_str("differs:\n");
    for (name, per) in fields {
        let _ = writeln!(out, "  {name}:");
        for (engine, v) in per {
            let _ = writeln!(out, "    {engine:<8} {v}");
        }
    }
    let _ = writeln!(out, "rerun: {}", difftest_command(seq));
    let _ = writeln!(out, "reproduce: {}", exec_command(seq));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{exec, Command};
    use crate::difftest::{generate, Class};

    /// The `tandem exec` line rebuilds the sequence's snippet exactly: code, registers, the
    /// x87/SSE state and memory.
    #[test]
    fn exec_command_reproduces_the_snippet() {
        for class in [Class::X87, Class::SseFloat, Class::Arith] {
            let seq = generate(class, 3).unwrap();
            let cmd = exec_command(&seq);
            let args: Vec<String> = cmd.split_whitespace().map(String::from).collect();
            let Ok(Command::Exec(req)) = exec::parse(args) else {
                panic!("{cmd}: does not parse");
            };
            assert_eq!(req.snippet, seq.snippet, "{class}");
        }
    }
}
