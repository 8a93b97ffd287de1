//! `tandem img convert`: copies an image into a new one of any format, reading only what is
//! allocated (the allocation map for qcow2, SEEK_DATA for raw files) in large chunks, and
//! writing nothing for zeroes, so holes stay holes (qcow2) and sparse (raw).
//!
//! With `-B BACKING` the new image gets that backing file and only the source's top image is
//! copied (QEMU's rule: the new backing file holds what the source's backing chain held);
//! zeroes stored in the top image are then written as zeroes so that they hide the backing
//! file. With `-c` clusters are written compressed ([`BlockDriver::write_compressed`]).

use std::fs::File;
use std::io::Write;
use std::sync::mpsc;

use tandem_block::{BlockDriver, CacheMode, OpenOptions};

use super::options::ImageOptions;
use super::progress::Progress;
use super::{open_image, sparse, ImgError};

/// Bytes read and written per step (qemu-img's convert uses the same 2 MiB).
const CHUNK: u64 = 2 << 20;
/// Zero detection granularity for raw output: runs of zeroes this long become holes.
const RAW_GRANULARITY: u64 = 4096;

/// A parsed `convert` command line.
#[derive(Debug, Clone, Default)]
pub struct ConvertRequest {
    /// The source image.
    pub src: String,
    /// The new image.
    pub dst: String,
    /// `-f`: the source's format (probed when absent).
    pub src_format: Option<String>,
    /// `-O`: the output format (raw when absent, as qemu-img).
    pub out_format: Option<String>,
    /// `-c`: compressed clusters.
    pub compress: bool,
    /// `-p`: progress display.
    pub progress: bool,
    /// `-o` strings.
    pub options: Vec<String>,
    /// `-B`: backing file of the new image.
    pub backing: Option<String>,
    /// `-F`: the backing file's format.
    pub backing_fmt: Option<String>,
    /// `-q`.
    pub quiet: bool,
}

/// What a range of the source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Data to read and copy.
    Data,
    /// Zeroes recorded in the source's top image (copied only over a backing file).
    Zero,
}

/// A range of the source that needs copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u64,
    end: u64,
    kind: Kind,
}

/// Runs `convert`.
pub fn run(r: &ConvertRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let mut src = open_image(&r.src, r.src_format.as_deref(), true)?;
    let size = src.size();
    let out_format = r.out_format.as_deref().unwrap_or("raw");
    let mut o = ImageOptions::parse(out_format, &r.options)?;
    if r.backing.is_some() {
        o.backing_file.clone_from(&r.backing);
        o.backing_fmt.clone_from(&r.backing_fmt);
    }
    if out_format == "raw" && r.compress {
        return Err(ImgError::file(
            &r.dst,
            "Compression not supported for this file format",
        ));
    }
    if out_format == "raw" && o.backing_file.is_some() {
        return Err(ImgError::file(
            &r.dst,
            "Backing file not supported for file format 'raw'",
        ));
    }
    let has_backing = o.backing_file.is_some();
    let segments = plan(src.as_mut(), &r.src, has_backing)?;
    let create = o.to_create(Some(size))?;
    tandem_block::create(&r.dst, &create).map_err(|e| ImgError::file(&r.dst, e))?;
    // qemu-img convert's default cache mode for the target is "unsafe": no flushes.
    let options = OpenOptions {
        format: Some(out_format.to_string()),
        read_only: false,
        cache: CacheMode::Unsafe,
    };
    let img = tandem_block::open(&r.dst, options).map_err(|e| ImgError::file(&r.dst, e))?;
    let granularity = match (out_format, img.compression_unit()) {
        ("raw", _) => RAW_GRANULARITY,
        (_, Some(unit)) if r.compress => unit,
        _ => create.cluster_size as u64,
    };
    if r.compress && img.compression_unit().is_none() {
        return Err(ImgError::file(
            &r.dst,
            "Compression not supported for this file format",
        ));
    }
    let mut sink = BlockSink {
        img,
        name: r.dst.clone(),
        granularity,
        compress: r.compress,
    };
    let mut progress = Progress::new(r.progress && !r.quiet, out);
    copy(
        src.as_mut(),
        &r.src,
        &segments,
        &mut sink,
        has_backing,
        |done| progress.update(out, done, size),
    )?;
    sink.finish()?;
    progress.finish(out);
    Ok(())
}

