use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

const PREFIX: &str = "/v1/iam-join";

fn patterns(list: &[&str]) -> Vec<PathPattern> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

fn routes(public: &[&str], challenge: &[&str]) -> Routes {
    Routes::new(PREFIX.to_owned(), patterns(public), patterns(challenge))
}

fn route(routes: &Routes, path: &str) -> Route {
    routes.route(path, &HeaderMap::new())
}

/// Spellings an upstream may normalise onto `/v1/webapi/host/` (or below it).
const HOST_SPELLINGS: &[&str] = &[
    "/v1/webapi/host/",
    "/v1/webapi/host",
    "/v1/webapi/host//",
    "/v1/webapi/host/join",
    "/v1/webapi/host//join/",
    "/V1/WebApi/Host/",
    "/V1/WEBAPI/HOST",
    "//v1/webapi/host/",
    "//v1//webapi//host",
    "/x/../v1/webapi/host/",
    "/./v1/./webapi/host/.",
    "/v1/webapi/host/x/..",
    "/../v1/webapi/host/",
    "/v1/webapi/%68ost/",
    "/v1/webapi/%68OST",
    "/%76%31/%77ebapi/host/join",
    "/x/%2e%2e/v1/webapi/host/",
    "/x/%2E./v1/webapi/host",
    "/v1/webapi/host/%2e",
    "/v1/webapi/ho%73t/join",
];

/// Paths that are not challenge paths under any normalisation.
const OTHER_PATHS: &[&str] = &[
    "/",
    "/v1/webapi",
    "/v1/webapi/",
    "/v1/webapi/hostile",
    "/v1/webapi/hos",
    "/v1/webapi/host-x/join",
    "/v1/webapi/host/../x",
    "/app",
];

#[test]
fn every_spelling_of_a_challenge_prefix_needs_a_challenge() {
    for pattern in ["/v1/webapi/host/*", "/v1/WebApi/Host/*", "/v1/webapi/host*"] {
        let r = routes(&[], &[pattern]);
        for path in HOST_SPELLINGS {
            assert!(
                route(&r, path).require_challenge,
                "{pattern} × {path} must need a challenge"
            );
        }
    }
}

#[test]
fn exact_challenge_paths_match_every_spelling_of_themselves() {
    for pattern in ["/v1/webapi/host", "/v1/webapi/host/"] {
        let r = routes(&[], &[pattern]);
        for path in HOST_SPELLINGS.iter().filter(|p| !p.contains("join")) {
            assert!(route(&r, path).require_challenge, "{pattern} × {path}");
        }
        assert!(!route(&r, "/v1/webapi/host/join").require_challenge);
    }
}

#[test]
fn other_paths_need_no_challenge() {
    for pattern in ["/v1/webapi/host/*", "/v1/webapi/host"] {
        let r = routes(&[], &[pattern]);
        for path in OTHER_PATHS {
            assert!(!route(&r, path).require_challenge, "{pattern} × {path}");
        }
    }
}

#[test]
fn paths_whose_meaning_depends_on_the_upstream_need_a_challenge() {
    let r = routes(&["/*"], &["/join"]);
    for path in [
        "/app%2fjoin",
        "/app%2Fx",
        "/a%5cb",
        "/a\\b",
        "/join;x=1",
        "/a/..;/join",
        "/a%3b",
        "/a%zz",
        "/a%4",
    ] {
        let got = route(&r, path);
        assert!(got.require_challenge && !got.public, "{path}: {got:?}");
    }
    assert!(
        !routes(&[], &[])
            .route("/a%2fb", &HeaderMap::new())
            .require_challenge
    );
}

#[test]
fn public_paths_are_strict() {
    let r = routes(&["/public/*", "/healthz"], &["/public/join"]);
    for path in ["/public/", "/public/x", "/public/x/y", "/healthz"] {
        assert!(route(&r, path).public, "{path} is public");
    }
    for path in [
        "/public",
        "/Public/x",
        "/HEALTHZ",
        "/healthz/",
        "//public/x",
        "/public//x",
        "/public/./x",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%78",
        "/public/x;a=b",
        "/x/../public/x",
        // A challenge path is never public, even under a public prefix.
        "/public/join",
        "/public/JOIN/",
    ] {
        assert!(!route(&r, path).public, "{path} is not public");
    }
}

#[test]
fn endpoints_are_recognised_under_the_prefix_only() {
    let r = routes(&["/*"], &[]);
    for (path, endpoint) in [
        ("/v1/iam-join/challenge", Some(Endpoint::Challenge)),
        ("/v1/iam-join/whoami", Some(Endpoint::WhoAmI)),
        ("/v1/iam-join/verify", Some(Endpoint::Verify)),
        ("/v1/iam-join/verify/", Some(Endpoint::Verify)),
        ("/v1/iam-join/verify/v1/app", Some(Endpoint::Verify)),
        ("/v1/iam-join/verifyx", None),
        ("/v1/iam-join/whoami/", None),
        ("/v1/iam-join", None),
        ("/v2/iam-join/verify", None),
    ] {
        let got = route(&r, path);
        assert_eq!(got.endpoint, endpoint, "{path}");
        assert_eq!(
            got.public,
            endpoint.is_none(),
            "{path}: endpoints are never public"
        );
    }
}

#[test]
fn verify_applies_challenge_paths_to_the_envoy_path_suffix() {
    let r = routes(&[], &["/v1/webapi/host/*"]);
    for path in HOST_SPELLINGS {
        let verify = format!("{PREFIX}/verify{path}");
        let got = route(&r, &verify);
        assert_eq!(got.endpoint, Some(Endpoint::Verify));
        assert!(got.require_challenge, "{verify}");
    }
    assert!(!route(&r, "/v1/iam-join/verify/v1/app").require_challenge);
}

