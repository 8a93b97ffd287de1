//! Operand shapes as macros over CodeAssembler's typed methods: each expands one mnemonic
//! into every width and register/memory/immediate form the instruction has, so the class
//! builders pick a form at run time. A form the instruction lacks yields `None`.

/// `op r/m, r/m|imm`, 8-64 bits (add adc sub sbb cmp and or xor).
macro_rules! bin {
    ($a:ident . $m:ident, $w:expr, $d:expr, $s:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, r8, Op};
        match ($w, $d, $s) {
            (8, Op::R(d), Op::R(s)) => Some($a.$m(r8(d), r8(s))),
            (8, Op::R(d), Op::M(b, x)) => Some($a.$m(r8(d), byte_ptr(mem(b, x)))),
            (8, Op::M(b, x), Op::R(s)) => Some($a.$m(byte_ptr(mem(b, x)), r8(s))),
            (8, Op::R(d), Op::I(i)) => Some($a.$m(r8(d), i as i32)),
            (8, Op::M(b, x), Op::I(i)) => Some($a.$m(byte_ptr(mem(b, x)), i as i32)),
            (16, Op::R(d), Op::R(s)) => Some($a.$m(r16(d), r16(s))),
            (16, Op::R(d), Op::M(b, x)) => Some($a.$m(r16(d), word_ptr(mem(b, x)))),
            (16, Op::M(b, x), Op::R(s)) => Some($a.$m(word_ptr(mem(b, x)), r16(s))),
            (16, Op::R(d), Op::I(i)) => Some($a.$m(r16(d), i as i32)),
            (16, Op::M(b, x), Op::I(i)) => Some($a.$m(word_ptr(mem(b, x)), i as i32)),
            (32, Op::R(d), Op::R(s)) => Some($a.$m(r32(d), r32(s))),
            (32, Op::R(d), Op::M(b, x)) => Some($a.$m(r32(d), dword_ptr(mem(b, x)))),
            (32, Op::M(b, x), Op::R(s)) => Some($a.$m(dword_ptr(mem(b, x)), r32(s))),
            (32, Op::R(d), Op::I(i)) => Some($a.$m(r32(d), i as i32)),
            (32, Op::M(b, x), Op::I(i)) => Some($a.$m(dword_ptr(mem(b, x)), i as i32)),
            (64, Op::R(d), Op::R(s)) => Some($a.$m(r64(d), r64(s))),
            (64, Op::R(d), Op::M(b, x)) => Some($a.$m(r64(d), qword_ptr(mem(b, x)))),
            (64, Op::M(b, x), Op::R(s)) => Some($a.$m(qword_ptr(mem(b, x)), r64(s))),
            (64, Op::R(d), Op::I(i)) => Some($a.$m(r64(d), i as i32)),
            (64, Op::M(b, x), Op::I(i)) => Some($a.$m(qword_ptr(mem(b, x)), i as i32)),
            _ => None,
        }
    }};
}

/// `op r/m, r`, 8-64 bits (xchg xadd cmpxchg; test with the immediate forms of [`bin`] too).
macro_rules! rm_r {
    ($a:ident . $m:ident, $w:expr, $d:expr, $s:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, r8, Op};
        match ($w, $d, $s) {
            (8, Op::R(d), Op::R(s)) => Some($a.$m(r8(d), r8(s))),
            (8, Op::M(b, x), Op::R(s)) => Some($a.$m(byte_ptr(mem(b, x)), r8(s))),
            (16, Op::R(d), Op::R(s)) => Some($a.$m(r16(d), r16(s))),
            (16, Op::M(b, x), Op::R(s)) => Some($a.$m(word_ptr(mem(b, x)), r16(s))),
            (32, Op::R(d), Op::R(s)) => Some($a.$m(r32(d), r32(s))),
            (32, Op::M(b, x), Op::R(s)) => Some($a.$m(dword_ptr(mem(b, x)), r32(s))),
            (64, Op::R(d), Op::R(s)) => Some($a.$m(r64(d), r64(s))),
            (64, Op::M(b, x), Op::R(s)) => Some($a.$m(qword_ptr(mem(b, x)), r64(s))),
            _ => None,
        }
    }};
}

