//! Test identities: the access keys the emulator knows and the caller each one resolves to.

use aws_credential_types::Credentials;
use serde::{Deserialize, Serialize};

/// A principal the emulator knows: an access key, its secret, the session token a temporary key
/// must present, and the identity `GetCallerIdentity` answers with.
///
/// The same shape is read from the binary's `--identities FILE` (a JSON list of these objects;
/// `session_token` may be omitted for long-term keys).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestIdentity {
    /// Access key id (`AKIA...` for long-term keys, `ASIA...` for temporary ones).
    pub access_key_id: String,
    /// Secret access key the request must be signed with.
    pub secret_access_key: String,
    /// Session token a temporary key must send (`x-amz-security-token` header or
    /// `X-Amz-Security-Token` query parameter); `None` for long-term keys.
    #[serde(default)]
    pub session_token: Option<String>,
    /// 12-digit account id answered as `Account`.
    pub account: String,
    /// ARN answered as `Arn`.
    pub arn: String,
    /// Unique id answered as `UserId` (`AIDA...` for users, `AROA...:session` for roles).
    pub user_id: String,
}

impl TestIdentity {
    /// Credentials for signing requests as this identity with aws-sigv4.
    ///
    /// ```
    /// let alice = &sts_emulator::default_identities()[0];
    /// let creds = alice.credentials();
    /// assert_eq!(creds.access_key_id(), sts_emulator::keys::ALICE_ACCESS_KEY_ID);
    /// ```
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            None,
            "sts-emulator",
        )
    }
}

// Secrets and tokens stay out of logs and panic messages.
impl std::fmt::Debug for TestIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdentity")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("account", &self.account)
            .field("arn", &self.arn)
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// The well-known, obviously fake keys of [`default_identities`].
///
/// They only ever work against this emulator. Key ids are 20 characters, secrets 40, as AWS's.
pub mod keys {
    /// Identity 1, IAM user `alice` in account 111111111111: access key id (long-term).
    pub const ALICE_ACCESS_KEY_ID: &str = "AKIAEMULATORALICE001";
    /// Identity 1: secret access key.
    pub const ALICE_SECRET_ACCESS_KEY: &str = "EmulatorAliceSecret/DoNotUse+00000000001";

    /// Identity 2, assumed role `teleport-node-role` in account 333333333333: access key id
    /// (temporary).
    pub const NODE_ROLE_ACCESS_KEY_ID: &str = "ASIAEMULATORNODE0001";
    /// Identity 2: secret access key.
    pub const NODE_ROLE_SECRET_ACCESS_KEY: &str = "EmulatorNodeRoleSecret/DoNotUse+00000002";
    /// Identity 2: session token.
    pub const NODE_ROLE_SESSION_TOKEN: &str =
        "FwoEmulatorSessionToken/teleport-node-role+333333333333/DoNotUse==";

    /// Identity 3, assumed role `teleport-node-role2` (a look-alike name) in account
    /// 333333333333: access key id (temporary).
    pub const NODE_ROLE2_ACCESS_KEY_ID: &str = "ASIAEMULATORNODE0002";
    /// Identity 3: secret access key.
    pub const NODE_ROLE2_SECRET_ACCESS_KEY: &str = "EmulatorNodeRole2Secret/DoNotUse+0000003";
    /// Identity 3: session token.
    pub const NODE_ROLE2_SESSION_TOKEN: &str =
        "FwoEmulatorSessionToken/teleport-node-role2+333333333333/DoNotUse==";

    /// Identity 4, assumed role `teleport-node-role` in the other account 444444444444: access
    /// key id (temporary).
    pub const OTHER_ACCOUNT_ACCESS_KEY_ID: &str = "ASIAEMULATOROTHER001";
    /// Identity 4: secret access key.
    pub const OTHER_ACCOUNT_SECRET_ACCESS_KEY: &str = "EmulatorOtherAcctSecret/DoNotUse+0000004";
    /// Identity 4: session token.
    pub const OTHER_ACCOUNT_SESSION_TOKEN: &str =
        "FwoEmulatorSessionToken/teleport-node-role+444444444444/DoNotUse==";

    /// Identity 5, IAM user `bob` in account 222222222222: access key id (long-term).
    pub const BOB_ACCESS_KEY_ID: &str = "AKIAEMULATORBOB00001";
    /// Identity 5: secret access key.
    pub const BOB_SECRET_ACCESS_KEY: &str = "EmulatorBobSecret/DoNotUse+0000000000005";
}

