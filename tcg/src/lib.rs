//! tcg (being written).
