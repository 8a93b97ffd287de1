//! `tandem img rebase`: gives an image another backing file. With `-u` only the recorded name
//! changes; otherwise every cluster the image does not hold itself and whose contents differ
//! between the old and the new backing chain is first copied into the image, so that what the
//! guest reads stays the same (qemu-img's safe mode). Both end in the block layer's
//! [`tandem_block::BlockDriver::set_backing`]; formats without it report so.

use std::io::Write;

use super::progress::Progress;
use super::{meta, open_image, ImgError};

/// Bytes compared per step.
const CHUNK: u64 = 2 << 20;

/// A parsed `rebase` command line.
#[derive(Debug, Clone, Default)]
pub struct RebaseRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// `-b`: the new backing file ("" for none).
    pub backing: Option<String>,
    /// `-F`: its format.
    pub backing_fmt: Option<String>,
    /// `-u`: only change the name, copy nothing.
    pub unsafe_mode: bool,
    /// `-p`.
    pub progress: bool,
    /// `-q`.
    pub quiet: bool,
}

/// Runs `rebase`.
pub fn run(r: &RebaseRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let Some(backing) = r.backing.as_deref() else {
        return Err(ImgError::usage(
            "Must specify backing file (-b) or use unsafe mode (-u -b '')",
        ));
    };
    let new = (!backing.is_empty()).then_some(backing);
    if new.is_some() && r.backing_fmt.is_none() && !r.unsafe_mode {
        return Err(ImgError::file(
            &r.file,
            "Backing file specified without backing format (-F)",
        ));
    }
    let mut img = open_image(&r.file, r.format.as_deref(), false)?;
    let err = |e| ImgError::file(&r.file, e);
    if !r.unsafe_mode {
        let mut new_chain = match new {
            Some(b) => Some(open_image(
                &meta::resolve_backing(&r.file, b),
                r.backing_fmt.as_deref(),
                true,
            )?),
            None => None,
        };
        let size = img.size();
        let map = img.map(0, size).map_err(err)?;
        let mut progress = Progress::new(r.progress && !r.quiet, out);
        let (mut old_buf, mut new_buf) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
        // What the image shows from its old chain, where it holds nothing itself.
        for e in map.iter().filter(|e| e.depth > 0 || !e.present) {
            let end = e.start + e.length;
            let mut off = e.start;
            while off < end {
                let n = (end - off).min(CHUNK) as usize;
                let old = &mut old_buf[..n];
                img.read_at(off, old).map_err(err)?;
                let fresh = &mut new_buf[..n];
                fresh.fill(0);
                if let Some(b) = new_chain.as_mut() {
                    let avail = b.size().saturating_sub(off).min(n as u64) as usize;
                    b.read_at(off, &mut fresh[..avail])
                        .map_err(|e| ImgError::file(backing, e))?;
                }
                if old != fresh {
                    img.write_at(off, old).map_err(err)?;
                }
                off += n as u64;
            }
            progress.update(out, end, size);
        }
        progress.finish(out);
    }
    img.set_backing(new, r.backing_fmt.as_deref())
        .map_err(err)?;
    img.flush().map_err(err)
}
