//! Small fixed-function ISA devices.

pub mod debug_exit;
pub mod i8042;
pub mod port80;
pub mod port92;
