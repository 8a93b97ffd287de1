//! Console timestamps, QEMU's Ctrl-A t: while switched on, each line the guest writes to the
//! serial console starts with the time elapsed since the first write after the switch,
//! `[HH:MM:SS.mmm] `.
//!
//! As in QEMU, the clock starts at the first output after timestamps are turned on, and the
//! line being written at that moment gets no stamp: the first one comes after its newline.
//! Hours are not wrapped at 24.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The on/off switch shared between the console (which toggles it) and the output writer.
#[derive(Debug, Clone, Default)]
pub struct TimestampSwitch(Arc<AtomicBool>);

impl TimestampSwitch {
    /// A switch that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Flips the switch; returns whether timestamps are now on.
    pub fn toggle(&self) -> bool {
        !self.0.fetch_xor(true, Ordering::Relaxed)
    }

    /// Whether timestamps are on.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A writer that stamps the start of each line while its [`TimestampSwitch`] is on.
pub struct Timestamped<W> {
    inner: W,
    switch: TimestampSwitch,
    /// When the clock started; None while the switch is off.
    start: Option<Instant>,
    /// The next byte written begins a line.
    line_start: bool,
}

impl<W: Write> Timestamped<W> {
    /// Wraps `inner`, stamping lines while `switch` is on.
    pub fn new(inner: W, switch: TimestampSwitch) -> Self {
        Self {
            inner,
            switch,
            start: None,
            line_start: false,
        }
    }

    fn write_stamped(&mut self, buf: &[u8], now: Instant) -> io::Result<()> {
        let start = *self.start.get_or_insert_with(|| {
            // A fresh switch-on: the line in progress is not stamped (QEMU does the same).
            self.line_start = false;
            now
        });
        for chunk in buf.split_inclusive(|&b| b == b'\n') {
            if self.line_start {
                self.inner
                    .write_all(stamp(now.saturating_duration_since(start)).as_bytes())?;
            }
            self.inner.write_all(chunk)?;
            self.line_start = chunk.ends_with(b"\n");
        }
        Ok(())
    }
}

/// `[HH:MM:SS.mmm] ` for an elapsed time.
fn stamp(elapsed: Duration) -> String {
    let ms = elapsed.as_millis();
    let s = ms / 1000;
    format!(
        "[{:02}:{:02}:{:02}.{:03}] ",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

impl<W: Write> Write for Timestamped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.switch.is_on() {
            self.start = None;
            return self.inner.write(buf);
        }
        self.write_stamped(buf, Instant::now())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_format_hours_minutes_seconds_and_milliseconds() {
        assert_eq!(stamp(Duration::from_millis(0)), "[00:00:00.000] ");
        assert_eq!(stamp(Duration::from_millis(3_723_045)), "[01:02:03.045] ");
        assert_eq!(stamp(Duration::from_secs(100 * 3600)), "[100:00:00.000] ");
    }

    #[test]
    fn lines_are_stamped_only_while_the_switch_is_on() {
        let switch = TimestampSwitch::new();
        let mut w = Timestamped::new(Vec::new(), switch.clone());
        w.write_all(b"boot\n").unwrap();
        assert!(switch.toggle());
        let t0 = Instant::now();
        // The line in progress when the switch came on is not stamped; the next ones are.
        w.write_stamped(b"a\nb", t0).unwrap();
        w.write_stamped(b"c\n\nd\n", t0 + Duration::from_millis(1500))
            .unwrap();
        assert!(!switch.toggle());
        w.write_all(b"plain\n").unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "boot\na\n[00:00:00.000] bc\n[00:00:01.500] \n[00:00:01.500] d\nplain\n"
        );
    }

    #[test]
    fn switching_on_again_restarts_the_clock() {
        let switch = TimestampSwitch::new();
        let mut w = Timestamped::new(Vec::new(), switch.clone());
        switch.toggle();
        let t0 = Instant::now();
        w.write_stamped(b"x\n", t0).unwrap();
        w.write_stamped(b"y\n", t0 + Duration::from_secs(5))
            .unwrap();
        switch.toggle();
        w.write_all(b"z\n").unwrap();
        switch.toggle();
        w.write_stamped(b"p\nq\n", t0 + Duration::from_secs(9))
            .unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "x\n[00:00:05.000] y\nz\np\n[00:00:00.000] q\n"
        );
    }
}
