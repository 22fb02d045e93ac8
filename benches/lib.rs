//! Shared bench helpers (none yet).
