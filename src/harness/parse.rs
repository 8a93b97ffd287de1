//! Text forms of snippet inputs, for the command line: hex byte strings, register assignments
//! (`rax=0x10`, `xmm0=0x...`, `st0=0x3fff8000000000000000`), memory preloads (`ADDR=HEX`).

use thiserror::Error;

use tandem_target_x86_64::cpu_state::reg;

use super::snippet::SnippetRegs;

/// A piece of text that is not what it should be; the message quotes it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Hex bytes, spaced or not, with optional `0x` prefixes and commas: `"48 01 d8"`,
/// `"4801d8"`, `"0x48,0x01,0xd8"`.
pub fn hex_bytes(text: &str) -> Result<Vec<u8>, ParseError> {
    let mut digits = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
        let w = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))
            .unwrap_or(word);
        if let Some(bad) = w.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ParseError(format!(
                "invalid hex '{text}': '{bad}' is not a hex digit"
            )));
        }
        if w.len() % 2 == 1 {
            return Err(ParseError(format!(
                "invalid hex '{text}': '{word}' has an odd number of digits"
            )));
        }
        digits.push_str(w);
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| ParseError(format!("invalid hex '{text}'")))
        })
        .collect()
}

/// A number: decimal, or hex with `0x`.
pub fn number(text: &str) -> Result<u128, ParseError> {
    let t = text.replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u128::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| ParseError(format!("invalid number '{text}'")))
}

/// A register a snippet can start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegName {
    /// A general register, by [`reg`] index.
    Gpr(usize),
    /// RFLAGS.
    Rflags,
    /// MXCSR.
    Mxcsr,
    /// XMM0-15.
    Xmm(usize),
    /// The x87 control word.
    Fcw,
    /// The x87 status word (TOP in bits 11-13).
    Fsw,
    /// The abridged x87 tag word (FXSAVE's: bit i set = physical register i valid).
    Ftw,
    /// The x87 register in FXSAVE slot i (ST(i), 80 bits; MMX register `(i + TOP) % 8`).
    St(usize),
}

/// The names `--reg` takes, for messages.
pub const REG_NAMES: &str = "rax..r15, rflags, mxcsr, xmm0..xmm15, fcw, fsw, ftw, st0..st7";

/// The register called `name` (64-bit names: rax..r15, rflags, mxcsr, xmm0..xmm15, and the x87
/// state fcw, fsw, ftw, st0..st7).
pub fn reg_name(name: &str) -> Result<RegName, ParseError> {
    let n = name.to_ascii_lowercase();
    if let Some(i) = reg::NAMES.iter().position(|r| *r == n) {
        return Ok(RegName::Gpr(i));
    }
    match n.as_str() {
        "rflags" | "eflags" | "flags" => return Ok(RegName::Rflags),
        "mxcsr" => return Ok(RegName::Mxcsr),
        "fcw" => return Ok(RegName::Fcw),
        "fsw" => return Ok(RegName::Fsw),
        "ftw" => return Ok(RegName::Ftw),
        "rip" => {
            return Err(ParseError(
                "rip cannot be set: the snippet starts at its first byte".into(),
            ))
        }
        _ => {}
    }
    if let Some(i) = n
        .strip_prefix("xmm")
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|&i| i < 16)
    {
        return Ok(RegName::Xmm(i));
    }
    if let Some(i) = n
        .strip_prefix("st")
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|&i| i < 8)
    {
        return Ok(RegName::St(i));
    }
    Err(ParseError(format!(
        "unknown register '{name}' ({REG_NAMES})"
    )))
}

