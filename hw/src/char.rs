//! Character devices.

pub mod serial16550;
