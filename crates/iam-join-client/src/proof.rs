//! Building proofs: signing `sts:GetCallerIdentity` with aws-sigv4 without sending it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use iam_join_core::Audience;
use iam_join_core::token::ProofFormat;

use crate::endpoint::{StsEndpoint, sts_endpoint, truncate};
use crate::wire::encode_k8s_token;
use crate::{ClientError, SignedStsRequest};

/// Header that carries an audience binding (reusable proofs).
pub use iam_join_core::wire::AUDIENCE_HEADER;
/// Header that carries a challenge binding (single-use proofs).
pub use iam_join_core::wire::CHALLENGE_HEADER;
/// Header that carries the cluster ID of a `k8s-aws-v1.` token.
pub use iam_join_core::wire::K8S_AUDIENCE_HEADER as K8S_CLUSTER_ID_HEADER;
/// The only body (and, for presigned requests, the leading query) a proof may carry.
pub const GET_CALLER_IDENTITY_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The `content-type` of a signed POST proof.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Default lifetime of a presigned GET proof.
pub const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(300);
/// Longest lifetime of a presigned GET proof the verifier accepts.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(900);
/// Lifetime of a `k8s-aws-v1.` token, as `aws eks get-token` signs it.
pub const K8S_TOKEN_EXPIRY: Duration = Duration::from_secs(60);

/// Longest binding value we sign; challenges are far shorter.
const MAX_BINDING_LEN: usize = 4096;

/// AWS's unreserved characters are the only ones left unescaped in query values (RFC 3986, as
/// botocore and the SigV4 canonical query do).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What ties a proof to one verifier (DESIGN §3, "Bindings").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// `x-iam-join-audience: <audience>`: reusable until the proof expires, so the verifier can
    /// cache it. The value must equal the verifier's configured audience.
    Audience(String),
    /// `x-teleport-challenge: <challenge>`: single-use; get the challenge from the verifier's
    /// `POST {prefix}/challenge` (see [`crate::VerifierClient::fetch_challenge`]).
    Challenge(String),
}

impl Binding {
    /// The signed header that carries the binding.
    pub fn header_name(&self) -> &'static str {
        match self {
            Self::Audience(_) => AUDIENCE_HEADER,
            Self::Challenge(_) => CHALLENGE_HEADER,
        }
    }

    /// The binding value.
    pub fn value(&self) -> &str {
        match self {
            Self::Audience(v) | Self::Challenge(v) => v,
        }
    }
}

/// How the request is signed; the verifier accepts both (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningForm {
    /// Signed POST with an `authorization` header (Teleport's and Vault's form). The proof's
    /// lifetime is set by the verifier (15 minutes after `x-amz-date`).
    #[default]
    Post,
    /// Presigned GET with the signature in the query (aws-iam-authenticator's form).
    /// `expires_in` is whole seconds in 1..=900.
    PresignedGet {
        /// `X-Amz-Expires`.
        expires_in: Duration,
    },
}

impl SigningForm {
    /// A presigned GET with the default lifetime ([`DEFAULT_PRESIGN_EXPIRY`]).
    pub fn presigned_get() -> Self {
        Self::PresignedGet {
            expires_in: DEFAULT_PRESIGN_EXPIRY,
        }
    }
}

/// Builds `iam-join-v1.` proof tokens.
///
/// The builder is plain data and does no I/O: credentials come from
/// [`load_credentials`](crate::load_credentials) or anywhere else.
///
/// ```
/// use aws_credential_types::Credentials;
/// use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
///
/// let creds = Credentials::from_keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None);
/// let token = ProofBuilder::new(
///     sts_endpoint("us-west-2", false)?,
///     Binding::Audience("teleport.example.com".into()),
/// )
/// .form(SigningForm::Post)
/// .build(&creds)?;
/// assert!(token.starts_with("iam-join-v1."));
/// # Ok::<(), iam_join_client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ProofBuilder {
    endpoint: StsEndpoint,
    binding: Binding,
    form: SigningForm,
    time: Option<SystemTime>,
}

