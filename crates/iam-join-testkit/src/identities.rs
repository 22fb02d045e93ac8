//! The sts-emulator's default identities, by name (see `sts_emulator::default_identities`).

use sts_emulator::{TestIdentity, default_identities};

fn nth(n: usize) -> TestIdentity {
    default_identities().swap_remove(n)
}

/// Identity 1: IAM user alice in 111111111111 (long-term key; allowed by the seed token).
pub fn alice() -> TestIdentity {
    nth(0)
}

/// Identity 2: `teleport-node-role` in 333333333333 (temporary key).
pub fn node() -> TestIdentity {
    nth(1)
}

/// Identity 3: the look-alike role `teleport-node-role2` in 333333333333.
pub fn node2() -> TestIdentity {
    nth(2)
}

/// Identity 4: `teleport-node-role` (same role and session names as identity 2) in
/// 444444444444, an account the seed token does not allow.
pub fn other_account() -> TestIdentity {
    nth(3)
}

/// Identity 5: IAM user bob in 222222222222.
pub fn bob() -> TestIdentity {
    nth(4)
}