#[test]
fn verify_applies_challenge_paths_to_the_original_uri_headers() {
    let r = routes(&[], &["/v1/webapi/host/*"]);
    for header in ORIGINAL_URI_HEADERS {
        for path in HOST_SPELLINGS {
            for uri in [
                path.to_string(),
                format!("{path}?a=b"),
                format!("https://proxy.example.com{path}"),
            ] {
                let mut headers = HeaderMap::new();
                headers.insert(header, HeaderValue::from_str(&uri).unwrap());
                headers.append(header, HeaderValue::from_static("/app"));
                assert!(
                    r.route("/v1/iam-join/verify", &headers).require_challenge,
                    "{header}: {uri}"
                );
                // The header only matters to /verify.
                assert!(!r.route("/app", &headers).require_challenge);
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(header, HeaderValue::from_static("/app?x=/v1/webapi/host/"));
        assert!(!r.route("/v1/iam-join/verify", &headers).require_challenge);
        headers.insert(header, HeaderValue::from_static("not a uri"));
        assert!(r.route("/v1/iam-join/verify", &headers).require_challenge);
    }
}

#[test]
fn patterns_are_validated_once() {
    for bad in [
        "", "*", "join", "/a*b", "/a/**", "/a?x", "/a#x", "/a b", "/a//b", "/a/./b", "/a/../b",
        "/%61", "/a%2fb", "/a;b", "/a\\b",
    ] {
        assert!(
            bad.parse::<PathPattern>().is_err(),
            "{bad:?} must be refused"
        );
    }
    for good in ["/", "/*", "/join", "/v1/webapi/host/*", "/a/b/", "/J%20oin"] {
        let p: PathPattern = good.parse().unwrap();
        assert_eq!(p.as_str(), good);
        assert_eq!(p.to_string(), good);
    }
    let p: Vec<PathPattern> = serde_json::from_str(r#"["/a/*", "/b"]"#).unwrap();
    assert_eq!(p.len(), 2);
    assert!(serde_json::from_str::<PathPattern>(r#""a""#).is_err());
}

/// An upstream's normaliser, written independently of [`normal_form`]: decode escapes of
/// unreserved bytes, lower-case, RFC 3986 §5.2.4 `remove_dot_segments` on slash-merged input,
/// no trailing slash.
fn upstream_normal_form(path: &str) -> String {
    let mut decoded = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hex: String = chars.by_ref().take(2).collect();
            match u8::from_str_radix(&hex, 16) {
                Ok(b) if b.is_ascii_alphanumeric() || "-._~".contains(b as char) => {
                    decoded.push(b as char)
                }
                _ => {
                    decoded.push('%');
                    decoded.push_str(&hex);
                }
            }
        } else {
            decoded.push(c.to_ascii_lowercase());
        }
    }
    let mut input = decoded.to_ascii_lowercase();
    while input.contains("//") {
        input = input.replace("//", "/");
    }
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input = input[2..].to_owned();
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") || input == "/.." {
            input = format!("/{}", &input[if input == "/.." { 3 } else { 4 }..]);
            output.truncate(output.rfind('/').unwrap_or(0));
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = input[end..].to_owned();
        }
    }
    let trimmed = output.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "v1", "V1", "%76%31", "webapi", "WebApi", "w%65bapi", "host", "HOST", "%68ost", "ho%73t",
        "hostile", "join", "x", "", ".", "..", "%2e", "%2E%2e", ".%2e", "a b",
    ])
}

fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 0..8), any::<bool>()).prop_map(|(segs, trailing)| {
        let mut p = format!("/{}", segs.join("/"));
        if trailing {
            p.push('/');
        }
        p.replace(' ', "%20")
    })
}

proptest! {
    #[test]
    fn what_an_upstream_resolves_under_a_challenge_pattern_needs_a_challenge(path in path()) {
        let upstream = upstream_normal_form(&path);
        for (pattern, covers) in [
            ("/v1/webapi/host/*", upstream == "/v1/webapi/host" || upstream.starts_with("/v1/webapi/host/")),
            ("/V1/WebApi/Host", upstream == "/v1/webapi/host"),
            ("/join", upstream == "/join"),
        ] {
            let r = routes(&["/*"], &[pattern]);
            let got = route(&r, &path);
            if covers {
                prop_assert!(got.require_challenge, "{} × {} (upstream sees {})", pattern, path, upstream);
                prop_assert!(!got.public);
            }
            let verify = format!("{PREFIX}/verify{path}");
            if covers {
                prop_assert!(route(&r, &verify).require_challenge, "{}", verify);
            }
        }
    }

    #[test]
    fn a_public_path_is_its_own_normal_form(path in path()) {
        let r = routes(&["/*"], &[]);
        if route(&r, &path).public {
            let normal = normal_form(&path);
            prop_assert_eq!(normal.as_deref(), Some(path.as_str()));
        }
    }
}

#[test]
fn jwks_paths_are_endpoints_only_when_a_signer_is_set() {
    let with = routes(&["/*"], &[]).with_jwks(true);
    let without = routes(&["/*"], &[]);
    for (path, endpoint) in [
        ("/v1/iam-join/jwks.json", Some(Endpoint::Jwks)),
        ("/.well-known/jwks.json", Some(Endpoint::Jwks)),
        ("/v1/iam-join/jwks.json/", None),
        ("/v1/iam-join/JWKS.json", None),
        ("/.well-known/jwks.json/x", None),
        ("/v2/iam-join/jwks.json", None),
    ] {
        assert_eq!(route(&with, path).endpoint, endpoint, "{path}");
        assert_eq!(
            route(&without, path).endpoint,
            None,
            "{path} without a signer"
        );
    }
}
