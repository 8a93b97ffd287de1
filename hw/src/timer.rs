//! Timers and clocks.

pub mod clock;
pub mod cmos_rtc;
pub mod pit8254;
