//! STS answers (DESIGN §4 step 9): strict JSON and XML parsing chosen by content type, never a
//! lenient scan of one format inside another (CVE-2020-16250), and the mapping of errors to
//! "rejected" (a definitive no) or "unavailable" (retry later).

use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde::Deserialize;

use crate::hosts::StsHost;
use crate::identity::{CallerIdentity, StsAnswer};

/// The STS XML namespace.
pub const STS_XML_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Largest STS answer read (DESIGN §4 step 8).
pub const MAX_STS_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an STS answer did not yield an identity.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StsFailure {
    /// STS refused the request: a definitive answer about this proof (cacheable briefly).
    #[error("STS rejected the proof ({code})")]
    Rejected {
        /// STS's error code (`SignatureDoesNotMatch`, `InvalidClientTokenId`, ...), sanitised.
        code: String,
    },
    /// STS throttled us or failed: retry later, never cache.
    #[error("STS is unavailable: {reason}")]
    Unavailable {
        /// A short reason (status or error code; no secrets).
        reason: String,
    },
    /// A 200 answer that is not a well-formed, consistent identity. Treated as unavailable
    /// (the caller did nothing wrong that it could fix) and never cached.
    #[error("STS answer is invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

fn invalid(reason: impl Into<String>) -> StsFailure {
    StsFailure::Invalid {
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

fn format_of(content_type: Option<&str>) -> Option<Format> {
    let media = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "application/x-amz-json-1.0" | "application/x-amz-json-1.1" => {
            Some(Format::Json)
        }
        "text/xml" | "application/xml" => Some(Format::Xml),
        _ => None,
    }
}

const THROTTLING_CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
];

/// Parses STS's answer to a proof sent to `host` into a cross-checked identity.
pub fn parse_sts_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    host: &StsHost,
) -> Result<CallerIdentity, StsFailure> {
    if body.len() > MAX_STS_RESPONSE_BYTES {
        return Err(invalid("answer is larger than 64 KiB"));
    }
    let format = format_of(content_type);
    match status {
        200 => {
            let answer = match format {
                Some(Format::Json) => parse_json_answer(body)?,
                Some(Format::Xml) => parse_xml_answer(body)?,
                None => return Err(invalid("200 answer is neither JSON nor XML")),
            };
            CallerIdentity::from_answer(answer, host).map_err(|e| invalid(e.0))
        }
        408 | 429 => Err(StsFailure::Unavailable {
            reason: format!("HTTP {status}"),
        }),
        400..=499 => {
            let code = format
                .and_then(|f| error_code(f, body))
                .unwrap_or_else(|| format!("HTTP{status}"));
            if THROTTLING_CODES.contains(&code.as_str()) {
                Err(StsFailure::Unavailable { reason: code })
            } else {
                Err(StsFailure::Rejected { code })
            }
        }
        500..=599 => Err(StsFailure::Unavailable {
            reason: format!("HTTP {status}"),
        }),
        _ => Err(invalid(format!("unexpected HTTP status {status}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEnvelope {
    #[serde(rename = "GetCallerIdentityResponse")]
    response: JsonResponse,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonResponse {
    #[serde(rename = "GetCallerIdentityResult")]
    result: JsonResult,
    #[serde(rename = "ResponseMetadata", default)]
    _metadata: Option<JsonMetadata>,
}

#[derive(Deserialize)]
struct JsonMetadata {
    #[serde(rename = "RequestId", default)]
    _request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonResult {
    #[serde(rename = "Account")]
    account: String,
    #[serde(rename = "Arn")]
    arn: String,
    #[serde(rename = "UserId")]
    user_id: String,
}

fn parse_json_answer(body: &[u8]) -> Result<StsAnswer, StsFailure> {
    // Derived structs reject duplicate keys and, with deny_unknown_fields, any other key.
    let env: JsonEnvelope = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("JSON answer: {}", e.classify_name())))?;
    let r = env.response.result;
    non_empty(StsAnswer {
        account: r.account,
        arn: r.arn,
        user_id: r.user_id,
    })
}

trait ClassifyName {
    fn classify_name(&self) -> String;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> String {
        // The message may quote answer content; keep only where it failed.
        format!(
            "not the GetCallerIdentity shape (line {}, column {})",
            self.line(),
            self.column()
        )
    }
}

fn non_empty(a: StsAnswer) -> Result<StsAnswer, StsFailure> {
    if a.account.is_empty() || a.arn.is_empty() || a.user_id.is_empty() {
        return Err(invalid("Account, Arn and UserId must not be empty"));
    }
    Ok(a)
}

/// Where the XML walker is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum XmlState {
    BeforeRoot,
    InRoot,
    InResult,
    InField(usize),
    InMetadata(u32),
    AfterRoot,
}

const FIELDS: [&str; 3] = ["Account", "Arn", "UserId"];

fn parse_xml_answer(body: &[u8]) -> Result<StsAnswer, StsFailure> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("XML answer is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut state = XmlState::BeforeRoot;
    let mut values: [Option<String>; 3] = [None, None, None];
    let mut seen_result = false;
    let mut seen_metadata = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| invalid("XML answer is not well formed"))?;
        match (state, event) {
            (_, Event::Eof) => break,
            (XmlState::BeforeRoot, Event::Decl(_)) | (_, Event::Comment(_)) => {}
            (_, Event::DocType(_) | Event::PI(_) | Event::CData(_) | Event::Decl(_)) => {
                return Err(invalid(
                    "XML answer has a DOCTYPE, CDATA or processing instruction",
                ));
            }
            (XmlState::BeforeRoot, Event::Start(e)) => {
                if e.name().as_ref() != "GetCallerIdentityResponse" {
                    return Err(invalid("XML root is not GetCallerIdentityResponse"));
                }
                for attr in e.attributes() {
                    let attr = attr.map_err(|_| invalid("XML attribute is not well formed"))?;
                    if attr.key.as_ref() != "xmlns" || attr.value.as_ref() != STS_XML_NAMESPACE {
                        return Err(invalid("XML root has an unexpected attribute or namespace"));
                    }
                }
                state = XmlState::InRoot;
            }
            (XmlState::InRoot, Event::Start(e)) if e.attributes_raw().trim().is_empty() => {
                match e.name().as_ref() {
                    "GetCallerIdentityResult" if !seen_result => {
                        seen_result = true;
                        state = XmlState::InResult;
                    }
                    "ResponseMetadata" if !seen_metadata => {
                        seen_metadata = true;
                        state = XmlState::InMetadata(0);
                    }
                    _ => {
                        return Err(invalid(
                            "unexpected or repeated element in GetCallerIdentityResponse",
                        ));
                    }
                }
            }
            (XmlState::InResult, Event::Start(e)) if e.attributes_raw().trim().is_empty() => {
                let name = e.name();
                let idx = FIELDS
                    .iter()
                    .position(|f| *f == name.as_ref())
                    .ok_or_else(|| invalid("unexpected element in GetCallerIdentityResult"))?;
                if values[idx].is_some() {
                    return Err(invalid("repeated element in GetCallerIdentityResult"));
                }
                values[idx] = Some(String::new());
                state = XmlState::InField(idx);
            }
            (XmlState::InField(i), Event::Text(t)) => {
                if let Some(v) = values[i].as_mut() {
                    v.push_str(&t.xml10_content());
                }
            }
            (XmlState::InField(i), Event::GeneralRef(r)) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return Err(invalid("XML answer uses an unknown entity")),
                    },
                    Err(_) => return Err(invalid("XML answer has a bad character reference")),
                };
                if let Some(v) = values[i].as_mut() {
                    v.push(c);
                }
            }
            (XmlState::InField(i), Event::End(e)) if e.name().as_ref() == FIELDS[i] => {
                state = XmlState::InResult;
            }
            (XmlState::InResult, Event::End(e))
                if e.name().as_ref() == "GetCallerIdentityResult" =>
            {
                state = XmlState::InRoot;
            }
            (XmlState::InMetadata(depth), Event::Start(_)) => {
                if depth > 4 {
                    return Err(invalid("ResponseMetadata is nested too deeply"));
                }
                state = XmlState::InMetadata(depth + 1);
            }
            (XmlState::InMetadata(0), Event::End(e)) if e.name().as_ref() == "ResponseMetadata" => {
                state = XmlState::InRoot;
            }
            (XmlState::InMetadata(depth), Event::End(_)) if depth > 0 => {
                state = XmlState::InMetadata(depth - 1);
            }
            (XmlState::InMetadata(_), Event::Text(_) | Event::GeneralRef(_) | Event::Empty(_)) => {}
            (XmlState::InRoot, Event::End(e))
                if e.name().as_ref() == "GetCallerIdentityResponse" =>
            {
                state = XmlState::AfterRoot;
            }
            (_, Event::Text(t)) if t.xml10_content().trim().is_empty() => {}
            _ => {
                return Err(invalid(
                    "XML answer is not exactly a GetCallerIdentityResponse",
                ));
            }
        }
    }
    if state != XmlState::AfterRoot || !seen_result {
        return Err(invalid("XML answer ended early"));
    }
    let [Some(account), Some(arn), Some(user_id)] = values else {
        return Err(invalid("XML answer lacks Account, Arn or UserId"));
    };
    non_empty(StsAnswer {
        account,
        arn,
        user_id,
    })
}