impl ProofBuilder {
    /// A builder for a signed POST to `endpoint` bound by `binding`, signed at the current time.
    pub fn new(endpoint: StsEndpoint, binding: Binding) -> Self {
        Self {
            endpoint,
            binding,
            form: SigningForm::Post,
            time: None,
        }
    }

    /// Signs with this form instead of [`SigningForm::Post`].
    pub fn form(mut self, form: SigningForm) -> Self {
        self.form = form;
        self
    }

    /// Signs as of `time` instead of now (for tests and reproducible output).
    pub fn time(mut self, time: SystemTime) -> Self {
        self.time = Some(time);
        self
    }

    /// The endpoint the proof is signed for.
    pub fn endpoint(&self) -> &StsEndpoint {
        &self.endpoint
    }

    /// The binding.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The signing form.
    pub fn signing_form(&self) -> SigningForm {
        self.form
    }

    /// Signs the request and returns it unencoded.
    pub fn sign(&self, creds: &Credentials) -> Result<SignedStsRequest, ClientError> {
        match &self.binding {
            Binding::Audience(audience) => validate_audience("audience", audience)?,
            Binding::Challenge(challenge) => validate_challenge(challenge)?,
        }
        let time = validate_time(self.time.unwrap_or_else(SystemTime::now))?;
        let binding = (self.binding.header_name(), self.binding.value());
        match self.form {
            SigningForm::Post => sign_post(creds, &self.endpoint, binding, time),
            SigningForm::PresignedGet { expires_in } => {
                let url = presign(creds, &self.endpoint, binding, expires_in, time)?;
                Ok(SignedStsRequest {
                    format: ProofFormat::IamJoinV1,
                    method: "GET".to_owned(),
                    url,
                    headers: vec![(binding.0.to_owned(), binding.1.to_owned())],
                    body: String::new(),
                })
            }
        }
    }

    /// Signs the request and encodes it as an `iam-join-v1.` proof token.
    pub fn build(&self, creds: &Credentials) -> Result<String, ClientError> {
        Ok(self.sign(creds)?.to_iam_join_v1_token())
    }
}

/// A `k8s-aws-v1.` token for `cluster_id`, exactly as `aws eks get-token --cluster-name
/// <cluster_id>` prints it: a GET presigned for the regional endpoint, `x-k8s-aws-id` signed,
/// `X-Amz-Expires=60`.
///
/// ```
/// use std::time::SystemTime;
/// use aws_credential_types::Credentials;
///
/// let creds = Credentials::from_keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None);
/// let token = iam_join_client::k8s_token(&creds, "us-west-2", "my-cluster", SystemTime::now())?;
/// let url = iam_join_client::decode_proof_token(&token)?.url;
/// assert!(url.starts_with("https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"));
/// assert!(url.contains("X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"));
/// # Ok::<(), iam_join_client::ClientError>(())
/// ```
pub fn k8s_token(
    creds: &Credentials,
    region: &str,
    cluster_id: &str,
    time: SystemTime,
) -> Result<String, ClientError> {
    k8s_token_for_endpoint(creds, &sts_endpoint(region, false)?, cluster_id, time)
}

/// Like [`k8s_token`], for any endpoint (e.g. a FIPS one from [`sts_endpoint`]).
pub fn k8s_token_for_endpoint(
    creds: &Credentials,
    endpoint: &StsEndpoint,
    cluster_id: &str,
    time: SystemTime,
) -> Result<String, ClientError> {
    validate_audience("cluster ID", cluster_id)?;
    let time = validate_time(time)?;
    let url = presign(
        creds,
        endpoint,
        (K8S_CLUSTER_ID_HEADER, cluster_id),
        K8S_TOKEN_EXPIRY,
        time,
    )?;
    Ok(encode_k8s_token(&url))
}

