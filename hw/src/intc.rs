//! Interrupt controllers.

pub mod ioapic;
pub mod lapic;
pub mod pic8259;
