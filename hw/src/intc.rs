//! Interrupt controllers.

pub mod ioapic;
pub mod isa_irq;
pub mod lapic;
pub mod msi;
pub mod pic8259;