fn sign_post(
    creds: &Credentials,
    endpoint: &StsEndpoint,
    binding: (&'static str, &str),
    time: SystemTime,
) -> Result<SignedStsRequest, ClientError> {
    validate_credentials(creds)?;
    let url = endpoint.url();
    let unsigned = [("content-type", FORM_CONTENT_TYPE), binding];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        unsigned.iter().copied(),
        SignableBody::Bytes(GET_CALLER_IDENTITY_QUERY.as_bytes()),
    )
    .map_err(|e| signing_error(&e))?;
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    let params = signing_params(&identity, endpoint, time, settings)?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    let (signed_headers, _) = instructions.into_parts();

    let mut headers: Vec<(String, String)> = unsigned
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for header in signed_headers {
        let name = header.name().to_ascii_lowercase();
        if let Some(slot) = headers.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = header.value().to_owned();
        } else {
            headers.push((name, header.value().to_owned()));
        }
    }
    headers.sort();
    Ok(SignedStsRequest {
        format: ProofFormat::IamJoinV1,
        method: "POST".to_owned(),
        url,
        headers,
        body: GET_CALLER_IDENTITY_QUERY.to_owned(),
    })
}

/// Presigns a GET for `endpoint` with `header` signed; returns the URL.
fn presign(
    creds: &Credentials,
    endpoint: &StsEndpoint,
    header: (&'static str, &str),
    expires_in: Duration,
    time: SystemTime,
) -> Result<String, ClientError> {
    validate_credentials(creds)?;
    // aws-sigv4 panics on QueryParams without expires_in; we always set it, within 1..=900 s.
    if expires_in.subsec_nanos() != 0
        || expires_in < Duration::from_secs(1)
        || expires_in > MAX_PRESIGN_EXPIRY
    {
        return Err(ClientError::invalid(
            "expiry",
            format!(
                "X-Amz-Expires must be whole seconds in 1..={}, got {:?}",
                MAX_PRESIGN_EXPIRY.as_secs(),
                expires_in
            ),
        ));
    }
    let base = format!("https://{}/?{GET_CALLER_IDENTITY_QUERY}", endpoint.host());
    let signable = SignableRequest::new(
        "GET",
        base.as_str(),
        std::iter::once(header),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| signing_error(&e))?;
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = signing_params(&identity, endpoint, time, settings)?;
    let (instructions, signature) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    let (_, query) = instructions.into_parts();

    // botocore's order: the auth parameters as aws-sigv4 lists them, X-Amz-Signature last.
    let mut url = base;
    for (name, value) in query.iter().filter(|(n, _)| *n != "X-Amz-Signature") {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    url.push_str("&X-Amz-Signature=");
    url.push_str(&signature);
    Ok(url)
}

fn signing_params<'a>(
    identity: &'a Identity,
    endpoint: &'a StsEndpoint,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<SigningParams<'a>, ClientError> {
    // aws-sigv4 panics on a URI without authority: the endpoint's host is validated when the
    // `StsEndpoint` is made, so `https://<host>/` always has one.
    Ok(v4::SigningParams::builder()
        .identity(identity)
        .region(endpoint.region())
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| ClientError::Signing(e.to_string()))?
        .into())
}

fn signing_error(e: &aws_sigv4::http_request::SigningError) -> ClientError {
    // SigningError's message names the problem (e.g. an invalid header value), never the value.
    ClientError::Signing(e.to_string())
}

fn validate_credentials(creds: &Credentials) -> Result<(), ClientError> {
    let key = creds.access_key_id();
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ClientError::invalid(
            "credentials",
            "the access key ID is empty or not alphanumeric",
        ));
    }
    if creds.secret_access_key().is_empty() {
        return Err(ClientError::invalid(
            "credentials",
            "the secret access key is empty",
        ));
    }
    if let Some(token) = creds.session_token()
        && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ClientError::invalid(
            "credentials",
            "the session token is empty or has characters not allowed in an HTTP header",
        ));
    }
    Ok(())
}

/// Binding values go into a signed header; SigV4 trims them and collapses runs of spaces, so
/// values it would change (and anything that is not printable ASCII) are refused.
/// An audience (or EKS cluster id) follows the verifier's own [`Audience`] rule, so a value the
/// verifier could never be configured with is refused before signing.
fn validate_audience(what: &'static str, value: &str) -> Result<(), ClientError> {
    value
        .parse::<Audience>()
        .map(drop)
        .map_err(|e| ClientError::invalid(what, format!("{:?}: {e}", truncate(value, 64))))
}

