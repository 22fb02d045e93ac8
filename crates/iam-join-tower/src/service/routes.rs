//! Path rules: which requests are the layer's own endpoints, which are public, and which need a
//! challenge-bound proof. Every rule about request paths lives here.
//!
//! Two forms of a path are used:
//! - the *normal form* ([`normal_form`]): `%XX` of unreserved bytes decoded, `.`/`..` resolved,
//!   repeated slashes merged. A request is public only if its raw path already is in normal form
//!   and matches a public pattern, so a public pattern never admits a path an upstream could
//!   resolve elsewhere.
//! - the *loose form* ([`loose_form`]): the normal form, lower-cased, without a trailing slash.
//!   Challenge patterns and paths are both compared in this form, so every spelling that an
//!   upstream could normalise onto a challenge path needs a challenge.

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;

/// The headers in which nginx `auth_request` (`X-Original-URI`) and Traefik `ForwardAuth`
/// (`X-Forwarded-Uri`) name the original request.
const ORIGINAL_URI_HEADERS: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];

/// The path of the original request a front proxy names (`X-Original-URI`, then
/// `X-Forwarded-Uri`), for the record; routing reads every value itself.
pub(crate) fn original_path(headers: &HeaderMap) -> Option<&str> {
    ORIGINAL_URI_HEADERS
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok().and_then(path_of_uri))
}

/// A public or challenge path pattern: an exact path (`/healthz`), or a prefix ending in `*`
/// (`/v1/webapi/host/*`). Parsed and checked once.
///
/// ```
/// use iam_join_tower::PathPattern;
/// let p: PathPattern = "/v1/webapi/host/*".parse().unwrap();
/// assert_eq!(p.as_str(), "/v1/webapi/host/*");
/// assert!("v1/no-leading-slash".parse::<PathPattern>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    raw: String,
    /// The pattern without its `*`; in normal form (checked when parsed).
    stem: String,
    /// `stem` in loose form.
    loose_stem: String,
    prefix: bool,
}

/// Why a string is not a [`PathPattern`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("path pattern {pattern:?} {reason}")]
pub struct InvalidPathPattern {
    pattern: String,
    reason: &'static str,
}

impl FromStr for PathPattern {
    type Err = InvalidPathPattern;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidPathPattern {
            pattern: s.to_owned(),
            reason,
        };
        let (stem, prefix) = match s.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (s, false),
        };
        if !stem.starts_with('/') {
            return Err(invalid("must start with '/'"));
        }
        if !stem.bytes().all(|b| b.is_ascii_graphic()) || stem.contains(['*', '?', '#']) {
            return Err(invalid(
                "may hold only printable ASCII without '?', '#', and '*' only at the end",
            ));
        }
        if normal_form(stem).as_deref() != Some(stem) {
            return Err(invalid(
                "must be in normal form (no '.' or '..' segments, no repeated slashes, \
                 no percent-encoding of unreserved characters, no ';', '\\', %2F or %5C)",
            ));
        }
        let loose_stem = loose_form(stem).unwrap_or_else(|| stem.to_owned());
        Ok(Self {
            raw: s.to_owned(),
            stem: stem.to_owned(),
            loose_stem,
            prefix,
        })
    }
}

impl<'de> serde::Deserialize<'de> for PathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.raw)
    }
}

impl PathPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Strict match, for public paths: the raw path must be in normal form and match as written.
    fn matches_strictly(&self, path: &str) -> bool {
        normal_form(path).as_deref() == Some(path)
            && if self.prefix {
                path.starts_with(&self.stem)
            } else {
                path == self.stem
            }
    }

    /// Loose match, for challenge paths: `loose_path` is a path in loose form.
    fn matches_loosely(&self, loose_path: &str) -> bool {
        if !self.prefix {
            return loose_path == self.loose_stem;
        }
        if self.stem.ends_with('/') {
            // `/host/*` covers `/host` itself (trailing slashes are insignificant) and all below.
            let dir = self.loose_stem.trim_end_matches('/');
            loose_path == self.loose_stem
                || loose_path
                    .strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
        } else {
            loose_path.starts_with(&self.loose_stem)
        }
    }
}

/// The layer's own endpoints under its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST {prefix}/challenge`
    Challenge,
    /// `GET {prefix}/whoami`
    WhoAmI,
    /// `{prefix}/verify` and, for Envoy `ext_authz` with `path_prefix`, `{prefix}/verify/<rest>`.
    Verify,
    /// `GET {prefix}/jwks.json` and `GET /.well-known/jwks.json`: the assertion keys (public;
    /// only routed when assertions are signed).
    Jwks,
}

/// Where upstreams look for the assertion keys without knowing the prefix (RFC 8615).
pub(crate) const WELL_KNOWN_JWKS: &str = "/.well-known/jwks.json";

/// What a request is, by its path (and, for `/verify`, the original request it names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// One of the layer's endpoints, or `None` for the inner service.
    pub(crate) endpoint: Option<Endpoint>,
    /// Passed through without a proof.
    pub(crate) public: bool,
    /// Admitted only with a challenge-bound proof.
    pub(crate) require_challenge: bool,
}

/// The compiled path rules of a layer.
#[derive(Clone, Debug)]
pub(crate) struct Routes {
    prefix: String,
    public: Vec<PathPattern>,
    challenge: Vec<PathPattern>,
    jwks: bool,
}

