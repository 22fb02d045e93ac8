//! Caller identities: what STS says about the signer, parsed and cross-checked.

use std::fmt;

use time::OffsetDateTime;

use crate::check::BindingKind;
use crate::hosts::StsHost;

/// The kind of AWS principal behind a proof.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// An IAM user (`arn:aws:iam::123456789012:user/path/name`).
    User,
    /// An assumed role session (`arn:aws:sts::123456789012:assumed-role/name/session`).
    AssumedRole,
    /// An IAM role ARN (`arn:aws:iam::123456789012:role/path/name`).
    Role,
    /// A federated user (`arn:aws:sts::123456789012:federated-user/name`).
    FederatedUser,
    /// The account root user (`arn:aws:iam::123456789012:root`).
    Root,
}

impl PrincipalType {
    /// `user`, `assumed-role`, `role`, `federated-user` or `root`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::AssumedRole => "assumed-role",
            Self::Role => "role",
            Self::FederatedUser => "federated-user",
            Self::Root => "root",
        }
    }
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three fields STS's `GetCallerIdentity` answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsAnswer {
    /// 12-digit account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
    /// The unique id (`AIDA…`, `AROA…:session`).
    pub user_id: String,
}

/// Why an STS answer cannot be an identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("STS answer is inconsistent: {0}")]
pub struct InconsistentAnswer(pub &'static str);

/// A verified caller identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    account: Box<str>,
    arn: Box<str>,
    user_id: Box<str>,
    principal_type: PrincipalType,
    // The name and session name are parts of the ARN, kept as byte ranges into it rather than
    // copies: the cache holds one identity per distinct proof (up to 100 000 by default), and
    // every admitted request clones one into its `VerifiedIdentity`.
    name: ArnRange,
    session_name: Option<ArnRange>,
    region: Box<str>,
}

/// A byte range of a [`CallerIdentity`]'s ARN (ARNs are at most 2048 bytes, so `u16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ArnRange {
    start: u16,
    end: u16,
}

impl ArnRange {
    /// The range of `part`, a subslice of `whole`.
    fn of(whole: &str, part: &str) -> Result<Self, InconsistentAnswer> {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        let end = start.wrapping_add(part.len());
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(start), Ok(end)) if usize::from(end) <= whole.len() => Ok(Self { start, end }),
            _ => Err(InconsistentAnswer("Arn is too long")),
        }
    }

    fn get(self, whole: &str) -> &str {
        whole
            .get(usize::from(self.start)..usize::from(self.end))
            .unwrap_or_default()
    }
}

impl CallerIdentity {
    /// Builds an identity from STS's answer for a proof sent to `host`, cross-checking that the
    /// ARN is well formed, names the answered account and the host's partition.
    pub fn from_answer(answer: StsAnswer, host: &StsHost) -> Result<Self, InconsistentAnswer> {
        if answer.account.len() != 12 || !answer.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InconsistentAnswer("Account is not 12 digits"));
        }
        if answer.user_id.is_empty() || answer.user_id.chars().any(char::is_control) {
            return Err(InconsistentAnswer("UserId is empty or not printable"));
        }
        if answer.arn.chars().any(char::is_control) {
            return Err(InconsistentAnswer("Arn is not printable"));
        }
        let mut parts = answer.arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(InconsistentAnswer("Arn is not an ARN"));
        };
        if partition != host.partition().as_str() {
            return Err(InconsistentAnswer(
                "Arn's partition is not the partition of the STS host",
            ));
        }
        if account != answer.account {
            return Err(InconsistentAnswer("Arn's account is not Account"));
        }
        if !region.is_empty() {
            return Err(InconsistentAnswer("Arn of a principal has a region"));
        }
        let (principal_type, name, session_name) = match (service, resource.split_once('/')) {
            // `root` is the whole resource.
            ("iam", None) if resource == "root" => (PrincipalType::Root, resource, None),
            ("iam", Some(("user", path))) => (PrincipalType::User, last_segment(path)?, None),
            ("iam", Some(("role", path))) => (PrincipalType::Role, last_segment(path)?, None),
            ("sts", Some(("assumed-role", rest))) => {
                let (role, session) = rest
                    .split_once('/')
                    .ok_or(InconsistentAnswer("assumed-role Arn has no session name"))?;
                if role.is_empty() || session.is_empty() || session.contains('/') {
                    return Err(InconsistentAnswer("assumed-role Arn is not role/session"));
                }
                (PrincipalType::AssumedRole, role, Some(session))
            }
            ("sts", Some(("federated-user", name))) if !name.is_empty() && !name.contains('/') => {
                (PrincipalType::FederatedUser, name, None)
            }
            _ => return Err(InconsistentAnswer("Arn is not a user, role or session")),
        };
        let arn = answer.arn.as_str();
        let name = ArnRange::of(arn, name)?;
        let session_name = session_name.map(|s| ArnRange::of(arn, s)).transpose()?;
        Ok(Self {
            account: answer.account.into_boxed_str(),
            arn: answer.arn.into_boxed_str(),
            user_id: answer.user_id.into_boxed_str(),
            principal_type,
            name,
            session_name,
            region: host.region().into(),
        })
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// The caller's ARN, as STS returned it.
    pub fn arn(&self) -> &str {
        &self.arn
    }
    /// The unique id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
    /// The principal type.
    pub fn principal_type(&self) -> PrincipalType {
        self.principal_type
    }
    /// The user or role name (the last path segment), or `root`.
    pub fn name(&self) -> &str {
        self.name.get(&self.arn)
    }
    /// The session name of an assumed role.
    pub fn session_name(&self) -> Option<&str> {
        self.session_name.map(|s| s.get(&self.arn))
    }
    /// The region of the STS endpoint the proof was signed for.
    pub fn region(&self) -> &str {
        &self.region
    }
}

