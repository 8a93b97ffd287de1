//! `tandem img resize`: changes an image's virtual size through the block layer's
//! [`tandem_block::BlockDriver::resize`], with qemu-img's `+SIZE`/`-SIZE` forms and its
//! refusal to shrink without `--shrink`.

use std::io::Write;

use super::units::parse_size;
use super::{open_image, ImgError};

/// A parsed `resize` command line.
#[derive(Debug, Clone, Default)]
pub struct ResizeRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// The size argument: `SIZE`, `+SIZE` or `-SIZE`.
    pub size: String,
    /// `--shrink`: allow making the image smaller.
    pub shrink: bool,
    /// `-q`.
    pub quiet: bool,
}

/// Runs `resize`.
pub fn run(r: &ResizeRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let mut img = open_image(&r.file, r.format.as_deref(), false)?;
    let current = img.size();
    let bad = || ImgError::usage(format!("Invalid image size specified: '{}'", r.size));
    let new = if let Some(d) = r.size.strip_prefix('+') {
        current.checked_add(parse_size(d).ok_or_else(bad)?)
    } else if let Some(d) = r.size.strip_prefix('-') {
        current.checked_sub(parse_size(d).ok_or_else(bad)?)
    } else {
        Some(parse_size(&r.size).ok_or_else(bad)?)
    };
    let new = new
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| ImgError::file(&r.file, "New image size out of range"))?;
    if new < current && !r.shrink {
        return Err(ImgError::file(
            &r.file,
            "Use the --shrink option to perform a shrink operation.",
        ));
    }
    let err = |e| ImgError::file(&r.file, e);
    img.resize(new).map_err(err)?;
    img.flush().map_err(err)?;
    if !r.quiet {
        writeln!(out, "Image resized.")?;
    }
    Ok(())
}
