//! The 8254 programmable interval timer (ports 0x40-0x43) and the PC's port 0x61.
//!
//! [`Pit8254`] is a pure state machine: every call is given the time in nanoseconds, from which
//! it derives ticks of the 1.193182 MHz input clock. Nothing runs between calls; counter values
//! and OUT levels are computed from the tick at which counting started. [`PitDevice`] puts it on
//! the port bus with a [`Clock`] and raises IRQ0 from [`PitDevice::tick`], which the board calls
//! when the deadline it returned has passed.
//!
//! Modelled: the three counters with control words, counter latch and read-back commands,
//! LSB / MSB / LSB-then-MSB access, binary and BCD counting, modes 0-5, the gate of counter 2
//! (port 0x61 bit 0; the gates of counters 0 and 1 are tied high as on a PC), OUT2 in port 0x61
//! bit 5 and the refresh-request toggle in bit 4 (every 15.085 µs, derived from time).
//!
//! Warts: the one-clock delay between writing a count and the counter loading it is ignored
//! (counting starts at the write); in modes 2 and 3 a new count written while counting takes
//! effect at the end of the current period (the datasheet says end of half-period for mode 3);
//! counter values in mode 3 with odd counts are approximate; counter 1 (DRAM refresh) counts but
//! drives nothing; the counters power up unprogrammed (no IRQ0 until the guest programs counter
//! 0, unlike QEMU's mode-3 default). Port 0x61 bits 2-3 are stored, bits 6-7 (NMI status) read 0.
//! Accesses wider than a byte are split into byte accesses at consecutive offsets; offsets the
//! device does not decode read 0xff.

use std::sync::Arc;

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::{IrqLine, PortDevice};

use crate::timer::clock::Clock;

/// Input clock of the counters, in Hz.
pub const PIT_HZ: u64 = 1_193_182;

const NS_PER_SEC: u128 = 1_000_000_000;

/// Period of the refresh-request toggle in port 0x61 bit 4.
const REFRESH_HALF_PERIOD_NS: u64 = 15_085;

/// Offset at which [`PitDevice`] decodes port 0x61.
pub const PORT61_OFFSET: u16 = 0x21;

/// The input-clock tick in progress at `ns`.
fn ns_to_tick(ns: u64) -> u64 {
    u64::try_from(u128::from(ns) * u128::from(PIT_HZ) / NS_PER_SEC).unwrap_or(u64::MAX)
}

/// The first nanosecond at which tick `t` has begun.
fn tick_to_ns(t: u64) -> u64 {
    let hz = u128::from(PIT_HZ);
    u64::try_from((u128::from(t) * NS_PER_SEC).div_ceil(hz)).unwrap_or(u64::MAX)
}

fn bcd_to_bin(raw: u16) -> u32 {
    (0..4)
        .rev()
        .fold(0, |acc, i| acc * 10 + u32::from((raw >> (4 * i)) & 0xf))
}

fn bin_to_bcd(v: u32) -> u16 {
    let v = v % 10_000;
    let mut out = 0u16;
    for (i, div) in [1000u32, 100, 10, 1].into_iter().enumerate() {
        // Each digit is below 10, so the cast is exact.
        out |= (((v / div) % 10) as u16) << (12 - 4 * i);
    }
    out
}

/// Edges at `s + k*n`, k >= 1, inside `(a, b]`.
fn periodic_edges(s: u64, n: u32, a: u64, b: u64) -> u64 {
    if b <= a {
        return 0;
    }
    let n = u64::from(n.max(1));
    let f = |x: u64| x.checked_sub(s).map_or(0, |d| d / n);
    f(b) - f(a)
}

