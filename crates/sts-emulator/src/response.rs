//! STS answers in both of STS's formats: XML by default, JSON when the request accepts it.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use serde_json::json;

use crate::error::StsError;
use crate::identity::TestIdentity;

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The format the caller asked for with `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Xml,
    Json,
}

impl Format {
    /// JSON when any `Accept` value names `application/json`, else STS's default, XML.
    pub(crate) fn from_accept(headers: &http::HeaderMap) -> Self {
        let json = headers.get_all(header::ACCEPT).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("application/json"))
        });
        if json { Self::Json } else { Self::Xml }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Self::Xml => HeaderValue::from_static("text/xml"),
            Self::Json => HeaderValue::from_static("application/json"),
        }
    }
}

/// 200 with the caller's identity.
pub(crate) fn identity(
    id: &TestIdentity,
    request_id: &str,
    format: Format,
) -> Response<Full<Bytes>> {
    let body = match format {
        Format::Json => json!({
            "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": {
                    "Account": id.account,
                    "Arn": id.arn,
                    "UserId": id.user_id,
                },
                "ResponseMetadata": { "RequestId": request_id },
            }
        })
        .to_string(),
        Format::Xml => format!(
            "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    \
             <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
             </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  \
             </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
            xml_escape(&id.arn),
            xml_escape(&id.user_id),
            xml_escape(&id.account),
            xml_escape(request_id),
        ),
    };
    build(http::StatusCode::OK, format, request_id, body)
}

/// The error's status with STS's `ErrorResponse` body.
pub(crate) fn error(err: &StsError, request_id: &str, format: Format) -> Response<Full<Bytes>> {
    let body = match format {
        Format::Json => json!({
            "Error": {
                "Code": err.code.as_str(),
                "Message": err.message,
                "Type": err.code.fault_type(),
            },
            "RequestId": request_id,
        })
        .to_string(),
        Format::Xml => format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            err.code.fault_type(),
            err.code.as_str(),
            xml_escape(&err.message),
            xml_escape(request_id),
        ),
    };
    build(err.code.status(), format, request_id, body)
}

fn build(
    status: http::StatusCode,
    format: Format,
    request_id: &str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, format.content_type());
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StsErrorCode;

    #[test]
    fn accept_json_selects_json_else_xml() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Format::from_accept(&headers), Format::Xml);
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/xml"));
        assert_eq!(Format::from_accept(&headers), Format::Xml);
        headers.append(header::ACCEPT, HeaderValue::from_static("Application/JSON"));
        assert_eq!(Format::from_accept(&headers), Format::Json);
    }

    #[test]
    fn xml_error_escapes_message_and_uses_sts_shape() {
        let err = StsError::new(StsErrorCode::InvalidAction, "Could not find <op> & 'x'");
        let response = error(&err, "rid", Format::Xml);
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/xml");
        let body = format!("{:?}", response.body());
        assert!(body.contains("&lt;op&gt; &amp; &apos;x&apos;"), "{body}");
    }

    #[test]
    fn server_errors_are_receiver_faults() {
        assert_eq!(StsErrorCode::InternalFailure.fault_type(), "Receiver");
        assert_eq!(StsErrorCode::Throttling.fault_type(), "Sender");
    }
}
