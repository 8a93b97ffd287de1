//! Recorded expectations: for each (seed, class) of a seed set, the hash of the masked final
//! state, end and memory as computed on KVM (the host CPU), so that hosts without /dev/kvm
//! still check the JIT against real hardware. One line per sequence: `SEED CLASS HASH`
//! (hash as 16 hex digits); `#` starts a comment, and the comment `# recorded on: HOST` names
//! the CPU the recording was made on.

use std::collections::HashMap;
use std::path::Path;

use super::classes::Class;
use super::error::DiffError;

/// The committed expectations for the CI seed set.
pub const DEFAULT_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/difftest-expectations.txt"
);

/// Recorded hashes by (class, seed).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    map: HashMap<(Class, u64), u64>,
    /// The host CPU the file says it was recorded on.
    pub recorded_on: Option<String>,
}

/// The header comment naming the recording host.
const RECORDED_ON: &str = "# recorded on: ";

/// The header line naming `host` as the recording host.
pub fn recorded_on_line(host: &str) -> String {
    format!("{RECORDED_ON}{host}")
}

/// One line of the file.
pub fn line(class: Class, seed: u64, hash: u64) -> String {
    format!("{seed} {class} {hash:016x}")
}

impl Expectations {
    /// Parses the text of an expectations file (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Self, DiffError> {
        let mut map = HashMap::new();
        let mut recorded_on = None;
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if let Some(host) = l.strip_prefix(RECORDED_ON) {
                recorded_on = Some(host.trim().to_string());
                continue;
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let bad = |reason: String| DiffError::BadExpectation {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let mut w = l.split_whitespace();
            let (Some(seed), Some(class), Some(hash), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                return Err(bad(format!("'{l}': expected SEED CLASS HASH")));
            };
            let seed = seed
                .parse::<u64>()
                .map_err(|_| bad(format!("bad seed '{seed}'")))?;
            let class =
                Class::from_name(class).ok_or_else(|| bad(format!("unknown class '{class}'")))?;
            let hash =
                u64::from_str_radix(hash, 16).map_err(|_| bad(format!("bad hash '{hash}'")))?;
            map.insert((class, seed), hash);
        }
        Ok(Self { map, recorded_on })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, DiffError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DiffError::Io {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text, &name)
    }

    /// The recorded hash of (class, seed).
    pub fn get(&self, class: Class, seed: u64) -> Option<u64> {
        self.map.get(&(class, seed)).copied()
    }

    /// How many sequences are recorded.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lines() {
        let e = Expectations::parse("# c\n3 arith 00000000000000ff\n\n", "x").unwrap();
        assert_eq!(e.get(Class::Arith, 3), Some(0xff));
        assert_eq!(e.recorded_on, None);
        let text = format!("{}\n1 x87 01\n", recorded_on_line("AuthenticAMD, EPYC"));
        let e = Expectations::parse(&text, "x").unwrap();
        assert_eq!(e.recorded_on.as_deref(), Some("AuthenticAMD, EPYC"));
        assert_eq!(e.len(), 1);
        assert_eq!(line(Class::Arith, 3, 0xff), "3 arith 00000000000000ff");
        assert!(Expectations::parse("3 nope 00", "x").is_err());
        assert!(Expectations::parse("x arith 00", "x").is_err());
        assert!(Expectations::parse("3 arith", "x").is_err());
        assert!(Expectations::parse("3 arith zz", "x").is_err());
    }
}
