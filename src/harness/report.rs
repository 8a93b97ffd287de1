//! Text forms of results: the final registers, decoded flags and the end, in a stable format
//! (one `name=value` per field, fixed order), and the differences between two results.

use std::fmt::Write;

use tandem_target_x86_64::cpu_state::reg;
use tandem_target_x86_64::FxsaveArea;

use super::result::{SnippetEnd, SnippetResult};

/// The arithmetic and control flags `tandem exec` decodes, with their RFLAGS bit.
pub const FLAGS: [(&str, u32); 9] = [
    ("CF", 0),
    ("PF", 2),
    ("AF", 4),
    ("ZF", 6),
    ("SF", 7),
    ("TF", 8),
    ("IF", 9),
    ("DF", 10),
    ("OF", 11),
];

/// Registers in the order they are printed: the classic eight, then r8-r15.
const GPR_ORDER: [usize; 16] = [
    reg::RAX,
    reg::RBX,
    reg::RCX,
    reg::RDX,
    reg::RSI,
    reg::RDI,
    reg::RBP,
    reg::RSP,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
];

/// `end: ...`, one line.
pub fn end_line(r: &SnippetResult) -> String {
    end_line_of(r.end)
}

/// `end: ...` for an end alone.
pub fn end_line_of(end: SnippetEnd) -> String {
    match end {
        SnippetEnd::Completed => "end: completed".into(),
        SnippetEnd::Exception {
            vector,
            error_code,
            cr2,
        } => {
            let mut s = format!(
                "end: exception {} (vector {vector})",
                SnippetEnd::vector_name(vector)
            );
            if let Some(e) = error_code {
                let _ = write!(s, " error_code={e:#x}");
            }
            if let Some(a) = cr2 {
                let _ = write!(s, " cr2={a:#018x}");
            }
            s
        }
        SnippetEnd::Halted => "end: halted".into(),
        SnippetEnd::Timeout => "end: timeout".into(),
        SnippetEnd::Shutdown => "end: shutdown (triple fault)".into(),
    }
}