#[derive(Deserialize)]
struct JsonErrorEnvelope {
    #[serde(rename = "Error")]
    error: JsonError,
}

#[derive(Deserialize)]
struct JsonError {
    #[serde(rename = "Code")]
    code: String,
}

/// STS's error code from an error body of the given format, if it has a plausible one.
fn error_code(format: Format, body: &[u8]) -> Option<String> {
    let code = match format {
        Format::Json => {
            serde_json::from_slice::<JsonErrorEnvelope>(body)
                .ok()?
                .error
                .code
        }
        Format::Xml => xml_error_code(body)?,
    };
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
    .then_some(code)
}

fn xml_error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut code = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                path.push(e.name().as_ref().to_owned());
                if path.len() > 3 {
                    return None;
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t)
                if path.len() == 3
                    && path[0] == "ErrorResponse"
                    && path[1] == "Error"
                    && path[2] == "Code" =>
            {
                code = Some(t.xml10_content().trim().to_owned());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::StsHostAllowList;

    fn host() -> StsHost {
        StsHostAllowList::new()
            .resolve("sts.us-west-2.amazonaws.com")
            .unwrap()
            .clone()
    }

    const XML_OK: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::111111111111:user/alice</Arn>
    <UserId>AIDAEXAMPLE</UserId>
    <Account>111111111111</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
"#;

    const JSON_OK: &str = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111111111111","Arn":"arn:aws:iam::111111111111:user/alice","UserId":"AIDAEXAMPLE"},"ResponseMetadata":{"RequestId":"x"}}}"#;

    #[test]
    fn xml_answer_parses() {
        let id = parse_sts_response(200, Some("text/xml"), XML_OK.as_bytes(), &host()).unwrap();
        assert_eq!(id.account(), "111111111111");
        assert_eq!(id.arn(), "arn:aws:iam::111111111111:user/alice");
    }

    #[test]
    fn json_answer_parses() {
        let id =
            parse_sts_response(200, Some("application/json"), JSON_OK.as_bytes(), &host()).unwrap();
        assert_eq!(id.user_id(), "AIDAEXAMPLE");
    }

    #[test]
    fn json_body_with_xml_content_type_is_invalid() {
        let e = parse_sts_response(200, Some("text/xml"), JSON_OK.as_bytes(), &host());
        assert!(matches!(e, Err(StsFailure::Invalid { .. })));
        let e = parse_sts_response(200, Some("application/json"), XML_OK.as_bytes(), &host());
        assert!(matches!(e, Err(StsFailure::Invalid { .. })));
    }

    #[test]
    fn xml_response_embedded_in_another_document_is_invalid() {
        let doc = format!("<Wrapper>{XML_OK}</Wrapper>");
        assert!(parse_sts_response(200, Some("text/xml"), doc.as_bytes(), &host()).is_err());
        let doc = format!("{XML_OK}<Other/>");
        assert!(parse_sts_response(200, Some("text/xml"), doc.as_bytes(), &host()).is_err());
    }

    #[test]
    fn duplicate_xml_field_is_invalid() {
        let doc = XML_OK.replace(
            "<Account>111111111111</Account>",
            "<Account>111111111111</Account><Account>222222222222</Account>",
        );
        assert!(parse_sts_response(200, Some("text/xml"), doc.as_bytes(), &host()).is_err());
    }

    #[test]
    fn duplicate_json_field_is_invalid() {
        let doc = JSON_OK.replace(
            r#""Account":"111111111111""#,
            r#""Account":"111111111111","Account":"222222222222""#,
        );
        assert!(
            parse_sts_response(200, Some("application/json"), doc.as_bytes(), &host()).is_err()
        );
    }

    #[test]
    fn empty_fields_are_invalid() {
        let doc = XML_OK.replace("AIDAEXAMPLE", "");
        assert!(parse_sts_response(200, Some("text/xml"), doc.as_bytes(), &host()).is_err());
    }

    #[test]
    fn doctype_is_invalid() {
        let doc = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{XML_OK}");
        assert!(parse_sts_response(200, Some("text/xml"), doc.as_bytes(), &host()).is_err());
    }

    #[test]
    fn forbidden_answers_are_rejections_with_the_sts_code() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_sts_response(403, Some("text/xml"), body.as_bytes(), &host()).unwrap_err(),
            StsFailure::Rejected {
                code: "SignatureDoesNotMatch".into()
            }
        );
        let json =
            r#"{"Error":{"Code":"ExpiredToken","Message":"x","Type":"Sender"},"RequestId":"1"}"#;
        assert_eq!(
            parse_sts_response(403, Some("application/json"), json.as_bytes(), &host())
                .unwrap_err(),
            StsFailure::Rejected {
                code: "ExpiredToken".into()
            }
        );
    }

    #[test]
    fn throttling_and_server_errors_are_unavailable() {
        let body = r#"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"#;
        assert!(matches!(
            parse_sts_response(400, Some("text/xml"), body.as_bytes(), &host()),
            Err(StsFailure::Unavailable { .. })
        ));
        assert!(matches!(
            parse_sts_response(503, None, b"", &host()),
            Err(StsFailure::Unavailable { .. })
        ));
        assert!(matches!(
            parse_sts_response(302, None, b"", &host()),
            Err(StsFailure::Invalid { .. })
        ));
    }
}
