//! `tandem img create`: a new raw or qcow2 image, as `qemu-img create`.

use std::io::Write;

use super::meta::resolve_backing;
use super::options::{self, ImageOptions};
use super::{open_image, ImgError};

/// A parsed `create` command line.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `-f`: the format (raw when absent, as qemu-img).
    pub format: Option<String>,
    /// The new image.
    pub file: String,
    /// The size argument, when given.
    pub size: Option<u64>,
    /// `-o` strings.
    pub options: Vec<String>,
    /// `-b`.
    pub backing: Option<String>,
    /// `-F`.
    pub backing_fmt: Option<String>,
    /// `-q`: print nothing.
    pub quiet: bool,
}

/// Runs `create`.
pub fn run(r: &CreateRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let format = r.format.as_deref().unwrap_or("raw");
    if r.options.iter().any(|o| o == "help" || o == "?") {
        write!(out, "{}", options::help(format))?;
        return Ok(());
    }
    let mut o = ImageOptions::parse(format, &r.options)?;
    if r.backing.is_some() {
        o.backing_file.clone_from(&r.backing);
    }
    if r.backing_fmt.is_some() {
        o.backing_fmt.clone_from(&r.backing_fmt);
    }
    if r.size.is_some() {
        o.size = r.size;
    }
    create_image(&r.file, &o, r.quiet, out)
}

/// Creates `file` from `o`, printing the "Formatting" line unless `quiet`.
pub fn create_image(
    file: &str,
    o: &ImageOptions,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<(), ImgError> {
    if o.format == "raw" && o.backing_file.is_some() {
        return Err(ImgError::file(
            file,
            "Backing file not supported for file format 'raw'",
        ));
    }
    if o.backing_fmt.is_some() && o.backing_file.is_none() {
        return Err(ImgError::file(
            file,
            "backing_fmt given without backing_file",
        ));
    }
    if o.backing_file.is_some() && o.backing_fmt.is_none() {
        return Err(ImgError::file(
            file,
            "Backing file specified without backing format",
        ));
    }
    let size = match (o.size, &o.backing_file) {
        (Some(s), _) => s,
        (None, Some(b)) => {
            let bpath = resolve_backing(file, b);
            open_image(&bpath, o.backing_fmt.as_deref(), true)
                .map_err(|e| ImgError::file(file, format!("Could not open backing image: {e}")))?
                .size()
        }
        (None, None) => {
            return Err(ImgError::file(
                file,
                "Image creation needs a size parameter",
            ))
        }
    };
    if !quiet {
        writeln!(out, "{}", o.formatting_line(file, size))?;
        out.flush()?;
    }
    let c = o.to_create(Some(size))?;
    tandem_block::create(file, &c).map_err(|e| ImgError::file(file, e))
}
