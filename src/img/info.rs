//! `tandem img info`: an image's format, sizes, backing file, snapshots and format-specific
//! fields, in qemu-img's human text or JSON (its keys and their order).

use std::io::Write;
use std::path::Path;

use tandem_block::registry::MAX_BACKING_DEPTH;

use super::json::Json;
use super::meta::{self, Qcow2Meta};
use super::snapshot::{self, Snapshot};
use super::units::size_to_str;
use super::{open_image, ImgError, OutputFormat};

/// A parsed `info` command line.
#[derive(Debug, Clone, Default)]
pub struct InfoRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// `--output`.
    pub output: OutputFormat,
    /// `--backing-chain`: every image of the chain.
    pub backing_chain: bool,
}

/// What `info` reports about one image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The name as given (or as resolved, for backing files).
    pub filename: String,
    /// The format's name.
    pub format: String,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Bytes used on the host.
    pub actual_size: Option<u64>,
    /// The qcow2 header's fields.
    pub qcow2: Option<Qcow2Meta>,
    /// The backing file as resolved against the image's directory.
    pub full_backing: Option<String>,
    /// Internal snapshots.
    pub snapshots: Vec<Snapshot>,
}

/// Collects `info` about `file`.
pub fn collect(file: &str, format: Option<&str>) -> Result<ImageInfo, ImgError> {
    let mut img = open_image(file, format, true)?;
    let format = img.format_name().to_string();
    let qcow2 = match format.as_str() {
        "qcow2" => Some(meta::read_qcow2(Path::new(file), file)?),
        _ => None,
    };
    let snapshots = snapshot::list(img.as_mut(), file)?;
    let full_backing = qcow2
        .as_ref()
        .and_then(|m| m.backing_file.as_deref())
        .map(|b| meta::resolve_backing(file, b));
    Ok(ImageInfo {
        filename: file.to_string(),
        format,
        virtual_size: img.size(),
        actual_size: meta::allocated_bytes(Path::new(file)),
        qcow2,
        full_backing,
        snapshots,
    })
}

/// Runs `info`.
pub fn run(r: &InfoRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let mut chain = vec![collect(&r.file, r.format.as_deref())?];
    while r.backing_chain && chain.len() < MAX_BACKING_DEPTH {
        let Some(last) = chain.last() else { break };
        let Some(next) = last.full_backing.clone() else {
            break;
        };
        let fmt = last.qcow2.as_ref().and_then(|m| m.backing_fmt.clone());
        chain.push(collect(&next, fmt.as_deref())?);
    }
    match r.output {
        OutputFormat::Human => {
            let texts: Vec<String> = chain.iter().map(human).collect();
            write!(out, "{}", texts.join("\n"))?;
        }
        OutputFormat::Json if r.backing_chain => {
            let list = Json::Array(chain.iter().map(to_json).collect());
            writeln!(out, "{}", list.pretty())?;
        }
        OutputFormat::Json => {
            for i in &chain {
                writeln!(out, "{}", to_json(i).pretty())?;
            }
        }
    }
    Ok(())
}

/// qemu-img's human text for one image.
pub fn human(i: &ImageInfo) -> String {
    let mut s = format!(
        "image: {}\nfile format: {}\nvirtual size: {} ({} bytes)\ndisk size: {}\n",
        i.filename,
        i.format,
        size_to_str(i.virtual_size),
        i.virtual_size,
        i.actual_size
            .map(size_to_str)
            .unwrap_or_else(|| "unavailable".into())
    );
    if let Some(m) = &i.qcow2 {
        s += &format!("cluster_size: {}\n", m.cluster_size);
        if m.dirty {
            s += "cleanly shut down: no\n";
        }
        if let Some(b) = &m.backing_file {
            s += &format!("backing file: {b}");
            if let Some(full) = i.full_backing.as_ref().filter(|f| *f != b) {
                s += &format!(" (actual path: {full})");
            }
            s += "\n";
        }
        if let Some(f) = &m.backing_fmt {
            s += &format!("backing file format: {f}\n");
        }
    }
    if !i.snapshots.is_empty() {
        s += "Snapshot list:\n";
        s += &snapshot::table(&i.snapshots);
    }
    if let Some(m) = &i.qcow2 {
        s += "Format specific information:\n";
        s += &format!("    compat: {}\n", compat(m));
        s += "    compression type: zlib\n";
        if m.version >= 3 {
            s += &format!(
                "    lazy refcounts: {}\n    refcount bits: {}\n    corrupt: {}\n    \
                 extended l2: {}\n",
                m.lazy_refcounts, m.refcount_bits, m.corrupt, m.extended_l2
            );
        } else {
            s += &format!("    refcount bits: {}\n", m.refcount_bits);
        }
    }
    s
}

fn compat(m: &Qcow2Meta) -> &'static str {
    if m.version >= 3 {
        "1.1"
    } else {
        "0.10"
    }
}

/// qemu-img's JSON object for one image, keys in its order.
pub fn to_json(i: &ImageInfo) -> Json {
    let mut pairs = Vec::new();
    if !i.snapshots.is_empty() {
        pairs.push((
            "snapshots",
            Json::Array(i.snapshots.iter().map(snapshot::to_json).collect()),
        ));
    }
    let m = i.qcow2.as_ref();
    if let Some(f) = m.and_then(|m| m.backing_fmt.clone()) {
        pairs.push(("backing-filename-format", Json::str(f)));
    }
    pairs.push(("virtual-size", Json::int(i.virtual_size)));
    pairs.push(("filename", Json::str(i.filename.clone())));
    if let Some(m) = m {
        pairs.push(("cluster-size", Json::int(m.cluster_size)));
    }
    pairs.push(("format", Json::str(i.format.clone())));
    if let Some(a) = i.actual_size {
        pairs.push(("actual-size", Json::int(a)));
    }
    if let Some(m) = m {
        let mut data = vec![
            ("compat", Json::str(compat(m))),
            ("compression-type", Json::str("zlib")),
        ];
        if m.version >= 3 {
            data.push(("lazy-refcounts", Json::Bool(m.lazy_refcounts)));
        }
        data.push(("refcount-bits", Json::int(m.refcount_bits)));
        if m.version >= 3 {
            data.push(("corrupt", Json::Bool(m.corrupt)));
            data.push(("extended-l2", Json::Bool(m.extended_l2)));
        }
        pairs.push((
            "format-specific",
            Json::object(vec![
                ("type", Json::str("qcow2")),
                ("data", Json::object(data)),
            ]),
        ));
    }
    if let Some(full) = &i.full_backing {
        pairs.push(("full-backing-filename", Json::str(full.clone())));
    }
    if let Some(b) = m.and_then(|m| m.backing_file.clone()) {
        pairs.push(("backing-filename", Json::str(b)));
    }
    pairs.push(("dirty-flag", Json::Bool(m.is_some_and(|m| m.dirty))));
    Json::object(pairs)
}
