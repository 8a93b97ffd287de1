//! `-drive`, `-device` and `-snapshot`: disks and the devices that carry them, with QEMU's
//! option names and rules.

use super::qemu_opts::{parse_bool, QemuOpts};
use super::CliError;
use crate::config::{CacheMode, DeviceConfig, DriveConfig, DriveInterface};
use crate::device_types::{self, PropKind};

/// What a `-device` argument asks for.
pub enum DeviceArg {
    /// A device to make.
    Device(DeviceConfig),
    /// Help text to print (`-device help`, `-device NAME,help`).
    Help(String),
}

/// Parses one `-drive`; `index` numbers drives without an `id=`.
pub fn parse_drive(spec: &str, index: usize) -> Result<DriveConfig, CliError> {
    let o = QemuOpts::parse("-drive", spec)?;
    if let Some(v) = &o.implied {
        return Err(CliError(format!(
            "-drive: '{v}' is not KEY=VALUE (did you mean file={v}?)"
        )));
    }
    let mut file = None;
    let mut drive = DriveConfig {
        id: String::new(),
        file: Default::default(),
        format: None,
        interface: DriveInterface::Virtio,
        cache: CacheMode::default(),
        read_only: false,
        snapshot: false,
    };
    for (k, v) in &o.pairs {
        match k.as_str() {
            "file" if v.is_empty() => return Err(CliError("-drive: file= is empty".into())),
            "file" => file = Some(v.clone()),
            "format" => match v.as_str() {
                "raw" | "qcow2" | "qed" => drive.format = Some(v.clone()),
                _ => {
                    return Err(CliError(format!(
                        "-drive: unknown format '{v}' (raw, qcow2 or qed)"
                    )))
                }
            },
            "if" => {
                drive.interface = match v.as_str() {
                    "virtio" => DriveInterface::Virtio,
                    "none" => DriveInterface::None,
                    _ => {
                        return Err(CliError(format!(
                            "-drive: unsupported interface if={v} (virtio or none)"
                        )))
                    }
                }
            }
            "id" if valid_id(v) => drive.id = v.clone(),
            "id" => return Err(CliError(format!("-drive: invalid id '{v}'"))),
            "cache" => {
                drive.cache = v.parse::<CacheMode>().map_err(|_| {
                    CliError(format!(
                        "-drive: invalid cache mode '{v}' (writeback, none, writethrough, \
                         directsync or unsafe)"
                    ))
                })?
            }
            "readonly" | "read-only" => drive.read_only = parse_bool("-drive", k, v)?,
            "snapshot" => drive.snapshot = parse_bool("-drive", k, v)?,
            // Accepted for compatibility: the only media kind and the only AIO engine.
            "media" if v == "disk" => {}
            "aio" if v == "threads" => {}
            _ => return Err(CliError(format!("-drive: unsupported option '{k}'"))),
        }
    }
    let Some(file) = file else {
        return Err(CliError("-drive: file= is required".into()));
    };
    drive.file = file.into();
    if drive.id.is_empty() {
        drive.id = format!("virtio{index}");
    }
    Ok(drive)
}

/// Parses one `-device`.
pub fn parse_device(spec: &str) -> Result<DeviceArg, CliError> {
    if spec == "help" || spec == "?" {
        return Ok(DeviceArg::Help(device_types::help()));
    }
    let o = QemuOpts::parse("-device", spec)?;
    let Some(name) = o
        .implied
        .clone()
        .or_else(|| o.get("driver").map(String::from))
    else {
        return Err(CliError(format!("-device: no device type in '{spec}'")));
    };
    let Some(t) = device_types::find(&name) else {
        return Err(CliError(format!(
            "-device: '{name}' is not a valid device model name (try -device help)"
        )));
    };
    if o.get("help").is_some() || o.get("?").is_some() {
        return Ok(DeviceArg::Help(device_types::props_help(t)));
    }
    let mut props = Vec::new();
    for (k, v) in o.pairs.iter().filter(|(k, _)| k != "driver") {
        let Some(p) = t.props.iter().find(|p| p.name == k) else {
            return Err(CliError(format!(
                "-device {}: unknown property '{k}' (try -device {},help)",
                t.name, t.name
            )));
        };
        let ok = match p.kind {
            PropKind::Str => true,
            PropKind::Bool => parse_bool("-device", k, v).is_ok(),
            PropKind::Uint32 => super::parse_u64(v).is_some_and(|n| n <= u64::from(u32::MAX)),
            PropKind::PciAddr => parse_pci_addr(v).is_some(),
        };
        if !ok {
            return Err(CliError(format!(
                "-device {}: invalid value '{v}' for property '{k}'",
                t.name
            )));
        }
        props.push((k.clone(), v.clone()));
    }
    Ok(DeviceArg::Device(DeviceConfig {
        driver: t.name.to_string(),
        props,
    }))
}

