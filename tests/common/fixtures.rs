//! The Linux guest fixtures (fixtures/fetch.sh): Debian's cloud kernel and an initramfs of
//! busybox around fixtures/init.sh, fetched once or taken from target/fixtures/.
//! Without network (or apt) the script fails; callers report themselves skipped with the
//! reason this returns, never failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The three fixture paths the script prints last.
#[derive(Clone, Debug)]
pub struct Fixtures {
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    pub system_map: PathBuf,
}

/// Runs fixtures/fetch.sh once per test process (tests of one binary run in parallel and
/// would otherwise build the same archive at once); Err with the reason when it could not
/// produce the fixtures.
pub fn fetch() -> Result<Fixtures, String> {
    static ONCE: OnceLock<Result<Fixtures, String>> = OnceLock::new();
    ONCE.get_or_init(run_fetch_script).clone()
}

fn run_fetch_script() -> Result<Fixtures, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fetch.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output").to_string();
        return Err(format!("fixtures/fetch.sh failed: {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let [.., vmlinuz, initramfs, system_map] = lines.as_slice() else {
        return Err(format!("fixtures/fetch.sh printed too little: {text:?}"));
    };
    Ok(Fixtures {
        vmlinuz: vmlinuz.into(),
        initramfs: initramfs.into(),
        system_map: system_map.into(),
    })
}

impl Fixtures {
    /// The kernel's release (what `uname -r` prints in the guest), from the bzImage's own
    /// version string: the first word of the text that the setup header's `kernel_version`
    /// field (0x20e) points to, 0x200 bytes before the offset it holds.
    pub fn kernel_release(&self) -> Result<String, String> {
        let image =
            std::fs::read(&self.vmlinuz).map_err(|e| format!("{}: {e}", self.vmlinuz.display()))?;
        let field = image
            .get(0x20e..0x210)
            .ok_or("vmlinuz is too short for a setup header")?;
        let at = usize::from(u16::from_le_bytes([field[0], field[1]]));
        if at == 0 {
            return Err("vmlinuz has no kernel_version string".into());
        }
        let text = image
            .get(0x200 + at..)
            .ok_or("kernel_version points past the end of vmlinuz")?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        String::from_utf8_lossy(&text[..end])
            .split_whitespace()
            .next()
            .map(String::from)
            .ok_or_else(|| "empty kernel_version string".into())
    }
}
