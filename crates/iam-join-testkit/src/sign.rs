//! Proofs signed by hand with aws-sigv4, for tests that need shapes the client library refuses
//! to make (other hosts, regions, services, headers or bodies).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use iam_join_core::token::{ProofFormat, RawSignedRequest};

/// The default STS host proofs are signed for.
pub const HOST: &str = "sts.us-west-2.amazonaws.com";
/// Its region.
pub const REGION: &str = "us-west-2";
/// The only POST body (and presigned query head) a proof may have.
pub const GCI: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The content type a signed POST proof signs.
pub const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The audience binding header.
pub const AUDIENCE_HEADER: &str = "x-iam-join-audience";

/// What a hand-made signature covers. Every header in `headers` is signed (none is excluded).
#[derive(Clone, Debug)]
pub struct HandSigned<'a> {
    /// The signing credentials.
    pub creds: Credentials,
    /// The host of the signed URL.
    pub host: &'a str,
    /// The credential scope's region.
    pub region: &'a str,
    /// The credential scope's service.
    pub service: &'a str,
    /// Headers signed besides `host` (and, for a POST, `x-amz-date` and the session token, which
    /// aws-sigv4 adds).
    pub headers: Vec<(&'a str, &'a str)>,
    /// The audience [`audience_only`](Self::audience_only) binds to.
    pub audience: &'a str,
    /// The signing time.
    pub at: SystemTime,
}

impl<'a> HandSigned<'a> {
    /// A POST-shaped signature for `creds` on [`HOST`] (`sts`, [`REGION`]), now, signing
    /// `content-type` ([`FORM`]) and `x-iam-join-audience: <audience>`.
    pub fn new(creds: Credentials, audience: &'a str) -> Self {
        Self {
            creds,
            host: HOST,
            region: REGION,
            service: "sts",
            headers: vec![("content-type", FORM), (AUDIENCE_HEADER, audience)],
            audience,
            at: SystemTime::now(),
        }
    }

    /// Signs `content-type` ([`FORM`]) and the binding header `binding` (name, value).
    pub fn bound_by(mut self, binding: (&'a str, &'a str)) -> Self {
        self.headers = vec![("content-type", FORM), binding];
        self
    }

    /// For presigned GETs: only the audience header is signed besides `host`.
    pub fn audience_only(mut self) -> Self {
        self.headers = vec![(AUDIENCE_HEADER, self.audience)];
        self
    }

    fn params<'p>(
        &'p self,
        identity: &'p Identity,
        settings: SigningSettings,
    ) -> SigningParams<'p> {
        v4::SigningParams::builder()
            .identity(identity)
            .region(self.region)
            .name(self.service)
            .time(self.at)
            .settings(settings)
            .build()
            .expect("complete signing parameters")
            .into()
    }

    fn signed_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A signed POST of `body` with `self.headers` signed.
    pub fn post_with_body(&self, body: &str) -> RawSignedRequest {
        let identity = self.creds.clone().into();
        let url = format!("https://{}/", self.host);
        let signable = SignableRequest::new(
            "POST",
            &url,
            self.headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("a signable POST");
        let mut settings = SigningSettings::default();
        settings.excluded_headers = None;
        let p = self.params(&identity, settings);
        let (instructions, _) = sign(signable, &p).expect("signed").into_parts();
        let mut out = self.signed_headers();
        for (n, v) in instructions.headers() {
            let n = n.to_ascii_lowercase();
            match out.iter_mut().find(|(k, _)| *k == n) {
                Some(slot) => slot.1 = v.to_owned(),
                None => out.push((n, v.to_owned())),
            }
        }
        RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "POST".into(),
            url,
            headers: out,
            body: body.into(),
        }
    }

    /// A signed POST of [`GCI`].
    pub fn post(&self) -> RawSignedRequest {
        self.post_with_body(GCI)
    }

    /// A presigned GET of `query` with `self.headers` signed, valid `expires` seconds.
    pub fn presign_query(&self, query: &str, expires: u64) -> RawSignedRequest {
        let identity = self.creds.clone().into();
        let url = format!("https://{}/?{query}", self.host);
        let signable = SignableRequest::new(
            "GET",
            &url,
            self.headers.iter().copied(),
            SignableBody::Bytes(&[]),
        )
        .expect("a signable GET");
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        settings.excluded_headers = None;
        let p = self.params(&identity, settings);
        let (instructions, _) = sign(signable, &p).expect("signed").into_parts();
        let mut req = http::Request::builder()
            .uri(&url)
            .body(())
            .expect("a request for the URL");
        instructions.apply_to_request_http1x(&mut req);
        RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "GET".into(),
            url: format!(
                "https://{}{}",
                self.host,
                req.uri().path_and_query().expect("a path and query")
            ),
            headers: self.signed_headers(),
            body: String::new(),
        }
    }

    /// A presigned GET of [`GCI`], valid `expires` seconds.
    pub fn presign(&self, expires: u64) -> RawSignedRequest {
        self.presign_query(GCI, expires)
    }
}
