//! Shared code for the examples (none yet).
