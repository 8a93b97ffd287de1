//! The translator benchmark's corpus: real guest blocks cut from the `.text` of the
//! busybox-static binary inside the project's Linux fixture initramfs (fixtures/fetch.sh).
//!
//! Blocks are cut the way the engine cuts them ([`form`], with the page limit of the RIP the
//! code is linked at) from fixed places in `.text`, so one busybox package gives one corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

use iced_x86::Code;

use crate::block::form;

/// Blocks in the corpus.
pub const BLOCKS: usize = 2_000;
/// The corpus comes from this many windows spread evenly over `.text` (one run of
/// consecutive blocks each), so it samples the whole binary, not one library routine.
const WINDOWS: usize = 20;
/// Blocks dropped at the start of each window: it starts at an arbitrary byte, and x86
/// decoding needs a few instructions to fall into step with the real instruction boundaries.
const RESYNC: usize = 4;

/// One guest block as the engine would fetch it.
pub struct GuestBlock {
    /// RIP of its first instruction (the address busybox is linked at).
    pub rip: u64,
    /// Its bytes, and up to 15 more, as the engine's fetch hands them to `form`.
    pub bytes: Vec<u8>,
    /// How many of `bytes` lie on the first page.
    pub page_bytes: usize,
}

/// The corpus and where it came from.
pub struct Corpus {
    /// The blocks.
    pub blocks: Vec<GuestBlock>,
    /// Guest instructions in all blocks.
    pub insns: usize,
    /// Guest bytes in all blocks.
    pub guest_bytes: usize,
    /// The initramfs the binary was read from.
    pub source: PathBuf,
    /// Size of `.text`.
    pub text_bytes: usize,
}

/// The corpus, or why it cannot be had (no fixtures and no way to fetch them).
pub fn load() -> Result<Corpus, String> {
    let initramfs = fetch_initramfs()?;
    let archive = std::fs::read(&initramfs).map_err(|e| format!("{}: {e}", initramfs.display()))?;
    let busybox = newc_file(&archive, "bin/busybox")?;
    let (text_addr, text) = elf_text(busybox)?;
    let blocks = cut(text_addr, text);
    if blocks.len() < BLOCKS {
        return Err(format!(
            "busybox's .text gave {} blocks, fewer than {BLOCKS}",
            blocks.len()
        ));
    }
    let (mut insns, mut guest_bytes) = (0, 0);
    for b in &blocks {
        let f = form(&b.bytes, b.rip, 64, b.page_bytes);
        insns += f.insns.len();
        guest_bytes += f.insns.iter().map(|i| i.len()).sum::<usize>();
    }
    Ok(Corpus {
        blocks,
        insns,
        guest_bytes,
        source: initramfs,
        text_bytes: text.len(),
    })
}

/// The initramfs path from fixtures/fetch.sh (which only checks its cache when the fixtures
/// are there, and fetches them otherwise).
fn fetch_initramfs() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fetch.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run bash {}: {e}", script.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "fixtures/fetch.sh failed: {}",
            err.lines().last().unwrap_or("no output")
        ));
    }
    // The script prints vmlinuz, initramfs and System.map last, one a line.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [.., _, initramfs, _] => Ok(PathBuf::from(initramfs)),
        _ => Err(format!("fixtures/fetch.sh printed too little: {text:?}")),
    }
}

/// The data of the member `name` (leading `/` ignored) of a newc cpio archive.
fn newc_file<'a>(a: &'a [u8], name: &str) -> Result<&'a [u8], String> {
    let field = |at: usize| -> Result<usize, String> {
        let s = a.get(at..at + 8).ok_or("truncated cpio header")?;
        let s = std::str::from_utf8(s).map_err(|_| "cpio header is not ASCII")?;
        usize::from_str_radix(s, 16).map_err(|_| format!("bad cpio header field {s:?}"))
    };
    let mut at = 0;
    while a.get(at..at + 6) == Some(b"070701") {
        let (size, name_len) = (field(at + 54)?, field(at + 94)?);
        let name_at = at + 110;
        let member = a
            .get(name_at..name_at + name_len.saturating_sub(1))
            .ok_or("truncated cpio name")?;
        let data_at = (name_at + name_len).next_multiple_of(4);
        let data = a
            .get(data_at..data_at + size)
            .ok_or("truncated cpio data")?;
        if member == b"TRAILER!!!" {
            break;
        }
        if member.strip_prefix(b"/").unwrap_or(member) == name.as_bytes() {
            return Ok(data);
        }
        at = (data_at + size).next_multiple_of(4);
    }
    Err(format!("no {name} in the initramfs"))
}

/// The link address and bytes of the `.text` section of a little-endian ELF64 image.
fn elf_text(elf: &[u8]) -> Result<(u64, &[u8]), String> {
    let get = |at: usize, n: usize| -> Result<u64, String> {
        let b = elf.get(at..at + n).ok_or("truncated ELF")?;
        Ok(b.iter().rev().fold(0, |v, &x| v << 8 | u64::from(x)))
    };
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return Err("busybox is not an ELF64 binary".into());
    }
    let (shoff, shentsize) = (get(0x28, 8)? as usize, get(0x3a, 2)? as usize);
    let (shnum, shstrndx) = (get(0x3c, 2)? as usize, get(0x3e, 2)? as usize);
    let section = |i: usize| shoff + i * shentsize;
    let strtab = get(section(shstrndx) + 0x18, 8)? as usize;
    for i in 0..shnum {
        let name_at = strtab + get(section(i), 4)? as usize;
        if elf.get(name_at..name_at + 6) == Some(b".text\0") {
            let addr = get(section(i) + 0x10, 8)?;
            let (off, size) = (get(section(i) + 0x18, 8)?, get(section(i) + 0x20, 8)?);
            let text = elf
                .get(off as usize..(off + size) as usize)
                .ok_or(".text lies outside the file")?;
            return Ok((addr, text));
        }
    }
    Err("busybox has no .text section".into())
}

/// [`BLOCKS`] blocks, cut consecutively from [`WINDOWS`] evenly spaced places in `text`.
/// Blocks with an invalid instruction are left out (data or a misaligned start, not code).
fn cut(text_addr: u64, text: &[u8]) -> Vec<GuestBlock> {
    let per_window = BLOCKS / WINDOWS;
    let mut blocks = Vec::with_capacity(BLOCKS);
    for w in 0..WINDOWS {
        let mut off = text.len() / WINDOWS * w;
        let mut kept = 0;
        let mut seen = 0;
        while kept < per_window && off < text.len() {
            let rip = text_addr + off as u64;
            let page_bytes = 4096 - (rip & 0xfff) as usize;
            let bytes = &text[off..text.len().min(off + page_bytes + 15)];
            let page_bytes = page_bytes.min(bytes.len());
            let b = form(bytes, rip, 64, page_bytes);
            let len = b.insns.iter().map(|i| i.len()).sum::<usize>();
            let valid = b.insns.iter().all(|i| i.code() != Code::INVALID);
            if seen >= RESYNC && valid {
                blocks.push(GuestBlock {
                    rip,
                    bytes: bytes[..bytes.len().min(len + 15)].to_vec(),
                    page_bytes: page_bytes.min(len + 15),
                });
                kept += 1;
            }
            seen += 1;
            off += len.max(1);
        }
    }
    blocks
}