/// Applies `NAME=VALUE` to `regs`.
pub fn assign(regs: &mut SnippetRegs, text: &str) -> Result<(), ParseError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(ParseError(format!("'{text}': expected NAME=VALUE")));
    };
    let r = reg_name(name.trim())?;
    let v = number(value.trim())?;
    let wide = || ParseError(format!("'{text}': {value} does not fit {name}"));
    match r {
        RegName::Gpr(i) => regs.gpr[i] = u64::try_from(v).map_err(|_| wide())?,
        RegName::Rflags => regs.rflags = u64::try_from(v).map_err(|_| wide())?,
        RegName::Mxcsr => regs.fx.set_mxcsr(u32::try_from(v).map_err(|_| wide())?),
        RegName::Xmm(i) => regs.fx.set_xmm(i, v.to_le_bytes()),
        RegName::Fcw => regs.fx.set_fcw(u16::try_from(v).map_err(|_| wide())?),
        RegName::Fsw => regs.fx.set_fsw(u16::try_from(v).map_err(|_| wide())?),
        RegName::Ftw => regs.fx.set_ftw(u8::try_from(v).map_err(|_| wide())?),
        RegName::St(i) => {
            if v >> 80 != 0 {
                return Err(wide());
            }
            let b = v.to_le_bytes();
            regs.fx.set_st(i, b[..10].try_into().unwrap_or_default());
        }
    }
    Ok(())
}

/// `ADDR=HEX`: a data region.
pub fn memory(text: &str) -> Result<(u64, Vec<u8>), ParseError> {
    let Some((addr, bytes)) = text.split_once('=') else {
        return Err(ParseError(format!("'{text}': expected ADDR=HEX")));
    };
    let a = number(addr.trim())?;
    let a = u64::try_from(a).map_err(|_| ParseError(format!("address '{addr}' is too large")))?;
    Ok((a, hex_bytes(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(hex_bytes("48 01 d8").unwrap(), vec![0x48, 0x01, 0xd8]);
        assert_eq!(hex_bytes("4801D8").unwrap(), vec![0x48, 0x01, 0xd8]);
        assert_eq!(
            hex_bytes("0x48,0x01, 0xd8").unwrap(),
            vec![0x48, 0x01, 0xd8]
        );
        assert_eq!(hex_bytes("").unwrap(), Vec::<u8>::new());
        assert!(hex_bytes("4801d").unwrap_err().0.contains("odd"));
        assert!(hex_bytes("48 zz").unwrap_err().0.contains("'z'"));
        assert!(hex_bytes("é1").is_err());
    }

    #[test]
    fn register_names() {
        assert_eq!(reg_name("rax"), Ok(RegName::Gpr(reg::RAX)));
        assert_eq!(reg_name("R15"), Ok(RegName::Gpr(15)));
        assert_eq!(reg_name("rflags"), Ok(RegName::Rflags));
        assert_eq!(reg_name("xmm15"), Ok(RegName::Xmm(15)));
        assert_eq!(reg_name("FCW"), Ok(RegName::Fcw));
        assert_eq!(reg_name("st7"), Ok(RegName::St(7)));
        assert!(reg_name("st8").is_err());
        assert!(reg_name("xmm16").is_err());
        assert!(reg_name("eax").unwrap_err().0.contains("eax"));
        assert!(reg_name("rip").unwrap_err().0.contains("rip"));
    }

    #[test]
    fn assignments_and_memory() {
        let mut r = SnippetRegs::default();
        assign(&mut r, "rbx=0x10").unwrap();
        assign(&mut r, "rcx=42").unwrap();
        assign(&mut r, "xmm1=0x3f800000").unwrap();
        assert_eq!(r.gpr[reg::RBX], 0x10);
        assert_eq!(r.gpr[reg::RCX], 42);
        assert_eq!(r.fx.xmm(1)[..4], [0, 0, 0x80, 0x3f]);
        assign(&mut r, "st2=0x3fff8000000000000000").unwrap();
        assign(&mut r, "ftw=0x81").unwrap();
        assign(&mut r, "fsw=0x3800").unwrap();
        assert_eq!(r.fx.st(2), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        assert_eq!((r.fx.ftw(), r.fx.fsw()), (0x81, 0x3800));
        assert!(assign(&mut r, "st0=0x1_0000_0000_0000_0000_0000").is_err());
        assert!(assign(&mut r, "ftw=0x100").is_err());
        assert!(assign(&mut r, "rax").is_err());
        assert!(assign(&mut r, "rax=0x1_0000_0000_0000_0000").is_err());
        assert!(assign(&mut r, "rax=zz").unwrap_err().0.contains("zz"));
        assert_eq!(memory("0x500000=0102").unwrap(), (0x50_0000, vec![1, 2]));
        assert!(memory("0x500000").is_err());
    }
}