/// The five built-in identities, in this order:
///
/// 1. IAM user `arn:aws:iam::111111111111:user/alice` (long-term key, [`keys::ALICE_ACCESS_KEY_ID`]);
/// 2. `arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890`
///    (temporary key with session token, [`keys::NODE_ROLE_ACCESS_KEY_ID`]);
/// 3. `arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890`, a
///    look-alike role name ([`keys::NODE_ROLE2_ACCESS_KEY_ID`]);
/// 4. `arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc123def4567890`, the same
///    role name in an account the seed token does not allow ([`keys::OTHER_ACCOUNT_ACCESS_KEY_ID`]);
/// 5. IAM user `arn:aws:iam::222222222222:user/bob` (long-term key, [`keys::BOB_ACCESS_KEY_ID`]).
pub fn default_identities() -> Vec<TestIdentity> {
    fn identity(
        (access_key_id, secret_access_key, session_token): (&str, &str, Option<&str>),
        account: &str,
        arn: &str,
        user_id: &str,
    ) -> TestIdentity {
        TestIdentity {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: session_token.map(str::to_owned),
            account: account.to_owned(),
            arn: arn.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
    vec![
        identity(
            (
                keys::ALICE_ACCESS_KEY_ID,
                keys::ALICE_SECRET_ACCESS_KEY,
                None,
            ),
            "111111111111",
            "arn:aws:iam::111111111111:user/alice",
            "AIDAEMULATORALICE0001",
        ),
        identity(
            (
                keys::NODE_ROLE_ACCESS_KEY_ID,
                keys::NODE_ROLE_SECRET_ACCESS_KEY,
                Some(keys::NODE_ROLE_SESSION_TOKEN),
            ),
            "333333333333",
            "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890",
            "AROAEMULATORNODE00001:i-0abc123def4567890",
        ),
        identity(
            (
                keys::NODE_ROLE2_ACCESS_KEY_ID,
                keys::NODE_ROLE2_SECRET_ACCESS_KEY,
                Some(keys::NODE_ROLE2_SESSION_TOKEN),
            ),
            "333333333333",
            "arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890",
            "AROAEMULATORNODE00002:i-0abc123def4567890",
        ),
        identity(
            (
                keys::OTHER_ACCOUNT_ACCESS_KEY_ID,
                keys::OTHER_ACCOUNT_SECRET_ACCESS_KEY,
                Some(keys::OTHER_ACCOUNT_SESSION_TOKEN),
            ),
            "444444444444",
            "arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc123def4567890",
            "AROAEMULATOROTHER0001:i-0abc123def4567890",
        ),
        identity(
            (keys::BOB_ACCESS_KEY_ID, keys::BOB_SECRET_ACCESS_KEY, None),
            "222222222222",
            "arn:aws:iam::222222222222:user/bob",
            "AIDAEMULATORBOB000001",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_have_aws_shapes() {
        for id in default_identities() {
            assert_eq!(id.access_key_id.len(), 20, "{}", id.access_key_id);
            assert_eq!(id.secret_access_key.len(), 40, "{}", id.access_key_id);
            let temporary = id.access_key_id.starts_with("ASIA");
            assert!(temporary || id.access_key_id.starts_with("AKIA"));
            assert_eq!(temporary, id.session_token.is_some());
            assert!(id.arn.contains(&format!("::{}:", id.account)));
        }
    }

    #[test]
    fn default_key_ids_are_unique() {
        let ids = default_identities();
        let mut keys: Vec<_> = ids.iter().map(|i| i.access_key_id.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ids.len());
    }

    #[test]
    fn debug_output_redacts_secret_and_token() {
        let text = format!("{:?}", default_identities()[1]);
        assert!(!text.contains(keys::NODE_ROLE_SECRET_ACCESS_KEY));
        assert!(!text.contains(keys::NODE_ROLE_SESSION_TOKEN));
        assert!(text.contains(keys::NODE_ROLE_ACCESS_KEY_ID));
    }

    #[test]
    fn identities_file_omits_session_token_for_long_term_keys() {
        let json = r#"[{"access_key_id":"AKIAEXAMPLE000000001","secret_access_key":"s",
            "account":"111111111111","arn":"arn:aws:iam::111111111111:user/x","user_id":"AIDAX"}]"#;
        let ids: Vec<TestIdentity> = serde_json::from_str(json).expect("valid list");
        assert_eq!(ids[0].session_token, None);
        let typo = json.replace("user_id", "userid");
        assert!(serde_json::from_str::<Vec<TestIdentity>>(&typo).is_err());
    }
}
