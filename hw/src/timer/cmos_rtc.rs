//! The MC146818 real-time clock and its CMOS RAM (ports 0x70/0x71), after the Motorola
//! MC146818A datasheet, with the memory-size bytes QEMU writes for SeaBIOS.
//!
//! Offset 0 is the index port (bit 7 disables NMI; reads 0xff, as it is write-only), offset 1
//! the data port, over 128 bytes. The time registers are computed on read from the host's UTC
//! wall clock plus an offset: a guest that sets the time (SET in register B, write, clear SET;
//! or a write with SET clear) moves the offset, and its time then advances with the host's.
//! Register B's 24/12-hour and binary/BCD (DM) bits are honoured on every read, so changing
//! them re-renders the current time rather than leaving stale bytes as a real chip would.
//! Register A: UIP reads set only in the last 244 µs before a second boundary (when the divider
//! runs, DV = 010); the divider and rate bits are stored. Register C reports the update-ended
//! and periodic flags that would have been set since it was last read (read clears); register D
//! reads 0x80 (valid RAM and time).
//!
//! Warts: no interrupts at all (periodic, alarm and update-ended interrupts on IRQ 8 are not
//! generated, and register C never shows the alarm flag); the divider bits do not stop or reset
//! the clock; daylight-saving (DSE) is ignored; the day of week is always derived from the date
//! (a guest's own weekday is not kept); time registers cannot be corrupted by out-of-range
//! writes, which are folded into a valid date. 0x0e-0x7f outside the time and memory-size bytes
//! are plain storage; the memory bytes are writable storage too. Accesses wider than a byte are
//! split into byte accesses at consecutive offsets; offsets other than 0 and 1 read 0xff.

use std::time::{SystemTime, UNIX_EPOCH};

use tandem_softmmu::device::{read_bytewise, write_bytewise};
use tandem_softmmu::PortDevice;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY_OF_WEEK: u8 = 0x06;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const CENTURY: u8 = 0x32;

const A_UIP: u8 = 0x80;
const A_DV_MASK: u8 = 0x70;
const A_DV_RUNNING: u8 = 0x20;
const A_RS_MASK: u8 = 0x0f;

const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_UIE: u8 = 0x10;
const B_DM_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;

const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_UF: u8 = 0x10;

const D_VRT: u8 = 0x80;

const NS_PER_SEC: i128 = 1_000_000_000;
/// UIP rises this long before each update (t_BUC in the datasheet).
const UIP_LEAD_NS: i128 = 244_000;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The host's wall clock: nanoseconds since the Unix epoch, UTC.
pub type WallClock = Box<dyn Fn() -> i128 + Send>;

fn host_wall_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Civil date (year, month 1-12, day 1-31) of `days` since 1970-01-01, proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // Howard Hinnant's algorithm: count in 400-year eras starting on March 1st, so the leap
    // day is the last day of the shifted year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u8, day as u8)
}

/// Days since 1970-01-01 of a civil date (month 1-12, day 1-31; later days roll over).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let month = i64::from(month.clamp(1, 12));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn bin_to_bcd(v: u8) -> u8 {
    ((v / 10 % 10) << 4) | (v % 10)
}

fn bcd_to_bin(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// A broken-down time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// 1 = Sunday .. 7 = Saturday, as the RTC counts.
    weekday: u8,
}

impl Tm {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (weekday 5).
        let weekday = (days + 4).rem_euclid(7) as u8 + 1;
        Self {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
            weekday,
        }
    }

    fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// The MC146818 RTC with 128 bytes of CMOS RAM.
pub struct CmosRtc {
    index: u8,
    nmi_disabled: bool,
    ram: [u8; 128],
    /// Guest time minus host time, in ns.
    offset_ns: i128,
    /// Guest time when register C was last read.
    c_read_ns: i128,
    wall: WallClock,
}

impl CmosRtc {
    /// An RTC on the host's UTC clock, with memory-size bytes for `ram_below_4g` and
    /// `ram_above_4g` bytes of RAM.
    pub fn new(ram_below_4g: u64, ram_above_4g: u64) -> Self {
        Self::with_wall_clock(ram_below_4g, ram_above_4g, host_wall_ns)
    }