/// The ranges to copy: everything the chain has (or with a backing file for the output, only
/// what the source's top image has), merged and in order.
fn plan(src: &mut dyn BlockDriver, name: &str, top_only: bool) -> Result<Vec<Segment>, ImgError> {
    let size = src.size();
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |start: u64, end: u64, kind: Kind| match out.last_mut() {
        Some(l) if l.end == start && l.kind == kind => l.end = end,
        _ => out.push(Segment { start, end, kind }),
    };
    if src.format_name() == "raw" {
        // The file system knows where a raw image's holes are; the block layer does not.
        let f = File::open(name).map_err(|e| ImgError::file(name, e))?;
        for (s, e) in sparse::data_extents(&f, size) {
            push(s, e, Kind::Data);
        }
        return Ok(out);
    }
    let map = src.map(0, size).map_err(|e| ImgError::file(name, e))?;
    for e in map {
        if !e.present || (top_only && e.depth > 0) {
            continue;
        }
        let kind = if e.data {
            Kind::Data
        } else if e.zero && top_only {
            Kind::Zero
        } else {
            continue;
        };
        push(e.start, e.start + e.length, kind);
    }
    Ok(out)
}

/// Whether `b` is all zero bytes.
pub fn is_zero(b: &[u8]) -> bool {
    let (words, rest) = b.as_chunks::<16>();
    words.iter().all(|w| u128::from_ne_bytes(*w) == 0) && rest.iter().all(|x| *x == 0)
}

/// A pending output operation: a run of units to write from the window, or to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Zero,
}

/// A piece of the disk handled in one step: `[start, end)`, read from the source when a
/// data segment touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u64,
    end: u64,
    read: bool,
}

/// Windows of up to `chunk` bytes, aligned to `gran`, covering every segment and skipping
/// the gaps between them.
fn windows(segments: &[Segment], size: u64, gran: u64, chunk: u64) -> Vec<Window> {
    let mut out = Vec::new();
    let (mut pos, mut si) = (0u64, 0usize);
    while si < segments.len() {
        let start = pos.max(segments[si].start / gran * gran);
        let end = (start + chunk).min(size);
        if start >= end {
            break;
        }
        let read = segments[si..]
            .iter()
            .take_while(|s| s.start < end)
            .any(|s| s.kind == Kind::Data && s.end > start);
        out.push(Window { start, end, read });
        pos = end;
        while si < segments.len() && segments[si].end <= pos {
            si += 1;
        }
    }
    out
}

/// Buffers being read while others are written.
const IN_FLIGHT: usize = 3;

/// Copies `segments` of `src` into `sink`, a window of [`CHUNK`] bytes at a time, in units
/// of the sink's granularity: a unit no segment touches is skipped, a zero unit is skipped
/// (or zeroed over a backing file), and adjacent units go out as one write. A second thread
/// reads ahead, so reading the source and writing the target overlap (as qemu-img's
/// parallel requests do).
fn copy(
    src: &mut dyn BlockDriver,
    name: &str,
    segments: &[Segment],
    sink: &mut BlockSink,
    has_backing: bool,
    mut progress: impl FnMut(u64),
) -> Result<(), ImgError> {
    let size = src.size();
    let gran = sink.granularity.max(512);
    let chunk = CHUNK.max(gran);
    let windows = windows(segments, size, gran, chunk);
    std::thread::scope(|scope| {
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<Vec<u8>, ImgError>>(IN_FLIGHT);
        for _ in 0..=IN_FLIGHT {
            let _ = free_tx.send(vec![0u8; chunk as usize]);
        }
        let wins = &windows;
        scope.spawn(move || {
            for w in wins {
                let Ok(mut buf) = free_rx.recv() else { return };
                let part = &mut buf[..(w.end - w.start) as usize];
                let r = if w.read {
                    src.read_at(w.start, part)
                        .map_err(|e| ImgError::file(name, e))
                } else {
                    part.fill(0);
                    Ok(())
                };
                if full_tx.send(r.map(|()| buf)).is_err() {
                    return;
                }
            }
        });
        let mut j = 0;
        for w in &windows {
            let buf = full_rx
                .recv()
                .map_err(|_| ImgError::file(name, "the reading thread stopped"))??;
            let window = &buf[..(w.end - w.start) as usize];
            write_window(w, window, segments, &mut j, gran, sink, has_backing)?;
            progress(w.end);
            let _ = free_tx.send(buf);
        }
        progress(size);
        Ok(())
    })
}