fn last_segment(path: &str) -> Result<&str, InconsistentAnswer> {
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(InconsistentAnswer("Arn has an empty name")),
    }
}

/// What the layer hands to the inner service: the identity, the token it matched, and the
/// proof's binding and expiry. Inserted as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The caller identity.
    pub identity: CallerIdentity,
    /// The join token's name.
    pub token: String,
    /// The token's roles (canonical spelling).
    pub roles: Vec<String>,
    /// How the proof was bound.
    pub binding: BindingKind,
    /// When the proof stops being valid.
    pub expires_at: OffsetDateTime,
}

impl VerifiedIdentity {
    /// The JSON of `GET {prefix}/whoami` (DESIGN §3): [`crate::wire::WhoAmIBody`].
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings always serializes.
        serde_json::to_value(crate::wire::WhoAmIBody::from(self)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::StsHostAllowList;

    fn host(name: &str) -> StsHost {
        StsHostAllowList::new().resolve(name).unwrap().clone()
    }

    fn answer(account: &str, arn: &str) -> StsAnswer {
        StsAnswer {
            account: account.into(),
            arn: arn.into(),
            user_id: "AIDAEXAMPLE".into(),
        }
    }

    #[test]
    fn assumed_role_identity_has_role_and_session() {
        let id = CallerIdentity::from_answer(
            answer(
                "333333333333",
                "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc",
            ),
            &host("sts.us-west-2.amazonaws.com"),
        )
        .unwrap();
        assert_eq!(id.principal_type(), PrincipalType::AssumedRole);
        assert_eq!(id.name(), "teleport-node-role");
        assert_eq!(id.session_name(), Some("i-0abc"));
        assert_eq!(id.region(), "us-west-2");
    }

    #[test]
    fn user_root_role_and_federated_user_are_recognised() {
        let h = host("sts.amazonaws.com");
        let cases = [
            (
                "arn:aws:iam::111111111111:user/dev/alice",
                PrincipalType::User,
                "alice",
            ),
            (
                "arn:aws:iam::111111111111:root",
                PrincipalType::Root,
                "root",
            ),
            ("arn:aws:iam::111111111111:role/r", PrincipalType::Role, "r"),
            (
                "arn:aws:sts::111111111111:federated-user/bob",
                PrincipalType::FederatedUser,
                "bob",
            ),
        ];
        for (arn, ty, name) in cases {
            let id = CallerIdentity::from_answer(answer("111111111111", arn), &h).unwrap();
            assert_eq!((id.principal_type(), id.name()), (ty, name), "{arn}");
        }
    }

    #[test]
    fn account_must_equal_the_arn_account() {
        let e = CallerIdentity::from_answer(
            answer("111111111111", "arn:aws:iam::222222222222:user/alice"),
            &host("sts.amazonaws.com"),
        );
        assert!(e.is_err());
    }

    #[test]
    fn partition_must_fit_the_host() {
        let e = CallerIdentity::from_answer(
            answer("111111111111", "arn:aws-cn:iam::111111111111:user/alice"),
            &host("sts.amazonaws.com"),
        );
        assert!(e.is_err());
        let ok = CallerIdentity::from_answer(
            answer("111111111111", "arn:aws-cn:iam::111111111111:user/alice"),
            &host("sts.cn-north-1.amazonaws.com.cn"),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn odd_arns_are_refused() {
        let h = host("sts.amazonaws.com");
        for arn in [
            "",
            "arn:aws:iam::111111111111",
            "arn:aws:s3:::bucket",
            "arn:aws:iam:us-east-1:111111111111:user/a",
            "arn:aws:sts::111111111111:assumed-role/r",
            "arn:aws:iam::111111111111:user/",
        ] {
            assert!(
                CallerIdentity::from_answer(answer("111111111111", arn), &h).is_err(),
                "{arn}"
            );
        }
    }
}