impl Routes {
    pub(crate) fn new(
        prefix: String,
        public: Vec<PathPattern>,
        challenge: Vec<PathPattern>,
    ) -> Self {
        Self {
            prefix,
            public,
            challenge,
            jwks: false,
        }
    }

    /// Also answer the JWKS paths (when a signer is set); otherwise they belong to the inner
    /// service.
    pub(crate) fn with_jwks(mut self, on: bool) -> Self {
        self.jwks = on;
        self
    }

    /// Classifies a request by its raw `path` and, for `/verify`, the original request named by
    /// `X-Original-URI` / `X-Forwarded-Uri` or the rest of the path. Those can only add the
    /// challenge requirement, never lift one.
    pub(crate) fn route(&self, path: &str, headers: &HeaderMap) -> Route {
        let (endpoint, rest) = self.endpoint(path);
        let mut require_challenge = self.needs_challenge(path);
        if endpoint == Some(Endpoint::Verify) {
            require_challenge = require_challenge
                || rest.is_some_and(|r| self.needs_challenge(r))
                || self.original_uri_needs_challenge(headers);
        }
        let public = endpoint.is_none()
            && !require_challenge
            && self.public.iter().any(|p| p.matches_strictly(path));
        Route {
            endpoint,
            public,
            require_challenge,
        }
    }

    /// The endpoint named by `path`, with the original path for `{prefix}/verify/<rest>`.
    fn endpoint<'p>(&self, path: &'p str) -> (Option<Endpoint>, Option<&'p str>) {
        if self.jwks && path == WELL_KNOWN_JWKS {
            return (Some(Endpoint::Jwks), None);
        }
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return (None, None);
        };
        match rest {
            "/challenge" => (Some(Endpoint::Challenge), None),
            "/jwks.json" if self.jwks => (Some(Endpoint::Jwks), None),
            "/whoami" => (Some(Endpoint::WhoAmI), None),
            "/verify" => (Some(Endpoint::Verify), None),
            _ => match rest.strip_prefix("/verify") {
                // Keep the `/` so the original path is absolute.
                Some(original) if original.starts_with('/') => {
                    (Some(Endpoint::Verify), Some(original))
                }
                _ => (None, None),
            },
        }
    }

    /// Whether any spelling of `path` an upstream could normalise lies under a challenge
    /// pattern. A path whose meaning depends on the upstream (encoded separators, `;`
    /// parameters, bad escapes) needs a challenge wherever challenge paths are configured.
    pub(crate) fn needs_challenge(&self, path: &str) -> bool {
        if self.challenge.is_empty() {
            return false;
        }
        match loose_form(path) {
            Some(loose) => self.challenge.iter().any(|p| p.matches_loosely(&loose)),
            None => true,
        }
    }

    fn original_uri_needs_challenge(&self, headers: &HeaderMap) -> bool {
        ORIGINAL_URI_HEADERS.iter().any(|name| {
            headers
                .get_all(*name)
                .iter()
                .any(|v| match v.to_str().ok().and_then(path_of_uri) {
                    Some(path) => self.needs_challenge(path),
                    // Unreadable: assume the worst.
                    None => !self.challenge.is_empty(),
                })
        })
    }
}

/// The path of a request target in origin form (`/a?b`) or absolute form (`https://h/a?b`).
fn path_of_uri(uri: &str) -> Option<&str> {
    if uri.starts_with('/') {
        return uri.split(['?', '#']).next();
    }
    let after_scheme = uri.split_once("://")?.1;
    let path_start = after_scheme.find('/')?;
    after_scheme[path_start..].split(['?', '#']).next()
}

/// The path as an upstream that normalises would see it: `%XX` of unreserved characters
/// decoded, `.` and `..` resolved, repeated slashes merged, a trailing slash kept. `None` for
/// paths whose meaning depends on the upstream: an encoded or literal separator (`%2f`, `%5c`,
/// `\`), `;` path parameters (some servers strip them before resolving `..`: `/a/..;/b`), or a
/// malformed escape.
pub(crate) fn normal_form(path: &str) -> Option<String> {
    if path.contains(['\\', ';']) {
        return None;
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    let last = decoded.rsplit('/').next().unwrap_or("");
    let names_a_directory = decoded.ends_with('/') || last == "." || last == "..";
    if names_a_directory && out != "/" {
        out.push('/');
    }
    Some(out)
}

/// The normal form, lower-cased and without a trailing slash: the form in which challenge
/// patterns and paths are compared.
pub(crate) fn loose_form(path: &str) -> Option<String> {
    let normal = normal_form(path)?.to_ascii_lowercase();
    Some(match normal.trim_end_matches('/') {
        "" => "/".to_owned(),
        t => t.to_owned(),
    })
}

/// Decodes `%XX` escapes of unreserved bytes (RFC 3986 §2.3), which every upstream may decode;
/// other escapes stay as they are. `None` for an escape of `/`, `\` or `;` and for a `%` not
/// followed by two hex digits.
fn decode_unreserved(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3)?;
        let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if matches!(value, b'/' | b'\\' | b';') {
            return None;
        }
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            out.push(value);
        } else {
            out.extend_from_slice(&bytes[i..i + 3]);
        }
        i += 3;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests;