/// Writes the units of window `w` (its data `window`) that segments from `*j` on touch.
fn write_window(
    w: &Window,
    window: &[u8],
    segments: &[Segment],
    j: &mut usize,
    gran: u64,
    sink: &mut BlockSink,
    has_backing: bool,
) -> Result<(), ImgError> {
    let mut run: Option<(Op, u64, u64)> = None;
    let mut u = w.start;
    while u < w.end {
        let uend = (u + gran).min(w.end);
        while *j < segments.len() && segments[*j].end <= u {
            *j += 1;
        }
        let (mut covered, mut data) = (false, false);
        for s in segments[*j..].iter().take_while(|s| s.start < uend) {
            covered = true;
            data |= s.kind == Kind::Data;
        }
        let unit = &window[(u - w.start) as usize..(uend - w.start) as usize];
        let op = if covered && data && !is_zero(unit) {
            Some(Op::Write)
        } else if covered && has_backing {
            Some(Op::Zero)
        } else {
            None
        };
        match (&mut run, op) {
            (Some((k, _, e)), Some(o)) if *k == o && *e == u => *e = uend,
            (_, o) => {
                if let Some(done) = run.take() {
                    emit(sink, window, w.start, done)?;
                }
                run = o.map(|o| (o, u, uend));
            }
        }
        u = uend;
    }
    if let Some(done) = run.take() {
        emit(sink, window, w.start, done)?;
    }
    Ok(())
}

fn emit(
    sink: &mut BlockSink,
    window: &[u8],
    wstart: u64,
    (op, start, end): (Op, u64, u64),
) -> Result<(), ImgError> {
    match op {
        Op::Write => sink.write(
            start,
            &window[(start - wstart) as usize..(end - wstart) as usize],
        ),
        Op::Zero => sink.zero(start, end - start),
    }
}

/// Where converted data goes: the new image, written through the block layer.
struct BlockSink {
    img: Box<dyn BlockDriver>,
    name: String,
    /// The unit of zero detection and of writes (a cluster, or 4 KiB for raw).
    granularity: u64,
    /// Write whole granules with [`BlockDriver::write_compressed`].
    compress: bool,
}

impl BlockSink {
    /// Writes `data` at `off` (a multiple of the granularity).
    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), ImgError> {
        let err = |e| ImgError::file(&self.name, e);
        if !self.compress {
            return self.img.write_at(off, data).map_err(err);
        }
        let unit = self.granularity as usize;
        for (k, cluster) in data.chunks(unit).enumerate() {
            let at = off + (k * unit) as u64;
            self.img.write_compressed(at, cluster).map_err(err)?;
        }
        Ok(())
    }

    /// Makes `[off, off + len)` read as zeroes.
    fn zero(&mut self, off: u64, len: u64) -> Result<(), ImgError> {
        self.img
            .write_zeroes(off, len)
            .map_err(|e| ImgError::file(&self.name, e))
    }

    /// Completes the image and makes it durable.
    fn finish(mut self) -> Result<(), ImgError> {
        self.img.flush().map_err(|e| ImgError::file(&self.name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 4099]));
        let mut b = vec![0u8; 4099];
        b[4098] = 1;
        assert!(!is_zero(&b));
        b[4098] = 0;
        b[17] = 1;
        assert!(!is_zero(&b));
    }
}