    /// As [`CmosRtc::new`], reading the time from `wall` (ns since the Unix epoch, UTC).
    pub fn with_wall_clock(
        ram_below_4g: u64,
        ram_above_4g: u64,
        wall: impl Fn() -> i128 + Send + 'static,
    ) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_A)] = A_DV_RUNNING | 0x06;
        ram[usize::from(REG_B)] = B_24H;
        ram[usize::from(REG_D)] = D_VRT;
        let mut put16 = |at: usize, v: u64| {
            ram[at] = v as u8;
            ram[at + 1] = (v >> 8) as u8;
        };
        put16(0x15, 640);
        let ext = (ram_below_4g.saturating_sub(MIB) / KIB).min(0xffff);
        put16(0x17, ext);
        put16(0x30, ext);
        put16(
            0x34,
            (ram_below_4g.saturating_sub(16 * MIB) / (64 * KIB)).min(0xffff),
        );
        let high = (ram_above_4g / (64 * KIB)).min(0xff_ffff);
        ram[0x5b] = high as u8;
        ram[0x5c] = (high >> 8) as u8;
        ram[0x5d] = (high >> 16) as u8;
        let mut rtc = Self {
            index: 0,
            nmi_disabled: false,
            ram,
            offset_ns: 0,
            c_read_ns: 0,
            wall: Box::new(wall),
        };
        rtc.c_read_ns = rtc.guest_ns();
        rtc
    }

    /// True if the guest set bit 7 of the index port (NMI disabled).
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// The 128 bytes as the guest would read them now (time rendered, register C not cleared).
    pub fn nvram(&self) -> [u8; 128] {
        let mut out = self.ram;
        if !self.set_mode() {
            self.render(&mut out, self.guest_ns());
        }
        out[usize::from(REG_A)] = self.reg_a();
        out[usize::from(REG_C)] = self.reg_c();
        out
    }

    /// Guest read of CMOS byte `index` (0..=0x7f; higher bits ignored).
    pub fn read_reg(&mut self, index: u8) -> u8 {
        let index = index & 0x7f;
        match index {
            REG_A => self.reg_a(),
            REG_C => {
                let v = self.reg_c();
                self.c_read_ns = self.guest_ns();
                v
            }
            REG_D => D_VRT,
            _ if is_time_reg(index) && !self.set_mode() => {
                let mut buf = self.ram;
                self.render(&mut buf, self.guest_ns());
                buf[usize::from(index)]
            }
            _ => self.ram[usize::from(index)],
        }
    }

    /// Guest write of `v` to CMOS byte `index` (0..=0x7f; higher bits ignored).
    pub fn write_reg(&mut self, index: u8, v: u8) {
        let index = index & 0x7f;
        match index {
            REG_A => self.ram[usize::from(REG_A)] = v & !A_UIP,
            REG_B => self.write_b(v),
            REG_C | REG_D => {}
            _ if is_time_reg(index) => {
                if self.set_mode() {
                    self.ram[usize::from(index)] = v;
                } else {
                    // Change one field of the running time: freeze, edit, restart from there.
                    let mut ram = self.ram;
                    self.render(&mut ram, self.guest_ns());
                    self.ram = ram;
                    self.ram[usize::from(index)] = v;
                    self.restart_from_ram();
                }
            }
            _ => self.ram[usize::from(index)] = v,
        }
    }

    fn set_mode(&self) -> bool {
        self.ram[usize::from(REG_B)] & B_SET != 0
    }

    fn guest_ns(&self) -> i128 {
        (self.wall)().saturating_add(self.offset_ns)
    }

    fn reg_a(&self) -> u8 {
        let a = self.ram[usize::from(REG_A)] & !A_UIP;
        let running = a & A_DV_MASK == A_DV_RUNNING && !self.set_mode();
        let frac = self.guest_ns().rem_euclid(NS_PER_SEC);
        if running && frac >= NS_PER_SEC - UIP_LEAD_NS {
            a | A_UIP
        } else {
            a
        }
    }

    /// Periodic interrupt period for rate-select bits `rs`, in ns (None when off).
    fn periodic_ns(rs: u8) -> Option<i128> {
        // RS 1 and 2 repeat the 256 Hz and 128 Hz taps; RS 3..15 are 8192 Hz down to 2 Hz.
        let shift = match rs {
            0 => return None,
            1 | 2 => rs + 6,
            _ => rs - 1,
        };
        Some(NS_PER_SEC * (1i128 << shift) / 32_768)
    }

    fn reg_c(&self) -> u8 {
        let now = self.guest_ns();
        let b = self.ram[usize::from(REG_B)];
        let mut c = 0;
        let updated = now.div_euclid(NS_PER_SEC) != self.c_read_ns.div_euclid(NS_PER_SEC);
        if updated && b & B_SET == 0 {
            c |= C_UF;
        }
        if let Some(p) = Self::periodic_ns(self.ram[usize::from(REG_A)] & A_RS_MASK) {
            if now.div_euclid(p) != self.c_read_ns.div_euclid(p) {
                c |= C_PF;
            }
        }
        if (c & C_UF != 0 && b & B_UIE != 0) || (c & C_PF != 0 && b & B_PIE != 0) {
            c |= C_IRQF;
        }
        c
    }

    fn write_b(&mut self, v: u8) {
        let old = self.ram[usize::from(REG_B)];
        if v & B_SET != 0 {
            if old & B_SET == 0 {
                // Freeze the time in the format the guest is switching to, to edit it.
                let mut ram = self.ram;
                ram[usize::from(REG_B)] = v;
                self.render(&mut ram, self.guest_ns());
                self.ram = ram;
            }
            // Setting SET clears UIE.
            self.ram[usize::from(REG_B)] = v & !B_UIE;
            return;
        }
        if old & B_SET != 0 {
            // The registers were written in the format in force while SET was on.
            self.restart_from_ram();
        }
        self.ram[usize::from(REG_B)] = v;
    }

    fn decode(&self, v: u8) -> u8 {
        if self.ram[usize::from(REG_B)] & B_DM_BINARY != 0 {
            v
        } else {
            bcd_to_bin(v)
        }
    }

    fn encode(b: u8, v: u8) -> u8 {
        if b & B_DM_BINARY != 0 {
            v
        } else {
            bin_to_bcd(v)
        }
    }

    /// Makes the time in the RAM's time registers the current guest time.
    fn restart_from_ram(&mut self) {
        let r = |i: u8| self.ram[usize::from(i)];
        let raw_hour = r(HOURS);
        let hour = if r(REG_B) & B_24H != 0 {
            self.decode(raw_hour)
        } else {
            self.decode(raw_hour & 0x7f) % 12 + if raw_hour & 0x80 != 0 { 12 } else { 0 }
        };
        let tm = Tm {
            year: i64::from(self.decode(r(CENTURY))) * 100 + i64::from(self.decode(r(YEAR))),
            month: self.decode(r(MONTH)).clamp(1, 12),
            day: self.decode(r(DAY_OF_MONTH)).clamp(1, 31),
            hour,
            minute: self.decode(r(MINUTES)),
            second: self.decode(r(SECONDS)),
            weekday: 1,
        };
        let guest = i128::from(tm.to_unix()) * NS_PER_SEC;
        self.offset_ns = guest.saturating_sub((self.wall)());
    }

    /// Writes the time at guest time `ns` into `buf`'s time registers in `buf`'s register B
    /// format.
    fn render(&self, buf: &mut [u8; 128], ns: i128) {
        let secs = i64::try_from(ns.div_euclid(NS_PER_SEC)).unwrap_or(0);
        let tm = Tm::from_unix(secs);
        let b = buf[usize::from(REG_B)];
        let enc = |v: u8| Self::encode(b, v);
        let hour = if b & B_24H != 0 {
            enc(tm.hour)
        } else {
            let h12 = match tm.hour % 12 {
                0 => 12,
                h => h,
            };
            enc(h12) | if tm.hour >= 12 { 0x80 } else { 0 }
        };
        // Both fit a byte after rem_euclid(100).
        let year = tm.year.rem_euclid(100) as u8;
        let century = tm.year.div_euclid(100).rem_euclid(100) as u8;
        buf[usize::from(SECONDS)] = enc(tm.second);
        buf[usize::from(MINUTES)] = enc(tm.minute);
        buf[usize::from(HOURS)] = hour;
        buf[usize::from(DAY_OF_WEEK)] = enc(tm.weekday);
        buf[usize::from(DAY_OF_MONTH)] = enc(tm.day);
        buf[usize::from(MONTH)] = enc(tm.month);
        buf[usize::from(YEAR)] = enc(year);
        buf[usize::from(CENTURY)] = enc(century);
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        match offset {
            1 => self.read_reg(self.index),
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        match offset {
            0 => {
                self.index = v & 0x7f;
                self.nmi_disabled = v & 0x80 != 0;
            }
            1 => self.write_reg(self.index, v),
            _ => {}
        }
    }
}

