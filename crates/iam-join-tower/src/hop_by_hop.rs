//! Hop-by-hop headers (RFC 9110 §7.6.1): the one reading of `Connection` and the one list of
//! headers that describe a single connection, for the layer (which must not let `Connection`
//! name an identity header) and the proxy (which must not forward any of them).

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one connection and must not be forwarded, plus the `Proxy-*` family.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The options of every `Connection` header, trimmed, empty ones left out, as sent (case is
/// the caller's business: compare with `eq_ignore_ascii_case`). Values that are not visible
/// ASCII are skipped.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes [`HOP_BY_HOP`] and every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn connection_options_are_split_trimmed_and_non_empty() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, " keep-alive ,, X-Hop".parse().unwrap());
        h.append(header::CONNECTION, "Upgrade".parse().unwrap());
        let tokens: Vec<&str> = connection_tokens(&h).collect();
        assert_eq!(tokens, ["keep-alive", "X-Hop", "Upgrade"]);
    }

    #[test]
    fn hop_by_hop_and_named_headers_are_removed_end_to_end_ones_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            "x-secret-hop, Keep-Alive".parse().unwrap(),
        );
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("proxy-authorization", "Basic x".parse().unwrap());
        h.insert(header::ACCEPT, "*/*".parse().unwrap());
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }
}
