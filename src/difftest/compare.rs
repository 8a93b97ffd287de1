//! Comparing results: the masked architectural state (GPRs, RIP, RFLAGS less the undefined
//! flags, XMM0-15, MXCSR), how the run ended, and the memory regions; a stable hash of it for
//! the recorded expectations; and the fields in which several engines' results differ.

use crate::harness::{SnippetEnd, SnippetResult};
use tandem_target_x86_64::cpu_state::reg;

use super::generator::Sequence;

/// What is compared of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// How it ended.
    pub end: SnippetEnd,
    /// RIP.
    pub rip: u64,
    /// RFLAGS with the undefined flags cleared.
    pub rflags: u64,
    /// The flags that were masked.
    pub mask: u64,
    /// RAX..R15.
    pub gpr: [u64; 16],
    /// XMM0-15.
    pub xmm: [u128; 16],
    /// MXCSR.
    pub mxcsr: u32,
    /// The data regions after the run.
    pub memory: Vec<(u64, Vec<u8>)>,
}

/// `r` as compared for `seq`.
pub fn masked(seq: &Sequence, r: &SnippetResult) -> Masked {
    let s = &r.state;
    let mask = seq.mask_for(s.rip, r.end == SnippetEnd::Completed);
    let mut xmm = [0u128; 16];
    for (i, x) in xmm.iter_mut().enumerate() {
        *x = u128::from_le_bytes(s.fx.xmm(i));
    }
    Masked {
        end: r.end,
        rip: s.rip,
        rflags: s.rflags & !mask,
        mask,
        gpr: s.gpr,
        xmm,
        mxcsr: s.fx.mxcsr(),
        memory: r.memory.clone(),
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
                m.mask
            ),
        ),
    ];
    for (i, g) in m.gpr.iter().enumerate() {
        f.push((reg::NAMES[i].to_string(), format!("{g:#x}")));
    }
    for (i, x) in m.xmm.iter().enumerate() {
        f.push((format!("xmm{i}"), format!("{x:#x}")));
    }
    f.push(("mxcsr".into(), format!("{:#x}", m.mxcsr)));
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
