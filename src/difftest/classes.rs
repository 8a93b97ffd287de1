//! The instruction classes the generator draws from, with their command-line names.

/// A family of instructions the generator builds sequences from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// add adc sub sbb cmp and or xor test inc dec neg not, 8/16/32/64-bit, reg/imm/mem.
    Arith,
    /// shl shr sar rol ror rcl rcr shld shrd, immediate and CL counts (0, 1, width-1, >=
    /// width).
    Shift,
    /// mul, imul (1, 2 and 3 operands), div, idiv (#DE included).
    MulDiv,
    /// bt bts btr btc bsf bsr lzcnt tzcnt popcnt bswap.
    Bits,
    /// mov movzx movsx movsxd lea xchg cmovcc setcc xadd cmpxchg movbe cbw/cwde/cdqe/cwd/cdq/cqo.
    Move,
    /// push pop pushf popf (CPL3).
    Stack,
    /// movs stos lods cmps scas with rep/repe/repne, both DF values, small RCX.
    String,
    /// lahf sahf clc stc cmc cld std.
    Flags,
    /// Forward jcc/jmp, loop/jrcxz, call/ret to a nearby label.
    Control,
    /// Every class above, interleaved.
    Mixed,
    /// SSE-SSE4.1 floating-point arithmetic, compares (EFLAGS too), logic, horizontal ops, dot
    /// products, rounding, blends.
    SseFloat,
    /// CVT* between integers (GPRs, memory, MMX) and singles and doubles, in all directions.
    SseConvert,
    /// Packed-integer SSE2/SSSE3/SSE4.1, inserts/extracts with GPRs and memory, PTEST.
    SseInt,
    /// SSE moves, loads, stores, shuffles, non-temporal stores, LDMXCSR/STMXCSR.
    SseMove,
    /// PCMPESTRI/M PCMPISTRI/M, CRC32, POPCNT, PCMPGTQ.
    Sse42,
    /// MMX on mm registers, with the SSE and SSSE3 extensions and x87 transitions.
    Mmx,
    /// The x87 FPU (less the transcendentals).
    X87,
    /// FXSAVE/FXRSTOR round trips, patched images, #GP on reserved MXCSR bits or misalignment.
    Fxsave,
    /// The floating-point classes above but `fxsave`, interleaved (LDMXCSR and FLDCW before
    /// the arithmetic they steer, MMX and x87 taking turns).
    FpMixed,
}

impl Class {
    /// The general-purpose classes, in a fixed order (the CI seed set's order).
    pub const INTEGER: [Class; 10] = [
        Class::Arith,
        Class::Shift,
        Class::MulDiv,
        Class::Bits,
        Class::Move,
        Class::Stack,
        Class::String,
        Class::Flags,
        Class::Control,
        Class::Mixed,
    ];

    /// The floating-point and vector classes.
    pub const FP: [Class; 9] = [
        Class::SseFloat,
        Class::SseConvert,
        Class::SseInt,
        Class::SseMove,
        Class::Sse42,
        Class::Mmx,
        Class::X87,
        Class::Fxsave,
        Class::FpMixed,
    ];

    /// Every class: [`Class::INTEGER`], then [`Class::FP`].
    pub const ALL: [Class; 19] = {
        let mut all = [Class::Arith; 19];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < Self::INTEGER.len() {
                Self::INTEGER[i]
            } else {
                Self::FP[i - Self::INTEGER.len()]
            };
            i += 1;
        }
        all
    };

    /// Whether it is one of [`Class::FP`] (whose sequences aim memory operands at exact
    /// addresses, so RBX/RSI/RDI are drawn before the code).
    pub fn is_fp(self) -> bool {
        Self::FP.contains(&self)
    }

    /// Its command-line and report name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Arith => "arith",
            Class::Shift => "shift",
            Class::MulDiv => "muldiv",
            Class::Bits => "bits",
            Class::Move => "move",
            Class::Stack => "stack",
            Class::String => "string",
            Class::Flags => "flags",
            Class::Control => "control",
            Class::Mixed => "mixed",
            Class::SseFloat => "sse_float",
            Class::SseConvert => "sse_convert",
            Class::SseInt => "sse_int",
            Class::SseMove => "sse_move",
            Class::Sse42 => "sse42",
            Class::Mmx => "mmx",
            Class::X87 => "x87",
            Class::Fxsave => "fxsave",
            Class::FpMixed => "fp_mixed",
        }
    }

    /// The class called `name`.
    pub fn from_name(name: &str) -> Option<Class> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A stable number for seed derivation (independent of enum layout changes).
    pub fn salt(self) -> u64 {
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        assert_eq!(Class::from_name("nope"), None);
        assert_eq!(Class::INTEGER.len() + Class::FP.len(), Class::ALL.len());
        assert!(Class::FP
            .iter()
            .all(|c| c.is_fp() && Class::ALL.contains(c)));
        assert!(Class::INTEGER
            .iter()
            .all(|c| !c.is_fp() && Class::ALL.contains(c)));
    }
}
