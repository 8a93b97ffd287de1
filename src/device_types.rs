//! The device types `-device NAME,prop=value,...` can make, with their typed properties, as
//! QEMU's qdev lists them (`-device help`, `-device NAME,help`).

/// A property's type, as `-device NAME,help` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropKind {
    /// A string.
    Str,
    /// A boolean (on/off).
    Bool,
    /// An unsigned integer (decimal or 0x hex).
    Uint32,
    /// A PCI slot and optional function, `06` or `06.0`.
    PciAddr,
}

impl PropKind {
    fn name(self) -> &'static str {
        match self {
            PropKind::Str => "str",
            PropKind::Bool => "bool",
            PropKind::Uint32 => "uint32",
            PropKind::PciAddr => "int32",
        }
    }
}

/// One property of a device type.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: PropKind,
    /// What it does, and its default.
    pub doc: &'static str,
}

/// A device type.
#[derive(Debug, Clone, Copy)]
pub struct DeviceType {
    /// Its `-device` name.
    pub name: &'static str,
    /// Another name it answers to.
    pub alias: Option<&'static str>,
    /// The bus it plugs into (`PCI`, `ISA`).
    pub bus: &'static str,
    /// The `-device help` category.
    pub category: &'static str,
    /// One line of description.
    pub desc: &'static str,
    /// Its properties.
    pub props: &'static [Prop],
}

const PCI_ADDR: Prop = Prop {
    name: "addr",
    kind: PropKind::PciAddr,
    doc: "Slot and optional function number, example: 06.0 or 06 (default: -1)",
};

/// Every device type this build can make.
pub const DEVICE_TYPES: &[DeviceType] = &[
    DeviceType {
        name: "virtio-blk-pci",
        alias: Some("virtio-blk"),
        bus: "PCI",
        category: "Storage devices",
        desc: "virtio block device over the modern virtio-pci transport",
        props: &[
            PCI_ADDR,
            Prop {
                name: "drive",
                kind: PropKind::Str,
                doc: "ID of the -drive to use as a backend",
            },
            Prop {
                name: "serial",
                kind: PropKind::Str,
                doc: "disk serial number, up to 20 bytes, returned by GET_ID",
            },
        ],
    },
    DeviceType {
        name: "isa-debug-exit",
        alias: None,
        bus: "ISA",
        category: "Misc devices",
        desc: "exits the emulator with status (value << 1) | 1",
        props: &[
            Prop {
                name: "iobase",
                kind: PropKind::Uint32,
                doc: "(default: 0xf4; the board has one, at 0xf4)",
            },
            Prop {
                name: "iosize",
                kind: PropKind::Uint32,
                doc: "(default: 4)",
            },
        ],
    },
];

/// The type called `name` (or by its alias).
pub fn find(name: &str) -> Option<&'static DeviceType> {
    DEVICE_TYPES
        .iter()
        .find(|t| t.name == name || t.alias == Some(name))
}

/// `-device help`: the types by category, in QEMU's format.
pub fn help() -> String {
    let mut categories: Vec<&str> = DEVICE_TYPES.iter().map(|t| t.category).collect();
    categories.sort_unstable();
    categories.dedup();
    let mut out = String::new();
    for c in categories {
        out.push_str(&format!("{c}:\n"));
        for t in DEVICE_TYPES.iter().filter(|t| t.category == c) {
            out.push_str(&format!("name \"{}\", bus {}", t.name, t.bus));
            if let Some(a) = t.alias {
                out.push_str(&format!(", alias \"{a}\""));
            }
            out.push_str(&format!(", desc \"{}\"\n", t.desc));
        }
        out.push('\n');
    }
    out
}

/// `-device NAME,help`: the type's properties, in QEMU's format.
pub fn props_help(t: &DeviceType) -> String {
    let mut out = format!("{} options:\n", t.name);
    for p in t.props {
        let left = format!("{}=<{}>", p.name, p.kind.name());
        out.push_str(&format!("  {left:<22} - {}\n", p.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_qemus_shape() {
        let h = help();
        assert!(h.contains(
            "Storage devices:\nname \"virtio-blk-pci\", bus PCI, alias \"virtio-blk\", desc \""
        ));
        let p = props_help(find("virtio-blk").unwrap());
        assert!(p.starts_with("virtio-blk-pci options:\n  addr=<int32>"));
        assert!(p.contains("  drive=<str>"));
        assert!(find("virtio-gpu").is_none());
    }
}
