//! The engines' trace log, QEMU's `-d ITEMS` / `-D FILE`: what is traced is chosen per run
//! ([`TraceFlags`]); where it goes is process-wide (stderr, or the file set with
//! [`set_log_file`]), as QEMU's qemu_log.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// What to trace (QEMU's `-d` items).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceFlags {
    /// `in_asm`: guest instructions of each block when it is decoded.
    pub in_asm: bool,
    /// `op`: the intermediate code of each block when it is compiled (Cranelift IR).
    pub op: bool,
    /// `out_asm`: host code of each compiled block.
    pub out_asm: bool,
    /// `cpu`: registers before each block runs.
    pub cpu: bool,
    /// `exec`: each block as it runs.
    pub exec: bool,
    /// `int`: each interrupt and exception delivered.
    pub int: bool,
    /// `unimp`: each instruction without semantics when it is met.
    pub unimp: bool,
}

impl TraceFlags {
    /// Parses a comma-separated `-d` list; Err names the unknown item.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut f = TraceFlags::default();
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            match item {
                "in_asm" => f.in_asm = true,
                "op" => f.op = true,
                "out_asm" => f.out_asm = true,
                "cpu" => f.cpu = true,
                "exec" => f.exec = true,
                "int" => f.int = true,
                "unimp" => f.unimp = true,
                other => return Err(other.to_string()),
            }
        }
        Ok(f)
    }

    /// The `-d help` text.
    pub fn help() -> &'static str {
        "Log items (comma separated):\n\
         in_asm   show the guest instructions of each translated block\n\
         op       show the intermediate code (Cranelift IR) of each compiled block\n\
         out_asm  show the host code of each compiled block\n\
         cpu      show the CPU registers before entering a block\n\
         exec     show each block as it is executed\n\
         int      show interrupts and exceptions\n\
         unimp    log instructions that have no semantics yet (they raise #UD)\n"
    }
}

static FILE: Mutex<Option<File>> = Mutex::new(None);

/// Sends the log to `path` (created or truncated) instead of stderr.
pub fn set_log_file(path: &Path) -> std::io::Result<()> {
    let f = File::create(path)?;
    *FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    Ok(())
}

/// Writes `text` to the log.
pub fn write(text: &str) {
    let mut file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    // A log that cannot be written is not worth stopping the guest for.
    match file.as_mut() {
        Some(f) => {
            let _ = f.write_all(text.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_and_unknown_ones_are_named() {
        let f = TraceFlags::parse("in_asm,exec,int").unwrap();
        assert!(f.in_asm && f.exec && f.int && !f.cpu);
        assert_eq!(TraceFlags::parse("in_asm,bogus"), Err("bogus".into()));
        assert!(TraceFlags::help().contains("out_asm"));
    }
}