fn one_shot_edge(e: u64, a: u64, b: u64) -> u64 {
    u64::from(a < e && e <= b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Lsb,
    Msb,
    Word,
}

impl Access {
    fn bits(self) -> u8 {
        match self {
            Access::Lsb => 1,
            Access::Msb => 2,
            Access::Word => 3,
        }
    }
}

/// One counter of the 8254, in ticks.
#[derive(Debug, Clone)]
struct Counter {
    /// Mode bits as programmed (6 and 7 alias 2 and 3).
    mode_bits: u8,
    access: Access,
    bcd: bool,
    gate: bool,
    /// The count register, decoded: 1..=0x10000 (1..=10000 in BCD).
    cr: u32,
    /// A count was written since the control word.
    loaded: bool,
    /// The count the counting element runs with in the current segment.
    n: u32,
    /// Tick at which the counting element held `n` and began counting; None while stopped.
    start: Option<u64>,
    /// Modes 0 and 4: ticks counted before the gate stopped counting.
    paused: u64,
    /// Modes 1 and 5: a gate trigger has started counting.
    triggered: bool,
    /// Modes 2 and 3: tick at which the counting element reloads from `cr`.
    reload: Option<u64>,
    /// Value reported while the counting element is not counting.
    hold: u32,
    null_count: bool,
    write_msb_next: bool,
    write_lsb: u8,
    read_msb_next: bool,
    latch: Option<u16>,
    status: Option<u8>,
}

impl Counter {
    fn new(gate: bool) -> Self {
        Self {
            mode_bits: 3,
            access: Access::Word,
            bcd: false,
            gate,
            cr: 0x1_0000,
            loaded: false,
            n: 0x1_0000,
            start: None,
            paused: 0,
            triggered: false,
            reload: None,
            hold: 0,
            null_count: true,
            write_msb_next: false,
            write_lsb: 0,
            read_msb_next: false,
            latch: None,
            status: None,
        }
    }

    fn mode(&self) -> u8 {
        if self.mode_bits >= 6 {
            self.mode_bits - 4
        } else {
            self.mode_bits
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// Start and count of the segment in force at tick `t`, applying a due reload.
    fn segment(&self, t: u64) -> Option<(u64, u32)> {
        match self.reload {
            Some(r) if t >= r => Some((r, self.cr)),
            _ => self.start.map(|s| (s, self.n)),
        }
    }

    fn apply_reload(&mut self, t: u64) {
        if let Some(r) = self.reload.filter(|&r| t >= r) {
            self.start = Some(r);
            self.n = self.cr;
            self.reload = None;
            self.null_count = false;
        }
    }

    /// Modes 0 and 4: ticks counted so far.
    fn counted(&self, t: u64) -> u64 {
        self.start.map_or(self.paused, |s| t.saturating_sub(s))
    }

    /// Ticks since a mode 1 or 5 trigger, if triggered.
    fn since_trigger(&self, t: u64) -> Option<u64> {
        self.start
            .filter(|_| self.triggered)
            .map(|s| t.saturating_sub(s))
    }

    fn out(&self, t: u64) -> bool {
        let n = u64::from(self.n);
        match self.mode() {
            0 => self.loaded && self.counted(t) >= n,
            1 => self.since_trigger(t).is_none_or(|d| d >= n),
            2 => self.segment(t).is_none_or(|(s, n)| {
                let n = u64::from(n);
                n <= 1 || t.saturating_sub(s) % n != n - 1
            }),
            3 => self.segment(t).is_none_or(|(s, n)| {
                let n = u64::from(n);
                t.saturating_sub(s) % n < n.div_ceil(2)
            }),
            4 => !self.loaded || self.counted(t) != n,
            _ => self.since_trigger(t).is_none_or(|d| d != n),
        }
    }

    /// The counting element's value at tick `t`, as the guest reads it (BCD if programmed).
    fn value(&self, t: u64) -> u16 {
        let m = u64::from(self.modulus());
        let down = |n: u32, d: u64| (u64::from(n) + m - d % m) % m;
        let v = match self.mode() {
            0 | 4 if self.loaded => down(self.n, self.counted(t)),
            1 | 5 => self
                .since_trigger(t)
                .map_or(u64::from(self.hold), |d| down(self.n, d)),
            2 => self.segment(t).map_or(u64::from(self.hold), |(s, n)| {
                let n = u64::from(n);
                (n - t.saturating_sub(s) % n) % m
            }),
            3 => self.segment(t).map_or(u64::from(self.hold), |(s, n)| {
                let n = u64::from(n);
                let half = n.div_ceil(2);
                let p = t.saturating_sub(s) % n;
                let into_half = if p < half { p } else { p - half };
                n.saturating_sub(2 * into_half) % m
            }),
            _ => u64::from(self.hold),
        };
        // v < modulus <= 0x10000 and 0x10000 never survives the `% m`, so it fits.
        let v = u32::try_from(v).unwrap_or(0);
        if self.bcd {
            bin_to_bcd(v)
        } else {
            u16::try_from(v).unwrap_or(0)
        }
    }

    fn status_byte(&self, t: u64) -> u8 {
        (u8::from(self.out(t)) << 7)
            | (u8::from(self.null_count || self.reload.is_some()) << 6)
            | (self.access.bits() << 4)
            | (self.mode_bits << 1)
            | u8::from(self.bcd)
    }

    /// Rising edges of OUT inside ticks `(a, b]`.
    fn rising_edges(&self, a: u64, b: u64) -> u64 {
        if b <= a {
            return 0;
        }
        let n = u64::from(self.n);
        match self.mode() {
            0 => self.start.map_or(0, |s| one_shot_edge(s + n, a, b)),
            1 => self
                .start
                .filter(|_| self.triggered)
                .map_or(0, |s| one_shot_edge(s + n, a, b)),
            4 => self.start.map_or(0, |s| one_shot_edge(s + n + 1, a, b)),
            5 => self
                .start
                .filter(|_| self.triggered)
                .map_or(0, |s| one_shot_edge(s + n + 1, a, b)),
            _ => match (self.start, self.reload) {
                (Some(s), Some(r)) if r < b => {
                    periodic_edges(s, self.n, a, r.max(a)) + periodic_edges(r, self.cr, r.max(a), b)
                }
                (Some(s), _) => periodic_edges(s, self.n, a, b),
                (None, _) => 0,
            },
        }
    }

    /// The first tick after `t` at which OUT rises, if any is scheduled.
    fn next_edge(&self, t: u64) -> Option<u64> {
        let n = u64::from(self.n);
        let edge = match self.mode() {
            0 => self.start.map(|s| s + n),
            1 => self.start.filter(|_| self.triggered).map(|s| s + n),
            4 => self.start.map(|s| s + n + 1),
            5 => self.start.filter(|_| self.triggered).map(|s| s + n + 1),
            _ => self.segment(t).map(|(s, n)| {
                let n = u64::from(n.max(1));
                let k = t.checked_sub(s).map_or(0, |d| d / n);
                s.saturating_add((k + 1).saturating_mul(n))
            }),
        };
        edge.filter(|&e| e > t)
    }

    fn control(&mut self, v: u8, t: u64) {
        self.hold = u32::from(self.value(t));
        self.mode_bits = (v >> 1) & 7;
        self.bcd = v & 1 != 0;
        self.access = match (v >> 4) & 3 {
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        };
        self.loaded = false;
        self.start = None;
        self.paused = 0;
        self.triggered = false;
        self.reload = None;
        self.null_count = true;
        self.write_msb_next = false;
        self.read_msb_next = false;
        self.latch = None;
        self.status = None;
    }

    fn latch_count(&mut self, t: u64) {
        if self.latch.is_none() {
            self.latch = Some(self.value(t));
        }
    }

    fn latch_status(&mut self, t: u64) {
        if self.status.is_none() {
            self.status = Some(self.status_byte(t));
        }
    }

    fn read(&mut self, t: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        let v = self.latch.unwrap_or_else(|| self.value(t));
        let [lsb, msb] = v.to_le_bytes();
        match self.access {
            Access::Lsb => {
                self.latch = None;
                lsb
            }
            Access::Msb => {
                self.latch = None;
                msb
            }
            Access::Word if !self.read_msb_next => {
                self.read_msb_next = true;
                lsb
            }
            Access::Word => {
                self.read_msb_next = false;
                self.latch = None;
                msb
            }
        }
    }

    fn write(&mut self, v: u8, t: u64) {
        match self.access {
            Access::Lsb => self.load(u16::from(v), t),
            Access::Msb => self.load(u16::from(v) << 8, t),
            Access::Word if !self.write_msb_next => {
                self.write_lsb = v;
                self.write_msb_next = true;
                if self.mode() == 0 {
                    // Writing the first byte stops counting and drives OUT low at once.
                    self.hold = u32::from(self.value(t));
                    self.loaded = false;
                    self.start = None;
                }
            }
            Access::Word => {
                self.write_msb_next = false;
                self.load(u16::from_le_bytes([self.write_lsb, v]), t);
            }
        }
    }

    fn load(&mut self, raw: u16, t: u64) {
        let cr = if self.bcd {
            bcd_to_bin(raw).min(10_000)
        } else {
            u32::from(raw)
        };
        self.cr = if cr == 0 { self.modulus() } else { cr };
        self.null_count = true;
        match self.mode() {
            0 | 4 => {
                self.n = self.cr;
                self.loaded = true;
                self.paused = 0;
                self.start = self.gate.then_some(t);
                self.null_count = false;
            }
            1 | 5 => self.loaded = true,
            _ => match (self.loaded, self.start) {
                (true, Some(s)) => {
                    if self.reload.is_none() {
                        let n = u64::from(self.n.max(1));
                        let k = t.saturating_sub(s) / n;
                        self.reload = Some(s.saturating_add((k + 1).saturating_mul(n)));
                    }
                }
                _ => {
                    self.loaded = true;
                    self.n = self.cr;
                    self.start = self.gate.then_some(t);
                    self.null_count = false;
                }
            },
        }
    }

    fn set_gate(&mut self, level: bool, t: u64) {
        if level == self.gate {
            return;
        }
        self.gate = level;
        match (self.mode(), level) {
            (0 | 4, true) if self.loaded => self.start = Some(t.saturating_sub(self.paused)),
            (0 | 4, false) if self.start.is_some() => {
                self.paused = self.counted(t);
                self.start = None;
            }
            (1 | 5, true) if self.loaded => {
                self.n = self.cr;
                self.start = Some(t);
                self.triggered = true;
                self.null_count = false;
            }
            (2 | 3, true) if self.loaded => {
                self.n = self.cr;
                self.start = Some(t);
                self.reload = None;
                self.null_count = false;
            }
            (2 | 3, false) => {
                self.hold = u32::from(self.value(t));
                self.start = None;
                self.reload = None;
            }
            _ => {}
        }
    }
}

/// The 8254 and port 0x61, driven by explicit time in nanoseconds.
#[derive(Debug, Clone)]
pub struct Pit8254 {
    counters: [Counter; 3],
    /// Port 0x61 bits 0-3 as written.
    port61: u8,
    /// Counter 0's rising edges are counted up to this tick.
    edges_upto: u64,
    pending_edges: u64,
}

impl Default for Pit8254 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit8254 {
    /// An unprogrammed timer: nothing counts until the guest writes a mode and a count.
    pub fn new() -> Self {
        Self {
            counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
            port61: 0,
            edges_upto: 0,
            pending_edges: 0,
        }
    }

    /// Counts counter 0's edges up to `t`, then applies due reloads.
    fn sync(&mut self, t: u64) {
        if t > self.edges_upto {
            self.pending_edges += self.counters[0].rising_edges(self.edges_upto, t);
            self.edges_upto = t;
        }
        for c in &mut self.counters {
            c.apply_reload(t);
        }
    }

    /// Runs a state change at tick `t`, counting an OUT0 rise it causes (a new mode drives
    /// OUT high at once, which the 8259 sees as an edge).
    fn change(&mut self, t: u64, f: impl FnOnce(&mut Self)) {
        self.sync(t);
        let before = self.counters[0].out(t);
        f(self);
        if !before && self.counters[0].out(t) {
            self.pending_edges += 1;
        }
    }

    /// Guest read of port 0x40 + `offset`; the control port reads 0, other offsets 0xff.
    pub fn read(&mut self, offset: u16, now_ns: u64) -> u8 {
        let t = ns_to_tick(now_ns);
        self.sync(t);
        match offset {
            0..=2 => self.counters[usize::from(offset)].read(t),
            3 => 0,
            _ => 0xff,
        }
    }

    /// Guest write of `v` to port 0x40 + `offset`.
    pub fn write(&mut self, offset: u16, v: u8, now_ns: u64) {
        let t = ns_to_tick(now_ns);
        match offset {
            0..=2 => self.change(t, |p| p.counters[usize::from(offset)].write(v, t)),
            3 => self.change(t, |p| p.control(v, t)),
            _ => {}
        }
    }

    fn control(&mut self, v: u8, t: u64) {
        let sel = v >> 6;
        if sel == 3 {
            // Read-back: COUNT and STATUS are active low; bits 1-3 select counters 0-2.
            for (i, c) in self.counters.iter_mut().enumerate() {
                if v & (2 << i) == 0 {
                    continue;
                }
                if v & 0x20 == 0 {
                    c.latch_count(t);
                }
                if v & 0x10 == 0 {
                    c.latch_status(t);
                }
            }
            return;
        }
        let c = &mut self.counters[usize::from(sel)];
        if v & 0x30 == 0 {
            c.latch_count(t);
        } else {
            c.control(v, t);
        }
    }

    /// Sets the gate input of counter `counter` (0..=2; others ignored). On a PC only counter
    /// 2's gate moves, through port 0x61.
    pub fn set_gate(&mut self, counter: usize, level: bool, now_ns: u64) {
        let t = ns_to_tick(now_ns);
        if counter < 3 {
            self.change(t, |p| p.counters[counter].set_gate(level, t));
        }
    }

    /// The level of counter `counter`'s OUT pin (false for counters past 2).
    pub fn out(&self, counter: usize, now_ns: u64) -> bool {
        self.counters
            .get(counter)
            .is_some_and(|c| c.out(ns_to_tick(now_ns)))
    }

    /// Guest read of port 0x61: gate 2, speaker data, bits 2-3, refresh toggle, OUT2.
    pub fn read_port61(&mut self, now_ns: u64) -> u8 {
        let t = ns_to_tick(now_ns);
        self.sync(t);
        let refresh = (now_ns / REFRESH_HALF_PERIOD_NS) & 1 == 1;
        (self.port61 & 0x0f) | (u8::from(refresh) << 4) | (u8::from(self.counters[2].out(t)) << 5)
    }

    /// Guest write of port 0x61: bit 0 gates counter 2, bit 1 is the speaker data.
    pub fn write_port61(&mut self, v: u8, now_ns: u64) {
        self.port61 = v & 0x0f;
        self.set_gate(2, v & 1 != 0, now_ns);
    }

    /// Rising edges of OUT0 (IRQ0) since the previous call.
    pub fn irq0_edges(&mut self, now_ns: u64) -> u64 {
        self.sync(ns_to_tick(now_ns));
        std::mem::take(&mut self.pending_edges)
    }

    /// Absolute time of OUT0's next rising edge; `now_ns` itself if edges are waiting to be
    /// collected by [`Pit8254::irq0_edges`]; None if counter 0 will not fire again.
    pub fn next_irq0_ns(&self, now_ns: u64) -> Option<u64> {
        let t = ns_to_tick(now_ns);
        let c0 = &self.counters[0];
        if self.pending_edges > 0 || c0.rising_edges(self.edges_upto, t) > 0 {
            return Some(now_ns);
        }
        c0.next_edge(t).map(tick_to_ns)
    }
}

/// The PIT on the port bus (offsets 0..=3 for 0x40-0x43, 0x21 for 0x61), raising IRQ0.
pub struct PitDevice {
    pit: Pit8254,
    irq: IrqLine,
    clock: Arc<dyn Clock>,
}

impl PitDevice {
    /// An unprogrammed PIT reading time from `clock` and pulsing `irq` for OUT0.
    pub fn new(irq: IrqLine, clock: Arc<dyn Clock>) -> Self {
        Self {
            pit: Pit8254::new(),
            irq,
            clock,
        }
    }

    /// Pulses IRQ0 once if OUT0 rose since the last call (late edges coalesce, as a late timer
    /// interrupt does); returns the clock time of the next edge.
    pub fn tick(&mut self) -> Option<u64> {
        let now = self.clock.now_ns();
        if self.pit.irq0_edges(now) > 0 {
            self.irq.pulse();
        }
        self.pit.next_irq0_ns(now)
    }

    /// The current time of the device's clock, in ns (the time base of [`PitDevice::tick`]).
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// The timer state machine.
    pub fn pit(&self) -> &Pit8254 {
        &self.pit
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        let now = self.clock.now_ns();
        match offset {
            0..=3 => self.pit.read(offset, now),
            PORT61_OFFSET => self.pit.read_port61(now),
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        let now = self.clock.now_ns();
        match offset {
            0..=3 => self.pit.write(offset, v, now),
            PORT61_OFFSET => self.pit.write_port61(v, now),
            _ => {}
        }
    }
}

impl PortDevice for PitDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        read_bytewise(offset, data, |off| self.read_byte(off));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |off, v| self.write_byte(off, v));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use tandem_softmmu::IrqSink;

    use super::*;
    use crate::timer::clock::ManualClock;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    /// Programs counter `c` with `mode`, LSB-then-MSB binary, and `count`, at `now`.
    fn program(p: &mut Pit8254, c: u16, mode: u8, count: u16, now: u64) {
        p.write(3, ((c as u8) << 6) | 0x30 | (mode << 1), now);
        let [l, m] = count.to_le_bytes();
        p.write(c, l, now);
        p.write(c, m, now);
    }

    fn read16(p: &mut Pit8254, c: u16, now: u64) -> u16 {
        let l = p.read(c, now);
        let m = p.read(c, now);
        u16::from_le_bytes([l, m])
    }

    #[test]
    fn tick_conversions_round_trip() {
        assert_eq!(ns_to_tick(1_000_000_000), PIT_HZ);
        assert_eq!(ns_to_tick(tick_to_ns(1193)), 1193);
        assert_eq!(ns_to_tick(tick_to_ns(1193) - 1), 1192);
        assert_eq!(bin_to_bcd(1234), 0x1234);
        assert_eq!(bcd_to_bin(0x9999), 9999);
    }

    #[test]
    fn mode2_rate_generator_fires_every_period() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 2, 1193, 0);
        assert_eq!(p.irq0_edges(0), 0);
        // 1193 ticks = 999.85 us.
        assert_eq!(p.next_irq0_ns(0), Some(999_848));
        assert_eq!(p.irq0_edges(999_847), 0);
        assert_eq!(p.irq0_edges(999_848), 1);
        assert_eq!(p.irq0_edges(10 * MS), 9);
        assert_eq!(p.next_irq0_ns(10 * MS), Some(tick_to_ns(11 * 1193)));
    }

    #[test]
    fn mode2_counts_down_and_reloads() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 2, 1000, 0);
        assert_eq!(read16(&mut p, 0, 0), 1000);
        // 100 ticks in.
        assert_eq!(read16(&mut p, 0, tick_to_ns(100)), 900);
        assert_eq!(read16(&mut p, 0, tick_to_ns(1999)), 1);
        assert_eq!(read16(&mut p, 0, tick_to_ns(2000)), 1000);
        assert!(
            !p.out(0, tick_to_ns(1999)),
            "OUT low for the tick at count 1"
        );
        assert!(p.out(0, tick_to_ns(2000)));
    }

    #[test]
    fn mode0_fires_once_and_wraps() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 0, 100, 0);
        assert!(!p.out(0, 0));
        assert_eq!(p.next_irq0_ns(0), Some(tick_to_ns(100)));
        assert_eq!(p.irq0_edges(tick_to_ns(99)), 0);
        assert_eq!(p.irq0_edges(tick_to_ns(100)), 1);
        assert!(p.out(0, tick_to_ns(100)));
        assert_eq!(p.irq0_edges(10 * MS), 0);
        assert_eq!(p.next_irq0_ns(10 * MS), None);
        // The counter keeps going past zero: 0xffff one tick after.
        assert_eq!(read16(&mut p, 0, tick_to_ns(101)), 0xffff);
    }

    #[test]
    fn mode0_first_byte_stops_counting_and_drives_out_low() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 0, 10, 0);
        assert!(p.out(0, tick_to_ns(20)));
        p.write(0, 50, tick_to_ns(20));
        assert!(!p.out(0, tick_to_ns(20)));
        assert_eq!(
            p.irq0_edges(tick_to_ns(500)),
            1,
            "only the first terminal count"
        );
        p.write(0, 0, tick_to_ns(500));
        assert_eq!(p.irq0_edges(tick_to_ns(549)), 0);
        assert_eq!(p.irq0_edges(tick_to_ns(550)), 1);
    }

    #[test]
    fn latch_freezes_value_until_read() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 2, 0, 0); // 0 = 65536
        assert_eq!(read16(&mut p, 0, 0), 0);
        p.write(3, 0x00, tick_to_ns(1000));
        assert_eq!(
            read16(&mut p, 0, tick_to_ns(5000)),
            0x1_0000u32.wrapping_sub(1000) as u16
        );
        assert_eq!(
            read16(&mut p, 0, tick_to_ns(5000)),
            (0x1_0000 - 5000) as u16
        );
    }

    #[test]
    fn lsb_only_msb_only_and_bcd() {
        let mut p = Pit8254::new();
        p.write(3, 0x54, 0); // counter 1, LSB only, mode 2
        p.write(1, 200, 0);
        assert_eq!(p.read(1, tick_to_ns(50)), 150);
        p.write(3, 0x64, 0); // counter 1, MSB only, mode 2
        p.write(1, 0x02, 0); // 0x200
        assert_eq!(p.read(1, tick_to_ns(0x100)), 0x01);
        p.write(3, 0x75, 0); // counter 1, word, mode 2, BCD
        p.write(1, 0x00, 0);
        p.write(1, 0x10, 0); // 1000 decimal
        assert_eq!(read16(&mut p, 1, tick_to_ns(1)), 0x0999);
        p.write(3, 0x71, 0); // mode 0, BCD, count 0 = 10000
        p.write(1, 0, 0);
        p.write(1, 0, 0);
        assert_eq!(read16(&mut p, 1, tick_to_ns(1)), 0x9999);
    }

    #[test]
    fn read_back_status_and_count() {
        let mut p = Pit8254::new();
        program(&mut p, 2, 0, 100, 0); // gate 2 low: loaded but not counting
                                       // Status then count of counter 2 (bits 5,4 clear, bit 3 selects counter 2).
        p.write(3, 0xc8, tick_to_ns(10));
        assert_eq!(
            p.read(2, tick_to_ns(10)),
            0x30,
            "OUT low, count loaded, word, mode 0"
        );
        assert_eq!(read16(&mut p, 2, tick_to_ns(10)), 100);
        p.write(3, 0xb0, 0);
        p.write(3, 0xe8, 0); // status only
        assert_eq!(p.read(2, 0) & 0x40, 0x40, "null count after a control word");
    }

    #[test]
    fn port61_gates_counter2_and_shows_out2() {
        let mut p = Pit8254::new();
        p.write(3, 0xb0, 0); // counter 2, word, mode 0
        p.write(2, 0xe8, 0);
        p.write(2, 0x03, 0); // 1000
        assert_eq!(p.read_port61(0) & 0x20, 0);
        p.write_port61(0x01, tick_to_ns(10));
        assert_eq!(p.read_port61(tick_to_ns(1009)) & 0x21, 0x01);
        assert_eq!(p.read_port61(tick_to_ns(1010)) & 0x21, 0x21);
        // Gate low pauses mode 0 mid-count.
        p.write(2, 0x64, tick_to_ns(2000));
        p.write(2, 0x00, tick_to_ns(2000));
        p.write_port61(0x00, tick_to_ns(2050));
        assert_eq!(read16(&mut p, 2, tick_to_ns(9000)), 50);
        p.write_port61(0x03, tick_to_ns(9000));
        assert_eq!(read16(&mut p, 2, tick_to_ns(9010)), 40);
        assert_eq!(p.read_port61(tick_to_ns(9010)) & 0x0f, 0x03);
    }

    #[test]
    fn refresh_bit_toggles_with_time() {
        let mut p = Pit8254::new();
        let a = p.read_port61(0) & 0x10;
        let b = p.read_port61(16 * US) & 0x10;
        assert_ne!(a, b);
    }

    #[test]
    fn mode3_square_wave() {
        let mut p = Pit8254::new();
        program(&mut p, 2, 3, 10, 0);
        p.write_port61(1, 0);
        assert!(p.out(2, tick_to_ns(4)));
        assert!(!p.out(2, tick_to_ns(5)));
        assert!(p.out(2, tick_to_ns(10)));
        assert_eq!(read16(&mut p, 2, tick_to_ns(2)), 6);
        assert_eq!(read16(&mut p, 2, tick_to_ns(7)), 6);
        program(&mut p, 0, 3, 10, 0);
        assert_eq!(p.irq0_edges(tick_to_ns(100)), 10);
    }

    #[test]
    fn mode1_one_shot_on_gate_trigger() {
        let mut p = Pit8254::new();
        program(&mut p, 2, 1, 10, 0);
        assert!(p.out(2, tick_to_ns(3)), "high until triggered");
        p.write_port61(1, tick_to_ns(5));
        assert!(!p.out(2, tick_to_ns(5)));
        assert_eq!(read16(&mut p, 2, tick_to_ns(8)), 7);
        assert!(!p.out(2, tick_to_ns(14)));
        assert!(p.out(2, tick_to_ns(15)));
        // Retriggering restarts the one-shot.
        p.write_port61(0, tick_to_ns(20));
        p.write_port61(1, tick_to_ns(30));
        assert!(!p.out(2, tick_to_ns(39)));
        assert!(p.out(2, tick_to_ns(40)));
    }

    #[test]
    fn mode4_and_mode5_strobes() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 4, 10, 0);
        assert!(p.out(0, tick_to_ns(9)));
        assert!(!p.out(0, tick_to_ns(10)), "one-tick strobe at count 0");
        assert_eq!(p.irq0_edges(tick_to_ns(10)), 0);
        assert_eq!(p.irq0_edges(tick_to_ns(11)), 1);
        assert_eq!(p.irq0_edges(tick_to_ns(1000)), 0);
        program(&mut p, 2, 5, 10, tick_to_ns(1000));
        assert!(p.out(2, tick_to_ns(1050)), "waits for the gate");
        p.write_port61(1, tick_to_ns(1100));
        assert!(p.out(2, tick_to_ns(1109)));
        assert!(!p.out(2, tick_to_ns(1110)));
        assert!(p.out(2, tick_to_ns(1111)));
    }

    #[test]
    fn mode2_new_count_takes_effect_at_period_end() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 2, 100, 0);
        p.write(0, 50, tick_to_ns(30));
        p.write(0, 0, tick_to_ns(30));
        assert_eq!(p.next_irq0_ns(tick_to_ns(30)), Some(tick_to_ns(100)));
        assert_eq!(
            p.irq0_edges(tick_to_ns(200)),
            3,
            "edges at 100, 150 and 200"
        );
        assert_eq!(p.next_irq0_ns(tick_to_ns(200)), Some(tick_to_ns(250)));
    }

    #[test]
    fn control_word_to_mode2_raises_out0() {
        let mut p = Pit8254::new();
        program(&mut p, 0, 0, 1000, 0);
        p.write(3, 0x34, tick_to_ns(10));
        assert_eq!(p.irq0_edges(tick_to_ns(10)), 1);
    }

    #[test]
    fn odd_offsets_and_times_do_not_panic() {
        let mut p = Pit8254::new();
        for off in 0..8 {
            p.read(off, u64::MAX);
            p.write(off, 0xff, u64::MAX);
        }
        p.write(3, 0x34, u64::MAX);
        p.write(0, 1, 5);
        p.write(0, 0, 0);
        p.irq0_edges(0);
        p.next_irq0_ns(u64::MAX);
        p.set_gate(7, true, 0);
        assert!(!p.out(9, 0));
    }

    struct Count(AtomicU32, Mutex<bool>);
    impl IrqSink for Count {
        fn set_irq(&self, _gsi: u32, level: bool) {
            if level {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            *self.1.lock().unwrap() = level;
        }
    }

    #[test]
    fn device_ticks_with_manual_clock_and_coalesces() {
        let clock = Arc::new(ManualClock::new());
        let irqs = Arc::new(Count(AtomicU32::new(0), Mutex::new(false)));
        let mut dev = PitDevice::new(IrqLine::new(irqs.clone(), 0), clock.clone());
        assert_eq!(dev.tick(), None, "unprogrammed");
        dev.write(3, &[0x34]);
        // 1193: ~1 ms. A word write would split into ports 0x40 and 0x41, so byte by byte.
        dev.write(0, &[0xa9]);
        dev.write(0, &[0x04]);
        let first = dev.tick().unwrap();
        assert_eq!(first, 999_848);
        assert_eq!(dev.now_ns(), 0);
        clock.set(first);
        assert_eq!(dev.tick(), Some(tick_to_ns(2 * 1193)));
        assert_eq!(irqs.0.load(Ordering::SeqCst), 1);
        assert!(!*irqs.1.lock().unwrap(), "pulsed, left low");
        clock.advance(5 * MS);
        dev.tick();
        assert_eq!(
            irqs.0.load(Ordering::SeqCst),
            2,
            "five late edges, one interrupt"
        );
        let mut b = [0u8; 1];
        dev.write(PORT61_OFFSET, &[0x03]);
        dev.read(PORT61_OFFSET, &mut b);
        assert_eq!(b[0] & 0x03, 0x03);
        dev.read(0x30, &mut b);
        assert_eq!(b[0], 0xff);
    }
}
