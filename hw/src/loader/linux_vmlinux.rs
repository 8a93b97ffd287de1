//! Recognising an uncompressed ELF vmlinux: an ELF64 x86-64 executable with a PT_NOTE segment
//! holding a note owned by "Linux".
//!
//! Every vmlinux since Linux 4.18 carries such a note (`LINUX_ELFNOTE_BUILD_SALT`, type
//! 0x100), and ordinary test kernels do not, so it marks the files to enter with the Linux boot
//! protocol (RSI = boot_params) rather than the ELF loader's multiboot-style registers. The
//! notes are read bounds-checked; any malformation means "not a vmlinux" (the ELF loader then
//! reports what is wrong with the file, if anything).

use super::bytes::{slice, u16_at, u32_at, u64_at};

const PT_NOTE: u32 = 4;
const OWNER: &[u8] = b"Linux\0";

fn align4(v: u64) -> Option<u64> {
    v.checked_add(3).map(|x| x & !3)
}

/// True if `notes` (a PT_NOTE segment's bytes) holds a note named "Linux".
fn has_linux_note(notes: &[u8]) -> bool {
    let mut at = 0u64;
    while at.saturating_add(12) <= notes.len() as u64 {
        let (Ok(namesz), Ok(descsz)) = (u32_at(notes, at, "note"), u32_at(notes, at + 4, "note"))
        else {
            return false;
        };
        let name = slice(notes, at + 12, namesz.into(), "note name");
        if name.is_ok_and(|n| n == OWNER) {
            return true;
        }
        // Name and descriptor are each padded to 4 bytes.
        let next = align4(u64::from(namesz))
            .zip(align4(u64::from(descsz)))
            .and_then(|(n, d)| (at + 12).checked_add(n)?.checked_add(d));
        match next {
            Some(n) if n > at => at = n,
            _ => return false,
        }
    }
    false
}

/// True if `image` is an ELF64 x86-64 file with a "Linux" note in a PT_NOTE segment.
pub(crate) fn is_vmlinux(image: &[u8]) -> bool {
    let is_elf64 = image.starts_with(b"\x7fELF\x02\x01");
    if !is_elf64 || u16_at(image, 18, "ELF header").ok() != Some(62) {
        return false;
    }
    let (Ok(phoff), Ok(phentsize), Ok(phnum)) = (
        u64_at(image, 32, "ELF header"),
        u16_at(image, 54, "ELF header"),
        u16_at(image, 56, "ELF header"),
    ) else {
        return false;
    };
    (0..u64::from(phnum)).any(|i| {
        let Some(ph) = u64::from(phentsize)
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
        else {
            return false;
        };
        let note = |off: u64| {
            ph.checked_add(off)
                .and_then(|a| u64_at(image, a, "phdr").ok())
        };
        u32_at(image, ph, "phdr").ok() == Some(PT_NOTE)
            && note(8)
                .zip(note(32))
                .and_then(|(offset, filesz)| slice(image, offset, filesz, "note").ok())
                .is_some_and(has_linux_note)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&0x100u32.to_le_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn finds_the_linux_note_after_others() {
        let mut n = note(b"GNU\0", &[1, 2, 3, 4, 5]);
        assert!(!has_linux_note(&n));
        n.extend(note(b"Linux\0", &[0; 4]));
        assert!(has_linux_note(&n));
        // Lying sizes end the walk without a panic.
        let mut bad = note(b"Xen\0", &[]);
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!has_linux_note(&bad));
        assert!(!has_linux_note(&[1, 2, 3]));
        assert!(!is_vmlinux(b"\x7fELF\x02\x01"));
    }
}
