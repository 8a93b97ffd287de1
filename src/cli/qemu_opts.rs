//! QEMU's option strings: `[VALUE,]KEY=VALUE,KEY=VALUE,...`, where `,,` stands for a literal
//! comma inside a value (so `file=a,,b.img` names the file `a,b.img`).

use super::CliError;

/// One parsed option string: an optional leading implied value, then key=value pairs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuOpts {
    /// The first item when it has no `=` (`-device virtio-blk-pci,...`'s driver name).
    pub implied: Option<String>,
    /// The key=value pairs (a bare `key` later in the list reads as `key=on`).
    pub pairs: Vec<(String, String)>,
}

impl QemuOpts {
    /// Parses `s`; `option` names the command-line option in errors.
    pub fn parse(option: &str, s: &str) -> Result<Self, CliError> {
        let mut items = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ',' {
                if chars.peek() == Some(&',') {
                    chars.next();
                    cur.push(',');
                } else {
                    items.push(std::mem::take(&mut cur));
                }
            } else {
                cur.push(c);
            }
        }
        items.push(cur);
        let mut opts = QemuOpts::default();
        for (i, item) in items.into_iter().enumerate() {
            if item.is_empty() {
                if i == 0 {
                    continue;
                }
                return Err(CliError(format!("{option}: empty item in '{s}'")));
            }
            match item.split_once('=') {
                Some(("", _)) => {
                    return Err(CliError(format!(
                        "{option}: missing key before '=' in '{s}'"
                    )))
                }
                Some((k, v)) => opts.pairs.push((k.to_string(), v.to_string())),
                None if i == 0 => opts.implied = Some(item),
                None => opts.pairs.push((item, "on".to_string())),
            }
        }
        Ok(opts)
    }

    /// The value of `key` (the last one given wins, as in QEMU).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// QEMU's booleans: on/off, yes/no, true/false.
pub fn parse_bool(option: &str, key: &str, v: &str) -> Result<bool, CliError> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(CliError(format!(
            "{option}: invalid value '{v}' for '{key}' (on or off)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_escapes() {
        let o = QemuOpts::parse("-device", "virtio-blk-pci,drive=d0,serial=a,,b").unwrap();
        assert_eq!(o.implied.as_deref(), Some("virtio-blk-pci"));
        assert_eq!(o.get("drive"), Some("d0"));
        assert_eq!(o.get("serial"), Some("a,b"));
        let o = QemuOpts::parse("-drive", "file=x.img,readonly,if=none").unwrap();
        assert_eq!(o.implied, None);
        assert_eq!(o.get("readonly"), Some("on"));
        assert_eq!(o.get("if"), Some("none"));
        assert!(QemuOpts::parse("-drive", "file=x,,,").is_err());
        assert!(QemuOpts::parse("-drive", "=x").is_err());
        assert!(parse_bool("-drive", "readonly", "maybe").is_err());
    }
}
