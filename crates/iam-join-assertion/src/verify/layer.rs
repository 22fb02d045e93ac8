//! A tower layer for the upstream: admits a request only with a valid assertion, and hands the
//! claims to the inner service as a [`VerifiedAssertion`] extension.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use time::OffsetDateTime;
use tower_layer::Layer;
use tower_service::Service;

use super::{AssertionError, AssertionVerifier, BoxFuture};
use crate::config::DEFAULT_HEADER;

/// Wraps a service so that only requests with a valid assertion reach it.
///
/// A refusal is an ordinary response (`401`, or `503` when the key set is unavailable) with
/// `{"error": {"code", "message"}}`, so the layer fits axum without `HandleErrorLayer`.
#[derive(Clone, Debug)]
pub struct AssertionLayer {
    verifier: Arc<AssertionVerifier>,
    header: HeaderName,
}

impl AssertionLayer {
    /// Reads the assertion from `x-iam-join-assertion`.
    pub fn new(verifier: Arc<AssertionVerifier>) -> Self {
        Self {
            verifier,
            header: HeaderName::from_static(DEFAULT_HEADER),
        }
    }

    /// Reads the assertion from another header (as configured on the verifier's side).
    pub fn with_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }
}

impl<S> Layer<S> for AssertionLayer {
    type Service = AssertionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AssertionService {
            inner,
            verifier: self.verifier.clone(),
            header: self.header.clone(),
        }
    }
}

/// The service made by [`AssertionLayer`].
#[derive(Clone, Debug)]
pub struct AssertionService<S> {
    inner: S,
    verifier: Arc<AssertionVerifier>,
    header: HeaderName,
}

impl<S> AssertionService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AssertionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Use the service that was polled ready; leave a clone for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        // Read the header before the future, so the request is not borrowed across an await.
        let assertion = assertion_header(&self.header, request.headers());
        Box::pin(async move {
            let verified = match assertion {
                Ok(assertion) => verifier.verify(&assertion, OffsetDateTime::now_utc()).await,
                Err(refusal) => Err(refusal),
            };
            match verified {
                Ok(verified) => {
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.to_response()),
            }
        })
    }
}

/// The one assertion header's value; two headers are refused rather than one picked.
fn assertion_header(
    header: &HeaderName,
    headers: &http::HeaderMap,
) -> Result<String, AssertionError> {
    let mut values = headers.get_all(header).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header) {
            AssertionError::Malformed("more than one assertion header")
        } else {
            AssertionError::Missing
        });
    };
    value
        .to_str()
        .map(str::to_owned)
        .map_err(|_| AssertionError::Malformed("header is not ASCII"))
}

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::FromRequestParts;
    use axum::response::{IntoResponse, Response};
    use http::request::Parts;

    use super::super::{AssertionError, VerifiedAssertion};

    impl IntoResponse for AssertionError {
        fn into_response(self) -> Response {
            self.to_response()
        }
    }

    /// Takes the claims [`AssertionLayer`](super::AssertionLayer) verified; without the layer in
    /// front every request is refused (`assertion_missing`), never let through.
    impl<S: Send + Sync> FromRequestParts<S> for VerifiedAssertion {
        type Rejection = AssertionError;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<VerifiedAssertion>()
                .cloned()
                .ok_or(AssertionError::Missing)
        }
    }
}
