//! Helpers for end-to-end tests (none yet).
