//! Where everything lives in the harness's guest memory, and the checks that keep a snippet's
//! regions inside the user part of it. See the table in the [`harness`](super) module doc.

use std::ops::Range;

use super::error::HarnessError;

/// Guest RAM of the harness machine: one block at guest-physical 0, identity-mapped.
pub const RAM_SIZE: u64 = 64 << 20;
/// The IDT: 256 16-byte gates.
pub const IDT_ADDR: u64 = 0x8000;
/// The exception stubs, [`STUB_SIZE`] bytes per vector.
pub const STUBS_ADDR: u64 = 0x9000;
/// Bytes per exception stub.
pub const STUB_SIZE: u64 = 8;
/// The stack exception delivery switches to (TSS RSP0 and IST1); it grows down from here.
pub const HANDLER_STACK_TOP: u64 = 0x1_0000;
/// Everything below this is the harness's and supervisor-only (one 2 MiB large page).
pub const HARNESS_END: u64 = 0x20_0000;
/// The snippet's stack: zeroed before each run; RSP starts at its top unless set.
pub const STACK: Range<u64> = 0x3f_0000..0x40_0000;
/// The snippet's initial RSP.
pub const STACK_TOP: u64 = STACK.end;
/// Where the code is loaded and entered.
pub const CODE_ADDR: u64 = 0x40_0000;
/// Bytes of `int3` written after the code, so running off its end traps even without a
/// hardware breakpoint.
pub const TRAP_PAD: u64 = 16;
/// The longest snippet.
pub const CODE_MAX: u64 = (1 << 20) - TRAP_PAD;

/// The addresses a data region may use.
pub const USER_RAM: Range<u64> = HARNESS_END..RAM_SIZE;

/// The code's range with its trap padding.
pub fn code_range(code_len: u64) -> Range<u64> {
    CODE_ADDR..CODE_ADDR + code_len + TRAP_PAD
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Checks the code length and every data region: inside [`USER_RAM`], clear of the code and
/// its padding, and clear of each other.
pub fn check(code_len: usize, regions: &[(u64, Vec<u8>)]) -> Result<(), HarnessError> {
    let bad = |m: String| Err(HarnessError::BadSnippet(m));
    let code_len = code_len as u64;
    if code_len > CODE_MAX {
        return bad(format!(
            "code is {code_len} bytes, at most {CODE_MAX} are supported"
        ));
    }
    let code = code_range(code_len);
    let mut seen: Vec<Range<u64>> = Vec::new();
    for (addr, data) in regions {
        let len = data.len() as u64;
        let Some(end) = addr.checked_add(len) else {
            return bad(format!(
                "data region {addr:#x}+{len:#x} wraps around the address space"
            ));
        };
        let r = *addr..end;
        if len == 0 {
            continue;
        }
        if r.start < USER_RAM.start || r.end > USER_RAM.end {
            return bad(format!(
                "data region {addr:#x}..{end:#x} is outside the snippet's RAM {:#x}..{:#x} \
                 (below {:#x} is the harness's own)",
                USER_RAM.start, USER_RAM.end, HARNESS_END
            ));
        }
        if overlaps(&r, &code) {
            return bad(format!(
                "data region {addr:#x}..{end:#x} overlaps the code at {:#x}..{:#x}",
                code.start, code.end
            ));
        }
        if let Some(o) = seen.iter().find(|o| overlaps(o, &r)) {
            return bad(format!(
                "data regions {addr:#x}..{end:#x} and {:#x}..{:#x} overlap",
                o.start, o.end
            ));
        }
        seen.push(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_checked() {
        assert!(check(3, &[(0x50_0000, vec![1; 16])]).is_ok());
        assert!(check(3, &[(0x1000, vec![1])]).is_err());
        assert!(check(3, &[(RAM_SIZE - 1, vec![1, 2])]).is_err());
        assert!(check(3, &[(u64::MAX, vec![1, 2])]).is_err());
        assert!(check(3, &[(CODE_ADDR + 3, vec![1])]).is_err());
        assert!(check(3, &[(CODE_ADDR + 3 + TRAP_PAD, vec![1])]).is_ok());
        assert!(check(3, &[(0x50_0000, vec![1; 16]), (0x50_000f, vec![1])]).is_err());
        assert!(check(CODE_MAX as usize + 1, &[]).is_err());
        // The stack may be preloaded.
        assert!(check(3, &[(STACK_TOP - 8, vec![1; 8])]).is_ok());
    }
}
