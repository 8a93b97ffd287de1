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
}

impl Class {
    /// Every class, in a fixed order (the CI seed set's order).
    pub const ALL: [Class; 10] = [
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
    }
}