/// A challenge is whatever the verifier issued; only what could not be sent in a header is
/// refused.
fn validate_challenge(value: &str) -> Result<(), ClientError> {
    let what = "challenge";
    let reason = if value.is_empty() {
        Some("is empty")
    } else if value.len() > MAX_BINDING_LEN {
        Some("is too long (more than 4096 bytes)")
    } else if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Some("must be printable ASCII")
    } else if value.starts_with(' ') || value.ends_with(' ') || value.contains("  ") {
        Some("must not start or end with a space or contain two spaces in a row")
    } else {
        None
    };
    match reason {
        Some(r) => Err(ClientError::invalid(
            what,
            format!("{:?} {r}", truncate(value, 64)),
        )),
        None => Ok(()),
    }
}

fn validate_time(time: SystemTime) -> Result<SystemTime, ClientError> {
    // Years 1970..=9999 format as X-Amz-Date; the time crate would panic beyond that.
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() < 253_402_300_799 => Ok(time),
        _ => Err(ClientError::invalid(
            "signing time",
            "must be between 1970 and 9999",
        )),
    }
}

#[cfg(test)]
mod tests {
    use iam_join_core::token::decode_proof_token;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::from_keys("AKIDEXAMPLE", SECRET, token.map(str::to_owned))
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn builder(binding: Binding) -> ProofBuilder {
        ProofBuilder::new(sts_endpoint("us-west-2", false).unwrap(), binding).time(at())
    }

