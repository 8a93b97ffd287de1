//! qemu-img's `-p` progress line, "    (12.34/100%)" redrawn with a carriage return, printed
//! when it moves by at least one percent (qemu-img prints it on stdout, and so do we).

use std::io::Write;

/// A progress display; inert when disabled.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    last: f64,
}

impl Progress {
    /// A display, shown at 0% if `enabled`.
    pub fn new(enabled: bool, out: &mut dyn Write) -> Self {
        let p = Progress { enabled, last: 0.0 };
        p.print(out, 0.0);
        p
    }

    /// Reports `done` of `total` units.
    pub fn update(&mut self, out: &mut dyn Write, done: u64, total: u64) {
        let pct = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        if self.enabled && (pct - self.last >= 1.0 || (pct >= 100.0 && self.last < 100.0)) {
            self.last = pct;
            self.print(out, pct);
        }
    }

    /// Shows 100% and ends the line.
    pub fn finish(&mut self, out: &mut dyn Write) {
        if self.enabled {
            self.print(out, 100.0);
            let _ = writeln!(out);
        }
    }

    fn print(&self, out: &mut dyn Write, pct: f64) {
        if self.enabled {
            let _ = write!(out, "    ({pct:.2}/100%)\r");
            let _ = out.flush();
        }
    }
}