fn is_time_reg(index: u8) -> bool {
    matches!(
        index,
        SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY
    )
}

impl PortDevice for CmosRtc {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        read_bytewise(offset, data, |off| self.read_byte(off));
    }

    fn write(&mut self, offset: u16, data: &[u8]) {
        write_bytewise(offset, data, |off, v| self.write_byte(off, v));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// 2024-02-29 13:45:30 UTC, a Thursday.
    const LEAP_DAY: i64 = 1_709_214_330;

    fn rtc_at(secs: i64) -> (CmosRtc, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(secs * 1_000_000_000));
        let n = now.clone();
        let rtc = CmosRtc::with_wall_clock(512 * MIB, 1024 * MIB, move || {
            i128::from(n.load(Ordering::SeqCst))
        });
        (rtc, now)
    }

    fn rd(rtc: &mut CmosRtc, index: u8) -> u8 {
        rtc.write(0, &[index]);
        let mut b = [0u8];
        rtc.read(1, &mut b);
        b[0]
    }

    fn wr(rtc: &mut CmosRtc, index: u8, v: u8) {
        rtc.write(0, &[index]);
        rtc.write(1, &[v]);
    }

    fn time_regs(rtc: &mut CmosRtc) -> [u8; 8] {
        [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map(|i| rd(rtc, i))
    }

    #[test]
    fn calendar_algorithms() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(
            civil_from_days(days_from_civil(2000, 3, 1) - 1),
            (2000, 2, 29)
        );
        assert_eq!(
            civil_from_days(days_from_civil(1900, 3, 1) - 1),
            (1900, 2, 28)
        );
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn reads_host_time_in_bcd_24h_by_default() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        assert_eq!(rd(&mut rtc, REG_B), 0x02);
        assert_eq!(
            time_regs(&mut rtc),
            [0x30, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]
        );
    }

    #[test]
    fn binary_and_12_hour_formats() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, B_DM_BINARY | B_24H);
        assert_eq!(time_regs(&mut rtc), [30, 45, 13, 5, 29, 2, 24, 20]);
        wr(&mut rtc, REG_B, 0);
        assert_eq!(rd(&mut rtc, HOURS), 0x81, "1 PM, BCD");
        let (mut midnight, _) = rtc_at(LEAP_DAY - 13 * 3600 - 45 * 60 - 30);
        wr(&mut midnight, REG_B, B_DM_BINARY);
        assert_eq!(rd(&mut midnight, HOURS), 12, "12 AM");
    }

    #[test]
    fn guest_set_time_then_advances() {
        let (mut rtc, now) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, B_SET | B_24H | B_UIE);
        assert_eq!(rd(&mut rtc, REG_B), B_SET | B_24H, "SET clears UIE");
        for (i, v) in [(0x32, 0x19), (0x09, 0x99), (0x08, 0x12), (0x07, 0x31)] {
            wr(&mut rtc, i, v);
        }
        for (i, v) in [(0x04, 0x23), (0x02, 0x59), (0x00, 0x58)] {
            wr(&mut rtc, i, v);
        }
        now.fetch_add(10_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut rtc, SECONDS), 0x58, "frozen while SET");
        wr(&mut rtc, REG_B, B_24H);
        now.fetch_add(3_000_000_000, Ordering::SeqCst);
        // 1999-12-31 23:59:58 + 3 s = 2000-01-01 00:00:01, a Saturday.
        assert_eq!(
            time_regs(&mut rtc),
            [0x01, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20]
        );
    }

    #[test]
    fn single_field_write_without_set() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, MINUTES, 0x05);
        assert_eq!(rd(&mut rtc, MINUTES), 0x05);
        assert_eq!(rd(&mut rtc, HOURS), 0x13);
        assert_eq!(rd(&mut rtc, SECONDS), 0x30);
    }

    #[test]
    fn memory_size_bytes() {
        let (rtc, _) = rtc_at(0);
        let n = rtc.nvram();
        assert_eq!([n[0x15], n[0x16]], [0x80, 0x02], "640 KiB");
        assert_eq!([n[0x17], n[0x18], n[0x30], n[0x31]], [0xff; 4], "capped");
        assert_eq!([n[0x34], n[0x35]], [0x00, 0x1f], "496 MiB in 64 KiB units");
        assert_eq!(
            [n[0x5b], n[0x5c], n[0x5d]],
            [0x00, 0x40, 0x00],
            "1 GiB above 4 GiB"
        );
        let small = CmosRtc::with_wall_clock(8 * MIB, 0, || 0);
        let n = small.nvram();
        assert_eq!([n[0x17], n[0x18]], [0x00, 0x1c], "7 MiB = 7168 KiB");
        assert_eq!([n[0x34], n[0x35], n[0x5b], n[0x5c], n[0x5d]], [0; 5]);
    }

    #[test]
    fn status_registers() {
        let (mut rtc, now) = rtc_at(LEAP_DAY);
        assert_eq!(rd(&mut rtc, REG_D), 0x80);
        wr(&mut rtc, REG_D, 0);
        assert_eq!(rd(&mut rtc, REG_D), 0x80, "D is read-only");
        assert_eq!(rd(&mut rtc, REG_A), 0x26, "UIP clear mid-second");
        now.fetch_add(999_900_000, Ordering::SeqCst);
        assert_eq!(rd(&mut rtc, REG_A), 0xa6, "UIP in the last 244 us");
        wr(&mut rtc, REG_A, 0xff);
        assert_eq!(
            rd(&mut rtc, REG_A),
            0x7f,
            "divider in reset: no UIP, bits kept"
        );
        wr(&mut rtc, REG_A, 0x20);
        now.fetch_add(200_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut rtc, REG_C), C_UF, "no periodic rate, second passed");
        assert_eq!(rd(&mut rtc, REG_C), 0, "read clears");
        wr(&mut rtc, REG_B, B_24H | B_UIE);
        now.fetch_add(1_000_000_000, Ordering::SeqCst);
        assert_eq!(rd(&mut rtc, REG_C), C_IRQF | C_UF);
    }

    #[test]
    fn nvram_storage_and_index_port() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, 0x40, 0xab);
        wr(&mut rtc, 0x7f, 0xcd);
        wr(&mut rtc, 0x01, 0x17); // seconds alarm: plain storage
        assert_eq!(rd(&mut rtc, 0x40), 0xab);
        assert_eq!(rd(&mut rtc, 0x7f), 0xcd);
        assert_eq!(rd(&mut rtc, 0x01), 0x17);
        assert_eq!(rtc.nvram()[0x40], 0xab);
        rtc.write(0, &[0x80 | 0x40]);
        assert!(rtc.nmi_disabled());
        let mut b = [0u8; 2];
        rtc.read(1, &mut b);
        assert_eq!(b, [0xab, 0xff], "data, then an undecoded port");
        rtc.read(0, &mut b[..1]);
        assert_eq!(b[0], 0xff, "index port is write-only");
        // A word write to 0x70 sets the index and writes the data.
        rtc.write(0, &[0x41, 0x99]);
        assert!(!rtc.nmi_disabled());
        assert_eq!(rd(&mut rtc, 0x41), 0x99);
    }

    #[test]
    fn garbage_time_writes_do_not_panic() {
        let (mut rtc, _) = rtc_at(LEAP_DAY);
        wr(&mut rtc, REG_B, B_SET | B_DM_BINARY);
        for i in [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32] {
            wr(&mut rtc, i, 0xff);
        }
        wr(&mut rtc, REG_B, B_DM_BINARY);
        let _ = time_regs(&mut rtc);
        wr(&mut rtc, REG_B, 0);
        for v in 0..=255u8 {
            wr(&mut rtc, HOURS, v);
            wr(&mut rtc, 0x80 | MONTH, v);
            let _ = rtc.nvram();
        }
        let mut far = CmosRtc::with_wall_clock(0, u64::MAX, || i128::MAX);
        let _ = time_regs(&mut far);
        let mut past = CmosRtc::with_wall_clock(u64::MAX, 0, || i128::MIN);
        let _ = time_regs(&mut past);
    }
}
