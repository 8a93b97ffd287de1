//! `tandem img check`: the block layer's metadata check, printed and exited with as
//! `qemu-img check` does (0 clean, 1 check not completed, 2 corruptions, 3 leaks only, 63 no
//! checks for this format).

use std::io::Write;
use std::path::Path;

use tandem_block::{BlockDriver, CheckReport, Repair};

use super::json::Json;
use super::{meta, open_image, ImgError, OutputFormat};

/// Exit status for a format that has no checks (qemu-img's).
pub const EXIT_NOT_SUPPORTED: u8 = 63;

/// A parsed `check` command line.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// `-r leaks|all`.
    pub repair: Repair,
    /// `--output`.
    pub output: OutputFormat,
    /// `-q`.
    pub quiet: bool,
}

/// The figures qemu-img prints, from a [`CheckReport`] and the allocation map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Figures {
    report: CheckReport,
    fragmented: u64,
    compressed: u64,
    image_end: u64,
}

/// Runs `check`; returns qemu-img's exit status.
pub fn run(r: &CheckRequest, out: &mut dyn Write) -> Result<u8, ImgError> {
    let mut img = open_image(&r.file, r.format.as_deref(), r.repair == Repair::None)?;
    if img.format_name() != "qcow2" {
        eprintln!(
            "tandem img: {}: This image format does not support checks",
            r.file
        );
        return Ok(EXIT_NOT_SUPPORTED);
    }
    let err = |e| ImgError::file(&r.file, e);
    let first = img.check(r.repair).map_err(err)?;
    let mut report = first.clone();
    let repaired = first.corruptions_fixed + first.leaks_fixed > 0;
    if repaired {
        img.flush().map_err(err)?;
        if r.output == OutputFormat::Human && !r.quiet {
            write!(
                out,
                "The following inconsistencies were found and repaired:\n\n    {} leaked \
                 clusters\n    {} corruptions\n\nDouble checking the fixed image now...\n",
                first.leaks_fixed, first.corruptions_fixed
            )?;
        }
        report = img.check(Repair::None).map_err(err)?;
        report.leaks_fixed = first.leaks_fixed;
        report.corruptions_fixed = first.corruptions_fixed;
    }
    for m in &report.messages {
        eprintln!("{m}");
    }
    let cs = meta::read_qcow2(Path::new(&r.file), &r.file)
        .map(|m| m.cluster_size)
        .unwrap_or(65536);
    let (fragmented, compressed) = fragmentation(img.as_mut(), cs);
    let image_end = std::fs::metadata(Path::new(&r.file))
        .map(|m| m.len().div_ceil(cs) * cs)
        .unwrap_or(0);
    let f = Figures {
        report,
        fragmented,
        compressed,
        image_end,
    };
    if !r.quiet {
        match r.output {
            OutputFormat::Human => write!(out, "{}", human(&f))?,
            OutputFormat::Json => writeln!(out, "{}", json(&f, &r.file).pretty())?,
        }
    }
    let rep = &f.report;
    Ok(if rep.check_errors > 0 {
        1
    } else if rep.corruptions > 0 {
        2
    } else if rep.leaks > 0 {
        3
    } else {
        0
    })
}

/// Fragmented and compressed guest clusters, counted as QEMU's check does (a cluster is
/// fragmented when its host cluster does not follow the previous one's; compressed clusters
/// always are). Best effort: an unreadable map counts nothing.
fn fragmentation(img: &mut dyn BlockDriver, cs: u64) -> (u64, u64) {
    let size = img.size();
    let Ok(map) = img.map(0, size) else {
        return (0, 0);
    };
    let (mut frag, mut comp) = (0, 0);
    let mut next: Option<u64> = None;
    for e in map.iter().filter(|e| e.depth == 0 && e.data) {
        let clusters = e.length.div_ceil(cs);
        if e.compressed {
            frag += clusters;
            comp += clusters;
            continue;
        }
        if let Some(off) = e.offset {
            if next.is_some_and(|n| n != off) {
                frag += 1;
            }
            next = Some(off + clusters * cs);
        }
    }
    (frag, comp)
}

fn human(f: &Figures) -> String {
    let r = &f.report;
    let mut s = String::new();
    if r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0 {
        s += "No errors were found on the image.\n";
    } else {
        if r.corruptions > 0 {
            s += &format!(
                "\n{} errors were found on the image.\nData may be corrupted, or further \
                 writes to the image may corrupt it.\n",
                r.corruptions
            );
        }
        if r.leaks > 0 {
            s += &format!(
                "\n{} leaked clusters were found on the image.\nThis means waste of disk \
                 space, but no harm to data.\n",
                r.leaks
            );
        }
        if r.check_errors > 0 {
            s += &format!(
                "\n{} internal errors have occurred during the check.\n",
                r.check_errors
            );
        }
    }
    if r.total_clusters != 0 && r.allocated_clusters != 0 {
        let a = r.allocated_clusters as f64;
        s += &format!(
            "{}/{} = {:.2}% allocated, {:.2}% fragmented, {:.2}% compressed clusters\n",
            r.allocated_clusters,
            r.total_clusters,
            a * 100.0 / r.total_clusters as f64,
            f.fragmented as f64 * 100.0 / a,
            f.compressed as f64 * 100.0 / a
        );
    }
    if f.image_end != 0 {
        s += &format!("Image end offset: {}\n", f.image_end);
    }
    s
}

/// qemu-img's JSON: zero counts are left out, as qemu leaves them out.
fn json(f: &Figures, file: &str) -> Json {
    let r = &f.report;
    let counts = [
        ("image-end-offset", f.image_end),
        ("total-clusters", r.total_clusters),
        ("check-errors", r.check_errors),
        ("leaks", r.leaks),
        ("corruptions", r.corruptions),
        ("leaks-fixed", r.leaks_fixed),
        ("corruptions-fixed", r.corruptions_fixed),
        ("allocated-clusters", r.allocated_clusters),
        ("fragmented-clusters", f.fragmented),
        ("compressed-clusters", f.compressed),
    ];
    let mut pairs: Vec<(&str, Json)> = counts
        .into_iter()
        .filter(|(k, v)| *v != 0 || *k == "check-errors")
        .map(|(k, v)| (k, Json::int(v)))
        .collect();
    pairs.push(("filename", Json::str(file)));
    pairs.push(("format", Json::str("qcow2")));
    Json::object(pairs)
}