/// A PCI `addr=` value: slot (0-31) and function (0-7), `06`, `06.0`, `0x6`.
pub fn parse_pci_addr(v: &str) -> Option<(u8, u8)> {
    let (slot, func) = match v.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (v, None),
    };
    let slot = u8::from_str_radix(slot.trim_start_matches("0x"), 16).ok()?;
    let func = match func {
        Some(f) => f.parse::<u8>().ok()?,
        None => 0,
    };
    (slot < 32 && func < 8).then_some((slot, func))
}

fn valid_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Checks the drives and devices together, as QEMU does when it creates them: every
/// `drive=` names an `if=none` drive used once, every `if=none` drive is used (QEMU only warns;
/// an unused disk is almost always a mistake), IDs are unique, and `-drive if=virtio` gets its
/// device. `snapshot_all` is `-snapshot`.
pub fn resolve(
    drives: &mut [DriveConfig],
    devices: &mut Vec<DeviceConfig>,
    snapshot_all: bool,
) -> Result<(), CliError> {
    for (i, d) in drives.iter().enumerate() {
        if drives[..i].iter().any(|e| e.id == d.id) {
            return Err(CliError(format!("-drive: duplicate id '{}'", d.id)));
        }
    }
    for d in drives.iter_mut() {
        d.snapshot |= snapshot_all;
    }
    let mut used = vec![false; drives.len()];
    for dev in devices.iter() {
        if dev.driver != "virtio-blk-pci" {
            continue;
        }
        let Some(id) = dev.prop("drive") else {
            return Err(CliError(
                "-device virtio-blk-pci: drive property not set".into(),
            ));
        };
        let Some(i) = drives.iter().position(|d| d.id == id) else {
            return Err(CliError(format!(
                "-device virtio-blk-pci: no -drive with id '{id}'"
            )));
        };
        if drives[i].interface != DriveInterface::None {
            return Err(CliError(format!(
                "-device virtio-blk-pci: drive '{id}' already has a device (give it if=none)"
            )));
        }
        if std::mem::replace(&mut used[i], true) {
            return Err(CliError(format!(
                "-device virtio-blk-pci: drive '{id}' is already in use"
            )));
        }
    }
    for (i, d) in drives.iter().enumerate() {
        match d.interface {
            DriveInterface::Virtio => devices.push(DeviceConfig {
                driver: "virtio-blk-pci".into(),
                props: vec![("drive".into(), d.id.clone())],
            }),
            DriveInterface::None if !used[i] => {
                return Err(CliError(format!(
                    "-drive {}: if=none but no -device uses it",
                    d.id
                )))
            }
            DriveInterface::None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives() {
        let d = parse_drive(
            "file=a,,b.qcow2,format=qcow2,if=none,id=d0,cache=unsafe,readonly=on",
            0,
        )
        .unwrap();
        assert_eq!(d.file.to_str(), Some("a,b.qcow2"));
        assert_eq!(d.format.as_deref(), Some("qcow2"));
        assert_eq!(
            (d.interface, d.cache, d.read_only),
            (DriveInterface::None, CacheMode::Unsafe, true)
        );
        let d = parse_drive("file=x.img", 2).unwrap();
        assert_eq!(
            (d.id.as_str(), d.interface),
            ("virtio2", DriveInterface::Virtio)
        );
        for bad in [
            "x.img",
            "format=vmdk,file=x",
            "file=x,if=ide",
            "file=x,cache=fast",
            "id=d",
            "file=x,bogus=1",
            "file=x,id=9a",
        ] {
            assert!(parse_drive(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn devices_and_their_drives() {
        let DeviceArg::Device(dev) =
            parse_device("virtio-blk-pci,drive=d0,serial=abc,addr=05").unwrap()
        else {
            panic!("help")
        };
        assert_eq!(dev.prop("serial"), Some("abc"));
        assert!(matches!(parse_device("help"), Ok(DeviceArg::Help(_))));
        assert!(matches!(
            parse_device("virtio-blk,help"),
            Ok(DeviceArg::Help(_))
        ));
        assert!(parse_device("virtio-blk-pci,colour=red").is_err());
        assert!(parse_device("virtio-blk-pci,addr=40").is_err());
        assert!(parse_device("sb16").is_err());
        let mut drives = vec![
            parse_drive("file=a,if=none,id=d0", 0).unwrap(),
            parse_drive("file=b", 1).unwrap(),
        ];
        let mut devices = vec![dev];
        resolve(&mut drives, &mut devices, true).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].prop("drive"), Some("virtio1"));
        assert!(drives.iter().all(|d| d.snapshot));
        let mut unused = vec![parse_drive("file=a,if=none,id=d0", 0).unwrap()];
        assert!(resolve(&mut unused, &mut Vec::new(), false).is_err());
        let mut dup = vec![
            parse_drive("file=a,id=x", 0).unwrap(),
            parse_drive("file=b,id=x", 1).unwrap(),
        ];
        assert!(resolve(&mut dup, &mut Vec::new(), false).is_err());
        assert_eq!(parse_pci_addr("1f.7"), Some((31, 7)));
        assert_eq!(parse_pci_addr("20"), None);
    }
}
