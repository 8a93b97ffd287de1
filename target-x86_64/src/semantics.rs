//! x86 semantics, written once against tcg's [`Builder`](tandem_tcg::Builder): each module is
//! one instruction family (Intel SDM Vol. 2 names the instructions), and [`translate`] picks
//! the family for a decoded instruction.

pub mod arith;
pub mod atomic;
pub mod bits;
pub mod condition;
pub mod control;
pub mod data_move;
pub mod flag_ops;
pub mod misc;
pub mod muldiv;
pub mod operand;
pub mod partial;
pub mod shift;
pub mod shift_double;
pub mod string;
pub mod translate;

pub use translate::{translate, Dc, Flow, Untranslated};
