//! The PC board.