/// `op r/m, imm`, 8-64 bits.
macro_rules! rm_i {
    ($a:ident . $m:ident, $w:expr, $d:expr, $i:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, r8, Op};
        let i = $i as i32;
        match ($w, $d) {
            (8, Op::R(d)) => Some($a.$m(r8(d), i)),
            (8, Op::M(b, x)) => Some($a.$m(byte_ptr(mem(b, x)), i)),
            (16, Op::R(d)) => Some($a.$m(r16(d), i)),
            (16, Op::M(b, x)) => Some($a.$m(word_ptr(mem(b, x)), i)),
            (32, Op::R(d)) => Some($a.$m(r32(d), i)),
            (32, Op::M(b, x)) => Some($a.$m(dword_ptr(mem(b, x)), i)),
            (64, Op::R(d)) => Some($a.$m(r64(d), i)),
            (64, Op::M(b, x)) => Some($a.$m(qword_ptr(mem(b, x)), i)),
            _ => None,
        }
    }};
}

/// `op r/m`, 8-64 bits (inc dec neg not mul imul div idiv).
macro_rules! un {
    ($a:ident . $m:ident, $w:expr, $d:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, r8, Op};
        match ($w, $d) {
            (8, Op::R(d)) => Some($a.$m(r8(d))),
            (8, Op::M(b, x)) => Some($a.$m(byte_ptr(mem(b, x)))),
            (16, Op::R(d)) => Some($a.$m(r16(d))),
            (16, Op::M(b, x)) => Some($a.$m(word_ptr(mem(b, x)))),
            (32, Op::R(d)) => Some($a.$m(r32(d))),
            (32, Op::M(b, x)) => Some($a.$m(dword_ptr(mem(b, x)))),
            (64, Op::R(d)) => Some($a.$m(r64(d))),
            (64, Op::M(b, x)) => Some($a.$m(qword_ptr(mem(b, x)))),
            _ => None,
        }
    }};
}

/// `op r/m, cl`, 8-64 bits (shifts and rotates by CL).
macro_rules! rm_cl {
    ($a:ident . $m:ident, $w:expr, $d:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, r8, Op};
        match ($w, $d) {
            (8, Op::R(d)) => Some($a.$m(r8(d), cl)),
            (8, Op::M(b, x)) => Some($a.$m(byte_ptr(mem(b, x)), cl)),
            (16, Op::R(d)) => Some($a.$m(r16(d), cl)),
            (16, Op::M(b, x)) => Some($a.$m(word_ptr(mem(b, x)), cl)),
            (32, Op::R(d)) => Some($a.$m(r32(d), cl)),
            (32, Op::M(b, x)) => Some($a.$m(dword_ptr(mem(b, x)), cl)),
            (64, Op::R(d)) => Some($a.$m(r64(d), cl)),
            (64, Op::M(b, x)) => Some($a.$m(qword_ptr(mem(b, x)), cl)),
            _ => None,
        }
    }};
}

/// `op r, r/m`, 16-64 bits (bsf bsr lzcnt tzcnt popcnt imul cmovcc).
macro_rules! r_rm {
    ($a:ident . $m:ident, $w:expr, $d:expr, $s:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, Op};
        match ($w, $d, $s) {
            (16, Op::R(d), Op::R(s)) => Some($a.$m(r16(d), r16(s))),
            (16, Op::R(d), Op::M(b, x)) => Some($a.$m(r16(d), word_ptr(mem(b, x)))),
            (32, Op::R(d), Op::R(s)) => Some($a.$m(r32(d), r32(s))),
            (32, Op::R(d), Op::M(b, x)) => Some($a.$m(r32(d), dword_ptr(mem(b, x)))),
            (64, Op::R(d), Op::R(s)) => Some($a.$m(r64(d), r64(s))),
            (64, Op::R(d), Op::M(b, x)) => Some($a.$m(r64(d), qword_ptr(mem(b, x)))),
            _ => None,
        }
    }};
}

/// `op r/m, r|imm`, 16-64 bits (bt bts btr btc).
macro_rules! bt {
    ($a:ident . $m:ident, $w:expr, $d:expr, $s:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, Op};
        match ($w, $d, $s) {
            (16, Op::R(d), Op::R(s)) => Some($a.$m(r16(d), r16(s))),
            (16, Op::M(b, x), Op::R(s)) => Some($a.$m(word_ptr(mem(b, x)), r16(s))),
            (16, Op::R(d), Op::I(i)) => Some($a.$m(r16(d), i as i32)),
            (16, Op::M(b, x), Op::I(i)) => Some($a.$m(word_ptr(mem(b, x)), i as i32)),
            (32, Op::R(d), Op::R(s)) => Some($a.$m(r32(d), r32(s))),
            (32, Op::M(b, x), Op::R(s)) => Some($a.$m(dword_ptr(mem(b, x)), r32(s))),
            (32, Op::R(d), Op::I(i)) => Some($a.$m(r32(d), i as i32)),
            (32, Op::M(b, x), Op::I(i)) => Some($a.$m(dword_ptr(mem(b, x)), i as i32)),
            (64, Op::R(d), Op::R(s)) => Some($a.$m(r64(d), r64(s))),
            (64, Op::M(b, x), Op::R(s)) => Some($a.$m(qword_ptr(mem(b, x)), r64(s))),
            (64, Op::R(d), Op::I(i)) => Some($a.$m(r64(d), i as i32)),
            (64, Op::M(b, x), Op::I(i)) => Some($a.$m(qword_ptr(mem(b, x)), i as i32)),
            _ => None,
        }
    }};
}

