//! Interrupt controllers.

pub mod pic8259;
