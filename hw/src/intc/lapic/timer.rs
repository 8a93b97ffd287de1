//! The local APIC timer (SDM Vol. 3A 11.5.4 "APIC Timer", 11.5.4.1 "TSC-Deadline Mode").
//!
//! Nothing runs between calls: the current count is derived from the time the count was
//! loaded, and the next expiry is a clock time the owner waits for. The timer's input clock is
//! 1 GHz (one tick per nanosecond before the divider), as KVM and QEMU model it; guests
//! calibrate it against the PIT or read it from CPUID leaf 0x15/0x16 if the CPU model says so.
//!
//! Warts: a divide-configuration write while counting re-derives the count from the original
//! load time with the new divider (QEMU does the same); a periodic timer fires at most once per
//! [`MIN_PERIOD_NS`] (as KVM limits it) although the current count keeps the true period, so a
//! guest cannot make the host spin; late expiries coalesce into one interrupt.

/// Shortest interval between two periodic expiries the timer asks the host to wait for.
pub const MIN_PERIOD_NS: u64 = 100_000;

/// LVT timer bits 17-18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// Counts down once from the initial count.
    OneShot,
    /// Reloads the initial count at zero.
    Periodic,
    /// Fires when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
}

impl TimerMode {
    /// Decodes LVT timer bits 17-18; the reserved 0b11 gives None.
    pub fn from_lvt(lvt: u32) -> Option<Self> {
        match (lvt >> 17) & 3 {
            0 => Some(Self::OneShot),
            1 => Some(Self::Periodic),
            2 => Some(Self::TscDeadline),
            _ => None,
        }
    }
}

/// The timer's counting state.
#[derive(Debug, Clone)]
pub(crate) struct ApicTimer {
    mode: TimerMode,
    initial: u32,
    /// Divide configuration register, bits 0, 1 and 3.
    divide: u32,
    /// Clock time at which `initial` was loaded.
    start_ns: u64,
    /// Clock time of the next expiry, while armed.
    next_ns: Option<u64>,
    /// IA32_TSC_DEADLINE while armed, else 0.
    tsc_deadline: u64,
}

impl ApicTimer {
    pub(crate) fn new() -> Self {
        Self {
            mode: TimerMode::OneShot,
            initial: 0,
            divide: 0,
            start_ns: 0,
            next_ns: None,
            tsc_deadline: 0,
        }
    }

    /// log2 of the divisor: register value 0b000 divides by 2 ... 0b110 by 128, 0b111 by 1.
    fn shift(&self) -> u32 {
        let v = (self.divide & 3) | ((self.divide >> 1) & 4);
        (v + 1) & 7
    }

    fn period_ns(&self) -> u64 {
        u64::from(self.initial) << self.shift()
    }

    pub(crate) fn mode(&self) -> TimerMode {
        self.mode
    }

    pub(crate) fn initial(&self) -> u32 {
        self.initial
    }

    pub(crate) fn divide(&self) -> u32 {
        self.divide
    }

    /// The first expiry strictly after `now` of the count loaded at `start_ns`.
    fn next_after(&self, now: u64) -> Option<u64> {
        let period = self.period_ns();
        if period == 0 {
            return None;
        }
        let end = self.start_ns.saturating_add(period);
        match self.mode {
            TimerMode::OneShot => Some(end),
            TimerMode::Periodic if now < end => Some(end),
            TimerMode::Periodic => {
                let k = (now - self.start_ns) / period + 1;
                let next = self.start_ns.saturating_add(k.saturating_mul(period));
                Some(next.max(now.saturating_add(MIN_PERIOD_NS)))
            }
            TimerMode::TscDeadline => None,
        }
    }

    /// Loads the initial count (ignored in TSC-deadline mode; 0 stops the timer).
    pub(crate) fn write_initial(&mut self, count: u32, now: u64) {
        if self.mode == TimerMode::TscDeadline {
            return;
        }
        self.initial = count;
        self.start_ns = now;
        self.next_ns = self.next_after(now);
    }

    /// The current count register.
    pub(crate) fn current(&self, now: u64) -> u32 {
        if self.mode == TimerMode::TscDeadline || self.initial == 0 {
            return 0;
        }
        let elapsed = now.saturating_sub(self.start_ns) >> self.shift();
        let initial = u64::from(self.initial);
        let left = match self.mode {
            TimerMode::Periodic => initial - elapsed % initial,
            _ => initial.saturating_sub(elapsed),
        };
        // left <= initial, which is a u32.
        u32::try_from(left).unwrap_or(0)
    }

    pub(crate) fn write_divide(&mut self, value: u32, now: u64) {
        self.divide = value & 0b1011;
        if self.next_ns.is_some() {
            self.next_ns = self.next_after(now);
        }
    }

    /// A new LVT timer mode. Entering or leaving TSC-deadline mode disarms the timer (SDM
    /// 11.5.4.1); one-shot and periodic switch without reloading.
    pub(crate) fn set_mode(&mut self, mode: TimerMode, now: u64) {
        if mode == self.mode {
            return;
        }
        let deadline_change = mode == TimerMode::TscDeadline || self.mode == TimerMode::TscDeadline;
        self.mode = mode;
        if deadline_change {
            self.initial = 0;
            self.next_ns = None;
            self.tsc_deadline = 0;
        } else if self.next_ns.is_some() || mode == TimerMode::Periodic {
            self.next_ns = self.next_after(now);
        }
    }

    /// Arms TSC-deadline mode for TSC value `tsc`, reached at clock time `at_ns`; 0 disarms.
    /// Ignored in the other modes, where the MSR reads 0.
    pub(crate) fn write_tsc_deadline(&mut self, tsc: u64, at_ns: u64) {
        if self.mode != TimerMode::TscDeadline {
            return;
        }
        self.tsc_deadline = tsc;
        self.next_ns = (tsc != 0).then_some(at_ns);
    }

    pub(crate) fn tsc_deadline(&self) -> u64 {
        if self.mode == TimerMode::TscDeadline {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// Clock time of the next expiry, if armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.next_ns
    }

    /// True once per expiry at or before `now`; re-arms a periodic timer, disarms the others
    /// (a fired TSC deadline reads 0).
    pub(crate) fn expire(&mut self, now: u64) -> bool {
        match self.next_ns {
            Some(t) if t <= now => {
                self.next_ns = match self.mode {
                    TimerMode::Periodic => self.next_after(now),
                    _ => None,
                };
                self.tsc_deadline = 0;
                true
            }
            _ => false,
        }
    }
}
