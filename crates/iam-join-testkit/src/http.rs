//! Driving an `IamJoinLayer` with `oneshot` around an inner service that echoes what it saw.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_core::VerifiedIdentity;
use iam_join_tower::{ClientAddr, IamJoinLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

/// The inner service: answers 200 with JSON `{"headers": {name: value}, "identity":
/// {"account", "arn"} | null}`, the request headers it received and the verified identity.
pub fn echo_service() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        let identity = req.extensions().get::<VerifiedIdentity>().map(
            |id| serde_json::json!({"account": id.identity.account(), "arn": id.identity.arn()}),
        );
        let body = serde_json::json!({"headers": headers, "identity": identity});
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
    })
}

/// A response, its body read as JSON (`Null` if empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body as JSON.
    pub json: serde_json::Value,
}

impl Reply {
    /// `error.code`, or `""` for a success.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.message`.
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// The account the inner service saw, if admitted.
    pub fn account(&self) -> Option<&str> {
        self.json["identity"]["account"].as_str()
    }

    /// The ARN the inner service saw, if admitted.
    pub fn arn(&self) -> Option<&str> {
        self.json["identity"]["arn"].as_str()
    }
}

/// A request to `path` from 127.0.0.1:40000, with `proof` as `Authorization: Bearer`.
///
/// # Panics
/// Never in practice (the client address is a literal).
pub fn request(path: &str, proof: Option<&str>) -> http::request::Builder {
    let mut b = Request::builder().uri(path);
    if let Some(p) = proof {
        b = b.header("authorization", format!("Bearer {p}"));
    }
    b.extension(ClientAddr(
        "127.0.0.1:40000".parse().expect("a socket address"),
    ))
}

/// Sends `req` through `layer` around [`echo_service`].
pub async fn send(layer: &IamJoinLayer, req: Request<Full<Bytes>>) -> Reply {
    let resp = layer
        .layer(echo_service())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

/// `GET path` with `proof` as a bearer token.
pub async fn get(layer: &IamJoinLayer, path: &str, proof: Option<&str>) -> Reply {
    let req = request(path, proof)
        .body(Full::default())
        .expect("a valid request");
    send(layer, req).await
}