/// `op r/m, r, imm|cl`, 16-64 bits (shld shrd); `$c` is `Some(imm)` or `None` for CL.
macro_rules! dbl {
    ($a:ident . $m:ident, $w:expr, $d:expr, $s:expr, $c:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r16, r32, r64, Op};
        match ($w, $d, $c) {
            (16, Op::R(d), Some(c)) => Some($a.$m(r16(d), r16($s), c as i32)),
            (16, Op::M(b, x), Some(c)) => Some($a.$m(word_ptr(mem(b, x)), r16($s), c as i32)),
            (16, Op::R(d), None) => Some($a.$m(r16(d), r16($s), cl)),
            (16, Op::M(b, x), None) => Some($a.$m(word_ptr(mem(b, x)), r16($s), cl)),
            (32, Op::R(d), Some(c)) => Some($a.$m(r32(d), r32($s), c as i32)),
            (32, Op::M(b, x), Some(c)) => Some($a.$m(dword_ptr(mem(b, x)), r32($s), c as i32)),
            (32, Op::R(d), None) => Some($a.$m(r32(d), r32($s), cl)),
            (32, Op::M(b, x), None) => Some($a.$m(dword_ptr(mem(b, x)), r32($s), cl)),
            (64, Op::R(d), Some(c)) => Some($a.$m(r64(d), r64($s), c as i32)),
            (64, Op::M(b, x), Some(c)) => Some($a.$m(qword_ptr(mem(b, x)), r64($s), c as i32)),
            (64, Op::R(d), None) => Some($a.$m(r64(d), r64($s), cl)),
            (64, Op::M(b, x), None) => Some($a.$m(qword_ptr(mem(b, x)), r64($s), cl)),
            _ => None,
        }
    }};
}

/// Applies `$mac` with the method for condition code `$cc` (0..16, the `cc` of jcc):
/// `cond!(cmov, r_rm, cc, a, ...)` calls `r_rm!(a.cmovo, ...)` for cc 0, and so on.
macro_rules! cond {
    ($mac:ident, $cc:expr, $a:ident, [$o:ident $no:ident $b:ident $ae:ident $e:ident $ne:ident $be:ident $ab:ident $s:ident $ns:ident $p:ident $np:ident $l:ident $ge:ident $le:ident $g:ident], $($rest:expr),*) => {
        match $cc & 15 {
            0 => $mac!($a.$o, $($rest),*),
            1 => $mac!($a.$no, $($rest),*),
            2 => $mac!($a.$b, $($rest),*),
            3 => $mac!($a.$ae, $($rest),*),
            4 => $mac!($a.$e, $($rest),*),
            5 => $mac!($a.$ne, $($rest),*),
            6 => $mac!($a.$be, $($rest),*),
            7 => $mac!($a.$ab, $($rest),*),
            8 => $mac!($a.$s, $($rest),*),
            9 => $mac!($a.$ns, $($rest),*),
            10 => $mac!($a.$p, $($rest),*),
            11 => $mac!($a.$np, $($rest),*),
            12 => $mac!($a.$l, $($rest),*),
            13 => $mac!($a.$ge, $($rest),*),
            14 => $mac!($a.$le, $($rest),*),
            _ => $mac!($a.$g, $($rest),*),
        }
    };
}

/// `op r/m8` (setcc).
macro_rules! rm8 {
    ($a:ident . $m:ident, $d:expr) => {{
        use iced_x86::code_asm::*;
        use $crate::difftest::operands::{mem, r8, Op};
        match $d {
            Op::R(d) => Some($a.$m(r8(d))),
            Op::M(b, x) => Some($a.$m(byte_ptr(mem(b, x)))),
            Op::I(_) => None,
        }
    }};
}

pub(crate) use {bin, bt, cond, dbl, r_rm, rm8, rm_cl, rm_i, rm_r, un};