/// `CF=1 PF=0 ...` for `rflags`.
pub fn flags_line(rflags: u64) -> String {
    FLAGS
        .iter()
        .map(|(n, b)| format!("{n}={}", (rflags >> b) & 1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// ST(i) of an FXSAVE image as an 80-bit number.
pub fn st_value(fx: &FxsaveArea, i: usize) -> u128 {
    let mut b = [0u8; 16];
    b[..10].copy_from_slice(&fx.st(i));
    u128::from_le_bytes(b)
}

/// Whether the x87 part of `fx` is as FNINIT leaves it (FCW 0x37f, FSW 0, every register empty
/// and zero): then the report leaves it out.
fn x87_is_initial(fx: &FxsaveArea) -> bool {
    fx.fcw() == 0x37f && fx.fsw() == 0 && fx.ftw() == 0 && (0..8).all(|i| st_value(fx, i) == 0)
}

/// The whole report: the end, RIP and RFLAGS with decoded flags, the general registers four to
/// a line, the non-zero XMM registers, MXCSR, the x87 state unless it is the initial one
/// (FCW, FSW, abridged tags, the non-zero ST slots), and the data regions.
pub fn format_result(r: &SnippetResult) -> String {
    let s = &r.state;
    let mut out = String::new();
    let _ = writeln!(out, "{}", end_line(r));
    let _ = writeln!(
        out,
        "rip={:016x} rflags={:016x} {}",
        s.rip,
        s.rflags,
        flags_line(s.rflags)
    );
    for line in GPR_ORDER.chunks(4) {
        let words: Vec<String> = line
            .iter()
            .map(|&i| format!("{}={:016x}", reg::NAMES[i], s.gpr[i]))
            .collect();
        let _ = writeln!(out, "{}", words.join(" "));
    }
    for i in 0..16 {
        let x = u128::from_le_bytes(s.fx.xmm(i));
        if x != 0 {
            let _ = writeln!(out, "xmm{i}={x:032x}");
        }
    }
    let _ = writeln!(out, "mxcsr={:08x}", s.fx.mxcsr());
    if !x87_is_initial(&s.fx) {
        let _ = writeln!(
            out,
            "fcw={:04x} fsw={:04x} ftw={:02x} (TOP={})",
            s.fx.fcw(),
            s.fx.fsw(),
            s.fx.ftw(),
            (s.fx.fsw() >> 11) & 7
        );
        for i in 0..8 {
            let v = st_value(&s.fx, i);
            if v != 0 {
                let _ = writeln!(out, "st{i}={v:020x}");
            }
        }
    }
    for (addr, bytes) in &r.memory {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "mem {addr:#x}: {}", hex.join(" "));
    }
    out
}

/// The fields in which `a` and `b` differ, one `name: a != b` line each (empty when equal):
/// the end, RIP, RFLAGS, general registers, XMM, MXCSR, the x87 FCW, FSW, abridged tags and
/// registers, data regions. The x87 last-instruction and operand pointers (FIP, FDP, FOP) are
/// not compared: engines need not keep them (see `difftest::undefined`).
pub fn diff(a: &SnippetResult, b: &SnippetResult) -> Vec<String> {
    let mut d = Vec::new();
    let (x, y) = (&a.state, &b.state);
    if a.end != b.end {
        d.push(format!("end: {:?} != {:?}", a.end, b.end));
    }
    if x.rip != y.rip {
        d.push(format!("rip: {:#x} != {:#x}", x.rip, y.rip));
    }
    if x.rflags != y.rflags {
        d.push(format!(
            "rflags: {:#x} [{}] != {:#x} [{}]",
            x.rflags,
            flags_line(x.rflags),
            y.rflags,
            flags_line(y.rflags)
        ));
    }
    for i in 0..16 {
        if x.gpr[i] != y.gpr[i] {
            d.push(format!(
                "{}: {:#x} != {:#x}",
                reg::NAMES[i],
                x.gpr[i],
                y.gpr[i]
            ));
        }
        let (p, q) = (x.fx.xmm(i), y.fx.xmm(i));
        if p != q {
            d.push(format!(
                "xmm{i}: {:#x} != {:#x}",
                u128::from_le_bytes(p),
                u128::from_le_bytes(q)
            ));
        }
    }
    if x.fx.mxcsr() != y.fx.mxcsr() {
        d.push(format!("mxcsr: {:#x} != {:#x}", x.fx.mxcsr(), y.fx.mxcsr()));
    }
    let words = [
        ("fcw", x.fx.fcw(), y.fx.fcw()),
        ("fsw", x.fx.fsw(), y.fx.fsw()),
        ("ftw", x.fx.ftw().into(), y.fx.ftw().into()),
    ];
    for (name, p, q) in words {
        if p != q {
            d.push(format!("{name}: {p:#x} != {q:#x}"));
        }
    }
    for i in 0..8 {
        let (p, q) = (st_value(&x.fx, i), st_value(&y.fx, i));
        if p != q {
            d.push(format!("st{i}: {p:#x} != {q:#x}"));
        }
    }
    for ((addr, p), (_, q)) in a.memory.iter().zip(&b.memory) {
        if p != q {
            d.push(format!("mem {addr:#x}: {p:02x?} != {q:02x?}"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_target_x86_64::CpuState;

    #[test]
    fn report_and_diff() {
        let mut state = CpuState {
            rflags: 0x247,
            ..CpuState::default()
        };
        state.gpr[reg::RAX] = 0x10;
        let a = SnippetResult {
            state,
            end: SnippetEnd::Completed,
            memory: vec![(0x50_0000, vec![1, 2])],
        };
        let text = format_result(&a);
        assert!(text.starts_with("end: completed\n"));
        assert!(text.contains("CF=1 PF=1 AF=0 ZF=1 SF=0 TF=0 IF=1 DF=0 OF=0"));
        assert!(text.contains("rax=0000000000000010 rbx=0000000000000000"));
        assert!(text.contains("mem 0x500000: 01 02"));
        assert!(!text.contains("fcw="), "the initial x87 state is left out");
        let mut b = a.clone();
        assert!(diff(&a, &b).is_empty());
        b.state.gpr[reg::RCX] = 1;
        b.end = SnippetEnd::Exception {
            vector: 14,
            error_code: Some(4),
            cr2: Some(0),
        };
        assert_eq!(diff(&a, &b).len(), 2);
        b.state
            .fx
            .set_st(3, [1, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        b.state.fx.set_fip(0x1234);
        assert_eq!(diff(&a, &b).len(), 3, "st3 differs, FIP is not compared");
        assert!(format_result(&b).contains("st3=3fff8000000000000001"));
        assert!(end_line(&b).contains("#PF (vector 14) error_code=0x4"));
    }
}
