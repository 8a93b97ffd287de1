//! `tandem img commit`: copies what a qcow2 overlay holds (its own clusters, not its backing
//! chain's) into its backing file, over the block layer.
//!
//! Known wart: the overlay is left as it was (as `qemu-img commit -d`): emptying it needs a
//! "deallocate so the backing file shows through" operation, and the block layer's discard
//! records v3 zero clusters instead, which would hide the committed data.

use std::io::Write;
use std::path::Path;

use super::progress::Progress;
use super::{meta, open_image, ImgError};

/// Bytes copied per step.
const CHUNK: u64 = 2 << 20;

/// A parsed `commit` command line.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The overlay.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// `-p`.
    pub progress: bool,
    /// `-q`.
    pub quiet: bool,
}

/// Runs `commit`.
pub fn run(r: &CommitRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let mut top = open_image(&r.file, r.format.as_deref(), true)?;
    let no_backing = || ImgError::file(&r.file, "Image does not have a backing file");
    if top.format_name() != "qcow2" {
        return Err(no_backing());
    }
    let m = meta::read_qcow2(Path::new(&r.file), &r.file)?;
    let backing = m.backing_file.as_deref().ok_or_else(no_backing)?;
    let base_name = meta::resolve_backing(&r.file, backing);
    let mut base = open_image(&base_name, m.backing_fmt.as_deref(), false)?;
    let size = top.size();
    let map = top.map(0, size).map_err(|e| ImgError::file(&r.file, e))?;
    let mut progress = Progress::new(r.progress && !r.quiet, out);
    let mut buf = vec![0u8; CHUNK as usize];
    let base_err = |e| ImgError::file(&base_name, e);
    for e in map.iter().filter(|e| e.depth == 0 && e.present) {
        let end = e.start + e.length;
        if end > base.size() {
            return Err(ImgError::file(
                &base_name,
                "the backing file is smaller than the image, and resizing it is not supported",
            ));
        }
        if !e.data {
            base.write_zeroes(e.start, e.length).map_err(base_err)?;
        } else {
            let mut off = e.start;
            while off < end {
                let n = (end - off).min(CHUNK) as usize;
                top.read_at(off, &mut buf[..n])
                    .map_err(|e| ImgError::file(&r.file, e))?;
                base.write_at(off, &buf[..n]).map_err(base_err)?;
                off += n as u64;
            }
        }
        progress.update(out, end, size);
    }
    base.flush().map_err(base_err)?;
    progress.finish(out);
    if !r.quiet {
        writeln!(out, "Image committed.")?;
    }
    Ok(())
}
