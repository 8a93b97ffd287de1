//! Comparing results: the masked architectural state (GPRs, RIP, RFLAGS less the undefined
//! flags, the x87/SSE state of the FXSAVE image less what [`undefined`](super::undefined)
//! says is not compared), how the run ended, and the memory regions less the undefined bytes;
//! a stable hash of it for the recorded expectations; and the fields in which several
//! engines' results differ.

use crate::harness::report::st_value;
use crate::harness::{SnippetEnd, SnippetResult};
use tandem_target_x86_64::cpu_state::reg;

use super::generator::Sequence;
use super::undefined::{canonical_nans, fsw_bits, xmm_bit, xmm_nan_bit, ARITH};

/// What is compared of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// How it ended.
    pub end: SnippetEnd,
    /// RIP.
    pub rip: u64,
    /// RFLAGS with the undefined flags cleared.
    pub rflags: u64,
    /// What was masked (the bits of [`undefined`](super::undefined)).
    pub mask: u64,
    /// RAX..R15.
    pub gpr: [u64; 16],
    /// XMM0-15 (an undefined one reads 0; NaN lanes whose NaN is the implementation's choice
    /// read as one canonical NaN).
    pub xmm: [u128; 16],
    /// MXCSR.
    pub mxcsr: u32,
    /// The x87 control word.
    pub fcw: u16,
    /// The x87 status word with the undefined condition codes cleared.
    pub fsw: u16,
    /// The abridged x87 tag word.
    pub ftw: u8,
    /// ST0-7 as FXSAVE holds them (80 bits each).
    pub st: [u128; 8],
    /// The data regions after the run, undefined bytes cleared.
    pub memory: Vec<(u64, Vec<u8>)>,
}

/// `r` as compared for `seq`.
pub fn masked(seq: &Sequence, r: &SnippetResult) -> Masked {
    let s = &r.state;
    let mask = seq.mask_for(s.rip, r.end == SnippetEnd::Completed);
    let mut xmm = [0u128; 16];
    for (i, x) in xmm.iter_mut().enumerate() {
        if mask & xmm_bit(i) == 0 {
            *x = u128::from_le_bytes(s.fx.xmm(i));
            if mask & xmm_nan_bit(i) != 0 {
                *x = canonical_nans(*x);
            }
        }
    }
    let mut memory = r.memory.clone();
    for (addr, bytes) in &mut memory {
        for u in &seq.memory_undefined {
            let lo = u.start.saturating_sub(*addr) as usize;
            let hi = (u.end.saturating_sub(*addr) as usize).min(bytes.len());
            if let Some(b) = bytes.get_mut(lo..hi) {
                b.fill(0);
            }
        }
    }
    Masked {
        end: r.end,
        rip: s.rip,
        rflags: s.rflags & !(mask & ARITH),
        mask,
        gpr: s.gpr,
        xmm,
        mxcsr: s.fx.mxcsr(),
        fcw: s.fx.fcw(),
        fsw: s.fx.fsw() & !fsw_bits(mask),
        ftw: s.fx.ftw(),
        st: [0, 1, 2, 3, 4, 5, 6, 7].map(|i| st_value(&s.fx, i)),
        memory,
    }
}

/// FNV-1a, 64 bits: stable across builds and machines (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// A hash of everything [`Masked`] compares (the mask itself excepted: it follows from the
/// sequence and the end).
pub fn hash(m: &Masked) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    match m.end {
        SnippetEnd::Completed => h.u64(1),
        SnippetEnd::Exception {
            vector,
            error_code,
            cr2,
        } => {
            h.u64(2);
            h.u64(u64::from(vector));
            h.u64(error_code.map_or(u64::MAX, u64::from));
            h.u64(cr2.unwrap_or(u64::MAX));
        }
        SnippetEnd::Halted => h.u64(3),
        SnippetEnd::Timeout => h.u64(4),
        SnippetEnd::Shutdown => h.u64(5),
    }
    h.u64(m.rip);
    h.u64(m.rflags);
    for g in m.gpr {
        h.u64(g);
    }
    for x in m.xmm {
        h.bytes(&x.to_le_bytes());
    }
    h.u64(u64::from(m.mxcsr));
    h.u64(u64::from(m.fcw));
    h.u64(u64::from(m.fsw));
    h.u64(u64::from(m.ftw));
    for st in m.st {
        h.bytes(&st.to_le_bytes()[..10]);
    }
    for (addr, bytes) in &m.memory {
        h.u64(*addr);
        h.bytes(bytes);
    }
    h.0
}

/// Every compared field as (name, value text), in a fixed order; memory in 8-byte rows.
pub fn fields(m: &Masked) -> Vec<(String, String)> {
    let mut f = vec![
        (
            "end".to_string(),
            crate::harness::report::end_line_of(m.end),
        ),
        ("rip".into(), format!("{:#x}", m.rip)),
        (
            "rflags".into(),
            format!(
                "{:#x} [{}] (masked {:#x})",
                m.rflags,
                crate::harness::report::flags_line(m.rflags),
                m.mask & ARITH
            ),
        ),
    ];
    for (i, g) in m.gpr.iter().enumerate() {
        f.push((reg::NAMES[i].to_string(), format!("{g:#x}")));
    }
    for (i, x) in m.xmm.iter().enumerate() {
        let v = if m.mask & xmm_bit(i) != 0 {
            "undefined (masked)".to_string()
        } else if m.mask & xmm_nan_bit(i) != 0 {
            format!("{x:#x} (NaN lanes canonical)")
        } else {
            format!("{x:#x}")
        };
        f.push((format!("xmm{i}"), v));
    }
    f.push(("mxcsr".into(), format!("{:#x}", m.mxcsr)));
    f.push(("fcw".into(), format!("{:#x}", m.fcw)));
    f.push((
        "fsw".into(),
        format!(
            "{:#x} (TOP={}, masked {:#x})",
            m.fsw,
            (m.fsw >> 11) & 7,
            fsw_bits(m.mask)
        ),
    ));
    f.push(("ftw".into(), format!("{:#04x}", m.ftw)));
    for (i, v) in m.st.iter().enumerate() {
        f.push((format!("st{i}"), format!("{v:#022x}")));
    }
    for (addr, bytes) in &m.memory {
        for (k, row) in bytes.chunks(8).enumerate() {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            f.push((format!("mem {:#x}", addr + 8 * k as u64), hex.join(" ")));
        }
    }
    f
}

/// The fields in which the named results do not all agree: (field, [(engine, value)]).
pub fn differing(results: &[(&str, &Masked)]) -> Vec<(String, Vec<(String, String)>)> {
    let all: Vec<Vec<(String, String)>> = results.iter().map(|(_, m)| fields(m)).collect();
    let Some(first) = all.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (name, value)) in first.iter().enumerate() {
        let same = all.iter().all(|f| f.get(i).map(|(_, v)| v) == Some(value));
        if !same {
            let per = results
                .iter()
                .zip(&all)
                .map(|((e, _), f)| {
                    (
                        e.to_string(),
                        f.get(i).map(|(_, v)| v.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            out.push((name.clone(), per));
        }
    }
    out
}
