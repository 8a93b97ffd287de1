//! The floating-point and vector classes: x87, MMX, and SSE through SSE4.2 (with POPCNT and
//! CRC32), one builder module per class, over shared pieces: [`values`] (edge-case float bit
//! patterns), [`state`] (the starting x87/SSE state and FXSAVE images), [`forms`] (an
//! instruction built from its iced-x86 `Code` with drawn operands and exactly aimed memory).

pub mod forms;
pub mod fxsave;
pub mod mmx;
pub mod sse42;
pub mod sse_convert;
pub mod sse_float;
pub mod sse_int;
pub mod sse_move;
pub mod state;
pub mod values;
pub mod x87;
