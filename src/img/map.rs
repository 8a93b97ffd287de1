//! `tandem img map`: where an image's data is, as `qemu-img map` prints it (its human table of
//! stored data, or its JSON list of every extent with start, length, depth, present, zero,
//! data and offset).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tandem_block::registry::MAX_BACKING_DEPTH;
use tandem_block::MapEntry;

use super::{meta, open_image, sparse, ImgError, OutputFormat};

/// A parsed `map` command line.
#[derive(Debug, Clone, Default)]
pub struct MapRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// `--output`.
    pub output: OutputFormat,
    /// `--start-offset`.
    pub start: u64,
    /// `--max-length`.
    pub max_length: Option<u64>,
}

/// Runs `map`.
pub fn run(r: &MapRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let mut img = open_image(&r.file, r.format.as_deref(), true)?;
    let size = img.size();
    let start = r.start.min(size);
    let len = r.max_length.unwrap_or(u64::MAX).min(size - start);
    let entries = if img.format_name() == "raw" {
        raw_map(&r.file, start, len)?
    } else {
        img.map(start, len)
            .map_err(|e| ImgError::file(&r.file, e))?
    };
    match r.output {
        OutputFormat::Json => {
            let lines: Vec<String> = entries.iter().map(json_line).collect();
            writeln!(out, "[{}]", lines.join(",\n"))?;
        }
        OutputFormat::Human => {
            let names = chain_names(&r.file, img.format_name());
            writeln!(
                out,
                "{:<16}{:<16}{:<16}File",
                "Offset", "Length", "Mapped to"
            )?;
            for e in entries.iter().filter(|e| e.data && !e.zero) {
                let Some(offset) = e.offset else {
                    return Err(ImgError::file(
                        &r.file,
                        "File contains external, encrypted or compressed clusters.",
                    ));
                };
                let name = names
                    .get(e.depth as usize)
                    .map(String::as_str)
                    .unwrap_or("");
                writeln!(
                    out,
                    "{:<16}{:<16}{:<16}{name}",
                    hex(e.start),
                    hex(e.length),
                    hex(offset)
                )?;
            }
        }
    }
    Ok(())
}

/// C's `%#x`: no prefix for zero.
fn hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

fn json_line(e: &MapEntry) -> String {
    let mut s = format!(
        "{{ \"start\": {}, \"length\": {}, \"depth\": {}, \"present\": {}, \"zero\": {}, \
         \"data\": {}",
        e.start, e.length, e.depth, e.present, e.zero, e.data
    );
    if let Some(o) = e.offset {
        s += &format!(", \"offset\": {o}");
    }
    s.push('}');
    s
}

/// A raw image's extents from the file's holes (the block layer reports all of it as data).
fn raw_map(file: &str, start: u64, len: u64) -> Result<Vec<MapEntry>, ImgError> {
    let f = File::open(file).map_err(|e| ImgError::file(file, e))?;
    let end = start + len;
    let mut out = Vec::new();
    let mut pos = start;
    let mut push = |s: u64, e: u64, data: bool| {
        if e > s {
            out.push(MapEntry {
                start: s,
                length: e - s,
                depth: 0,
                present: true,
                zero: !data,
                data,
                compressed: false,
                offset: Some(s),
            });
        }
    };
    for (s, e) in sparse::data_extents(&f, end) {
        let (s, e) = (s.max(start), e.min(end));
        if e <= s {
            continue;
        }
        push(pos, s, false);
        push(s, e, true);
        pos = e;
    }
    push(pos, end, false);
    Ok(out)
}

/// The file names of the chain, by depth, for the human table.
fn chain_names(file: &str, format: &str) -> Vec<String> {
    let mut names = vec![file.to_string()];
    let mut is_qcow2 = format == "qcow2";
    while is_qcow2 && names.len() < MAX_BACKING_DEPTH {
        let Some(cur) = names.last() else { break };
        let Ok(m) = meta::read_qcow2(Path::new(cur), cur) else {
            break;
        };
        let Some(b) = m.backing_file else { break };
        let next = meta::resolve_backing(cur, &b);
        is_qcow2 = match m.backing_fmt.as_deref() {
            Some(f) => f == "qcow2",
            None => meta::read_qcow2(Path::new(&next), &next).is_ok(),
        };
        names.push(next);
    }
    names
}