    #[test]
    fn post_proof_has_the_signed_headers_and_exact_body() {
        let req = builder(Binding::Audience("aud".into()))
            .sign(&creds(Some("TOKEN+/=")))
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://sts.us-west-2.amazonaws.com/");
        assert_eq!(req.body, GET_CALLER_IDENTITY_QUERY);
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "authorization",
                "content-type",
                "x-amz-date",
                "x-amz-security-token",
                "x-iam-join-audience"
            ]
        );
        let auth = req.header("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(auth.contains("/us-west-2/sts/aws4_request"));
        assert!(auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-iam-join-audience,"
        ));
        assert_eq!(req.header("x-amz-security-token"), Some("TOKEN+/="));
        assert_eq!(req.header("content-type"), Some(FORM_CONTENT_TYPE));
    }

    #[test]
    fn post_proof_without_session_token_has_no_token_header() {
        let req = builder(Binding::Challenge("c".into()))
            .sign(&creds(None))
            .unwrap();
        assert_eq!(req.header("x-amz-security-token"), None);
        assert_eq!(req.header(CHALLENGE_HEADER), Some("c"));
        assert_eq!(req.header(AUDIENCE_HEADER), None);
    }

    #[test]
    fn presigned_get_puts_auth_in_the_query_in_botocore_order() {
        let req = builder(Binding::Audience("aud".into()))
            .form(SigningForm::PresignedGet {
                expires_in: Duration::from_secs(120),
            })
            .sign(&creds(Some("TOK/EN=")))
            .unwrap();
        assert_eq!(req.method, "GET");
        assert!(req.body.is_empty());
        assert_eq!(req.headers, [("x-iam-join-audience".into(), "aud".into())]);
        let query = req.url.split_once('?').unwrap().1;
        let names: Vec<&str> = query
            .split('&')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Action",
                "Version",
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Security-Token",
                "X-Amz-Signature"
            ]
        );
        assert!(query.contains("X-Amz-Expires=120&"));
        assert!(query.contains("X-Amz-SignedHeaders=host%3Bx-iam-join-audience&"));
        assert!(query.contains("X-Amz-Security-Token=TOK%2FEN%3D&"));
        assert!(query.contains("X-Amz-Credential=AKIDEXAMPLE%2F"));
    }

    #[test]
    fn signed_requests_survive_the_verifiers_strict_decoder_unchanged() {
        // The strict decoder lowercases header names and refuses padding: what we sign must
        // already be in that shape, or the verifier would read a different request.
        for form in [SigningForm::Post, SigningForm::presigned_get()] {
            for binding in [
                Binding::Audience("aud".into()),
                Binding::Challenge("c".into()),
            ] {
                let b = builder(binding).form(form);
                let signed = b.sign(&creds(Some("TOKEN+/="))).unwrap();
                let token = b.build(&creds(Some("TOKEN+/="))).unwrap();
                assert!(token.starts_with(crate::PROOF_TOKEN_PREFIX));
                assert!(!token.contains('='));
                assert_eq!(decode_proof_token(&token).unwrap(), signed, "{form:?}");
            }
        }
    }

    #[test]
    fn presign_expiry_outside_1_to_900_seconds_is_an_error_not_a_panic() {
        for secs in [0, 901, 86_400] {
            let err = builder(Binding::Audience("a".into()))
                .form(SigningForm::PresignedGet {
                    expires_in: Duration::from_secs(secs),
                })
                .sign(&creds(None));
            assert!(matches!(
                err,
                Err(ClientError::InvalidInput { what: "expiry", .. })
            ));
        }
        let fractional = builder(Binding::Audience("a".into()))
            .form(SigningForm::PresignedGet {
                expires_in: Duration::from_millis(1500),
            })
            .sign(&creds(None));
        assert!(fractional.is_err());
    }

    #[test]
    fn same_inputs_sign_the_same_proof() {
        let b = builder(Binding::Audience("aud".into()));
        assert_eq!(
            b.build(&creds(None)).unwrap(),
            b.build(&creds(None)).unwrap()
        );
    }

    #[test]
    fn unusable_binding_values_are_rejected() {
        // Audiences follow the verifier's Audience rule (at most 256 characters).
        for v in ["", " a", "a ", "a\nb", "é", &"x".repeat(257)] {
            assert!(
                builder(Binding::Audience(v.into()))
                    .sign(&creds(None))
                    .is_err(),
                "{v:?} accepted"
            );
        }
        for v in ["", " a", "a ", "a  b", "a\nb", "é", &"x".repeat(5000)] {
            assert!(
                builder(Binding::Challenge(v.into()))
                    .sign(&creds(None))
                    .is_err(),
                "{v:?} accepted"
            );
        }
        assert!(
            builder(Binding::Audience("a b".into()))
                .sign(&creds(None))
                .is_ok()
        );
    }

    #[test]
    fn unusable_credentials_are_rejected_without_echoing_them() {
        let bad = [
            Credentials::from_keys("", SECRET, None),
            Credentials::from_keys("AKID/../", SECRET, None),
            Credentials::from_keys("AKID", "", None),
            Credentials::from_keys("AKID", SECRET, Some("tok\nen".into())),
        ];
        for c in bad {
            let err = builder(Binding::Audience("a".into())).sign(&c).unwrap_err();
            assert!(!err.to_string().contains(SECRET));
            assert!(!err.to_string().contains("tok\nen"));
        }
    }

    #[test]
    fn times_outside_the_x_amz_date_range_are_rejected() {
        let early = UNIX_EPOCH - Duration::from_secs(1);
        assert!(
            builder(Binding::Audience("a".into()))
                .time(early)
                .sign(&creds(None))
                .is_err()
        );
        let late = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert!(
            builder(Binding::Audience("a".into()))
                .time(late)
                .sign(&creds(None))
                .is_err()
        );
    }

    #[test]
    fn k8s_token_is_presigned_for_60_seconds_with_the_cluster_id_signed() {
        let token = k8s_token(&creds(None), "eu-west-1", "my-cluster", at()).unwrap();
        assert!(token.starts_with("k8s-aws-v1."));
        assert!(!token.contains('='));
        let decoded = decode_proof_token(&token).unwrap();
        assert_eq!(decoded.format, ProofFormat::K8sAwsV1);
        let url = decoded.url;
        assert!(url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"
        ));
        assert!(url.contains("%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date="));
        assert!(url.contains(
            "&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature="
        ));
    }
}
