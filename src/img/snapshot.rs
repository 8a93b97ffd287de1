//! `tandem img snapshot`: create, apply, delete and list a qcow2 image's internal snapshots,
//! and the snapshot table `info` and `snapshot -l` print (QEMU's bdrv_snapshot_dump).

use std::io::Write;

use tandem_block::SnapshotInfo;

use super::json::Json;
use super::units::size_to_str;
use super::{meta, open_image, ImgError};

/// What `snapshot` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotAction {
    /// `-l`.
    List,
    /// `-c NAME`.
    Create(String),
    /// `-a NAME`.
    Apply(String),
    /// `-d NAME`.
    Delete(String),
}

/// A parsed `snapshot` command line.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    /// The image.
    pub file: String,
    /// `-f`.
    pub format: Option<String>,
    /// What to do.
    pub action: SnapshotAction,
    /// `-q`.
    pub quiet: bool,
}

/// A snapshot with its instruction count (which [`SnapshotInfo`] does not carry).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The block layer's view.
    pub info: SnapshotInfo,
    /// The instruction count, when recorded.
    pub icount: Option<u64>,
}

/// Runs `snapshot`.
pub fn run(r: &SnapshotRequest, out: &mut dyn Write) -> Result<(), ImgError> {
    let read_only = r.action == SnapshotAction::List;
    let mut img = open_image(&r.file, r.format.as_deref(), read_only)?;
    let err = |e| ImgError::file(&r.file, e);
    match &r.action {
        SnapshotAction::List => {
            let list = list(img.as_mut(), &r.file)?;
            if !list.is_empty() {
                write!(out, "Snapshot list:\n{}", table(&list))?;
            }
        }
        SnapshotAction::Create(name) => {
            img.snapshot_create(name).map_err(err)?;
        }
        SnapshotAction::Apply(name) => img.snapshot_apply(name).map_err(err)?,
        SnapshotAction::Delete(name) => img.snapshot_delete(name).map_err(err)?,
    }
    img.flush().map_err(err)
}

/// The image's snapshots, with instruction counts read from the file; none for formats
/// without snapshots.
pub fn list(
    img: &mut dyn tandem_block::BlockDriver,
    file: &str,
) -> Result<Vec<Snapshot>, ImgError> {
    if img.format_name() != "qcow2" {
        return Ok(Vec::new());
    }
    let infos = img.snapshot_list().map_err(|e| ImgError::file(file, e))?;
    let icounts = meta::read_qcow2(std::path::Path::new(file), file)
        .map(|m| m.icounts)
        .unwrap_or_default();
    Ok(infos
        .into_iter()
        .map(|info| {
            let icount = icounts
                .iter()
                .find(|(id, _)| *id == info.id)
                .and_then(|(_, c)| *c);
            Snapshot { info, icount }
        })
        .collect())
}

/// The table's heading and one line per snapshot, as qemu-img prints them.
pub fn table(list: &[Snapshot]) -> String {
    let mut s = format!(
        "{:<10}{:<17}{:>8}{:>20}{:>13}{:>11}\n",
        "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"
    );
    for sn in list {
        let i = &sn.info;
        let secs = i.vm_clock_nsec / 1_000_000_000;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            (i.vm_clock_nsec / 1_000_000) % 1000
        );
        let icount = sn.icount.map(|c| c.to_string()).unwrap_or_default();
        s += &format!(
            "{:<9} {:<16} {:>8}{:>20}{:>13}{:>11}\n",
            i.id,
            i.name,
            size_to_str(i.vm_state_size),
            local_date(i.date_sec),
            clock,
            icount
        );
    }
    s
}

/// One snapshot in `info --output json`'s spelling.
pub fn to_json(sn: &Snapshot) -> Json {
    let i = &sn.info;
    let mut pairs = Vec::new();
    if let Some(c) = sn.icount {
        pairs.push(("icount", Json::int(c)));
    }
    pairs.extend([
        ("vm-clock-nsec", Json::int(i.vm_clock_nsec % 1_000_000_000)),
        ("name", Json::str(i.name.clone())),
        ("date-sec", Json::int(i.date_sec)),
        ("date-nsec", Json::int(i.date_nsec)),
        ("vm-clock-sec", Json::int(i.vm_clock_nsec / 1_000_000_000)),
        ("id", Json::str(i.id.clone())),
        ("vm-state-size", Json::int(i.vm_state_size)),
    ]);
    Json::object(pairs)
}

/// `sec` since the epoch as local "YYYY-MM-DD HH:MM:SS", as QEMU prints snapshot dates.
pub fn local_date(sec: u32) -> String {
    let t = sec as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types; localtime_r is the
    // re-entrant form and keeps no pointer to them.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return sec.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
