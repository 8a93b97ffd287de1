//! Timers and clocks.

pub mod cmos_rtc;
pub mod pit8254;
