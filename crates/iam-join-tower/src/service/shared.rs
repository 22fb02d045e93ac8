//! What every clone of a layer and its services share: built once by the layer's builder,
//! owned by each service through an `Arc`.

use std::sync::Arc;

use iam_join_assertion::AssertionSigner;

use crate::service::routes::Routes;
use crate::spans::Tracing;
use crate::verifier::Verifier;

/// The layer's settings and verification pipeline.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) routes: Routes,
    pub(crate) default_token: Option<String>,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) identity_headers: bool,
    /// Signs the identity assertion handed to the upstream, when configured.
    pub(crate) signer: Option<Arc<AssertionSigner>>,
    /// Spans of each request, when a tracer is set.
    pub(crate) tracing: Option<Arc<Tracing>>,
}
