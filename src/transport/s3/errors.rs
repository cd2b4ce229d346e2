//! Failed S3 answers as [`TransportError`]s, with hints that name the setting to fix.

use super::credentials::CredsFrom;
use super::settings::Settings;
use super::xml::{parse_error_document, ErrorDocument};
use crate::transport::TransportError;

/// What a failed response said: status, S3 error code, message, region hints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ErrorInfo {
    pub(super) status: u16,
    pub(super) code: Option<String>,
    pub(super) message: Option<String>,
    /// From the error document's `<Region>` or the `x-amz-bucket-region` header.
    pub(super) region: Option<String>,
}

impl ErrorInfo {
    /// Best effort: a body that is not an S3 error document (empty, a proxy's HTML)
    /// leaves code and message empty rather than failing.
    pub(super) fn parse(status: u16, body: &[u8], region_header: Option<String>) -> ErrorInfo {
        let doc = parse_error_document(body).unwrap_or_default();
        ErrorInfo::from_document(status, doc, region_header)
    }

    pub(super) fn from_document(
        status: u16,
        doc: ErrorDocument,
        region_header: Option<String>,
    ) -> ErrorInfo {
        // What the server wrote is printed and stored: escape a terminal's controls.
        let printable = |s: String| crate::text::printable(&s);
        ErrorInfo {
            status,
            code: doc.code.map(printable),
            message: doc.message.map(printable),
            region: doc.region.or(region_header).map(printable),
        }
    }

    pub(super) fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error document".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    List,
    Write,
    /// A write with If-Match or `If-None-Match: *`, whose refusal is a conflict.
    ConditionalWrite,
}

pub(super) struct Ctx<'a> {
    pub(super) location: String,
    pub(super) settings: &'a Settings,
    pub(super) op: Op,
}

pub(super) fn classify(info: &ErrorInfo, ctx: &Ctx<'_>) -> TransportError {
    let s = ctx.settings;
    let code = info.code.as_deref().unwrap_or("");
    let location = ctx.location.clone();
    let status = info.status;

    // A refused conditional write: 412 (the precondition failed) or 409
    // ConditionalRequestConflict (a concurrent conditional write to the key won).
    if ctx.op == Op::ConditionalWrite
        && (status == 412 || (status == 409 && code == "ConditionalRequestConflict"))
    {
        return TransportError::Conflict { location };
    }
    let region_mismatch = info
        .region
        .as_deref()
        .filter(|r| !r.is_empty() && *r != s.region);
    if let (Some(region), 301 | 307 | 400) = (region_mismatch, status) {
        return TransportError::WrongRegion {
            bucket: s.bucket.clone(),
            region: region.to_string(),
            configured: s.region.clone(),
        };
    }
    if status == 301 || code == "PermanentRedirect" {
        return TransportError::Status {
            location,
            status,
            detail: format!(
                ": bucket {:?} is not served by {} ({}): set s3_region (or AWS_REGION) to the bucket's region",
                s.bucket,
                s.endpoint,
                info.describe()
            ),
        };
    }
    match code {
        "NoSuchBucket" => {
            return TransportError::Status {
                location,
                status,
                detail: format!(
                    ": bucket {:?} does not exist at {} (NoSuchBucket): check the bucket in the registry URL and the endpoint (s3_endpoint / AWS_ENDPOINT_URL){}",
                    s.bucket,
                    s.endpoint,
                    if s.custom_endpoint { "" } else { " and region" }
                ),
            }
        }
        // The server gave up waiting for our request body: a transient network fault.
        "RequestTimeout" => {
            return TransportError::Network {
                location,
                message: format!("the server timed out reading the request ({})", info.describe()),
                source: None,
            }
        }
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            return TransportError::Denied {
                location,
                status,
                hint: format!(
                    "the session token was refused ({}): refresh the temporary credentials (AWS_SESSION_TOKEN / s3_session_token together with their key pair)",
                    info.describe()
                ),
            }
        }
        _ => {}
    }
    match status {
        404 => TransportError::NotFound { location },
        401 | 403 => TransportError::Denied {
            location,
            status,
            hint: denied_hint(info, ctx),
        },
        _ => TransportError::Status {
            location,
            status,
            detail: format!(" ({})", info.describe()),
        },
    }
}

pub(super) fn denied_hint(info: &ErrorInfo, ctx: &Ctx<'_>) -> String {
    let s = ctx.settings;
    let code = info.code.as_deref().unwrap_or("");
    let said = info.describe();
    let (key_var, secret_var) = match &s.credentials_from {
        CredsFrom::Config => (
            "s3_access_key_id in the config".to_string(),
            "s3_secret_access_key in the config".to_string(),
        ),
        CredsFrom::SharedFile { path, profile } => (
            format!("aws_access_key_id of [{profile}] in {path}"),
            format!("aws_secret_access_key of [{profile}] in {path}"),
        ),
        CredsFrom::Process { .. } => (
            format!("the AccessKeyId printed by the {}", s.credentials_from),
            format!("the SecretAccessKey printed by the {}", s.credentials_from),
        ),
        CredsFrom::Environment | CredsFrom::None => (
            "AWS_ACCESS_KEY_ID".to_string(),
            "AWS_SECRET_ACCESS_KEY".to_string(),
        ),
    };
    let mut hint = match (&s.credentials, code) {
        (None, _) => format!(
            "no S3 credentials were found, so the request was sent unsigned and bucket {:?} does not allow anonymous access ({said}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or s3_access_key_id and s3_secret_access_key in the config, or a profile in ~/.aws/credentials)",
            s.bucket
        ),
        (Some(c), "SignatureDoesNotMatch") => format!(
            "the server rejected the signature ({said}): the secret key does not belong to access key {:?}; check {secret_var}",
            c.key_id
        ),
        (Some(c), "InvalidAccessKeyId" | "NotSignedUp") => format!(
            "access key {:?} is unknown to the server ({said}); check {key_var}",
            c.key_id
        ),
        (Some(_), "RequestTimeTooSkewed") => format!(
            "this machine's clock is too far from the server's ({said}); fix the clock (NTP)"
        ),
        (Some(c), _) => {
            let need = match ctx.op {
                Op::Read => format!(
                    "s3:GetObject on arn:aws:s3:::{}/{}*; a missing object also answers 403 when s3:ListBucket is not granted",
                    s.bucket, s.prefix
                ),
                Op::List => format!(
                    "s3:ListBucket on arn:aws:s3:::{} for prefix {:?}",
                    s.bucket, s.prefix
                ),
                Op::Write | Op::ConditionalWrite => format!(
                    "s3:PutObject (and s3:AbortMultipartUpload) on arn:aws:s3:::{}/{}*",
                    s.bucket, s.prefix
                ),
            };
            format!(
                "access key {:?} (from the {}) is not allowed {need} ({said}); see docs/s3.md for the policies",
                c.key_id, s.credentials_from
            )
        }
    };
    if let Some(region) = info.region.as_deref().filter(|r| *r != s.region) {
        hint.push_str(&format!(
            "; the bucket reports region {region} while {} was configured (set s3_region or AWS_REGION)",
            s.region
        ));
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::s3::settings::tests::resolve;
    use crate::transport::S3Options;

    /// A server's error document is printed and stored: a terminal's escape sequences in
    /// it are escaped (issue 11).
    #[test]
    fn control_characters_in_error_documents_are_escaped() {
        let body = "<Error><Code>Slow\u{1b}[2J</Code><Message>all\u{7} good\u{9b}31m</Message><Region>eu\u{1b}]0;x</Region></Error>";
        let info = ErrorInfo::parse(500, body.as_bytes(), None);
        let shown = info.describe();
        assert_eq!(shown, "Slow\\u{1b}[2J: all\\u{7} good\\u{9b}31m");
        assert!(!info.region.unwrap_or_default().contains('\u{1b}'));
    }

    fn settings(creds: bool) -> Settings {
        let env: Vec<(&str, &str)> = if creds {
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ]
        } else {
            vec![]
        };
        resolve("s3://rel/apps", &S3Options::default(), &env)
    }

    fn classify_doc(status: u16, body: &str, header: Option<&str>, creds: bool) -> TransportError {
        let s = settings(creds);
        let ctx = Ctx {
            location: "s3://rel/apps/k".into(),
            settings: &s,
            op: Op::Read,
        };
        classify(
            &ErrorInfo::parse(status, body.as_bytes(), header.map(String::from)),
            &ctx,
        )
    }

    #[test]
    fn refused_conditional_writes_are_conflicts() {
        let s = settings(true);
        let at = |op| Ctx {
            location: "s3://rel/apps/k".into(),
            settings: &s,
            op,
        };
        let doc = |code: &str| format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
        for (status, body, op, conflict) in [
            (412, doc("PreconditionFailed"), Op::ConditionalWrite, true),
            (412, String::new(), Op::ConditionalWrite, true),
            (409, doc("ConditionalRequestConflict"), Op::ConditionalWrite, true),
            // Another 409 is not about the condition.
            (409, doc("OperationAborted"), Op::ConditionalWrite, false),
            // The code in the message text is not the code.
            (409, "<Error><Code>OperationAborted</Code><Message>not a ConditionalRequestConflict</Message></Error>".into(), Op::ConditionalWrite, false),
            // Without a condition there is nothing to conflict with.
            (412, doc("PreconditionFailed"), Op::Write, false),
            (409, doc("ConditionalRequestConflict"), Op::Write, false),
            (403, doc("AccessDenied"), Op::ConditionalWrite, false),
        ] {
            let e = classify(&ErrorInfo::parse(status, body.as_bytes(), None), &at(op));
            assert_eq!(
                matches!(e, TransportError::Conflict { .. }),
                conflict,
                "{status} {body} {op:?}: {e:?}"
            );
        }
    }

    #[test]
    fn error_classification() {
        let doc = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m &amp; m</Message></Error>")
        };
        assert!(matches!(
            classify_doc(404, &doc("NoSuchKey"), None, true),
            TransportError::NotFound { .. }
        ));
        assert!(matches!(
            classify_doc(404, "", None, true),
            TransportError::NotFound { .. }
        ));
        let e = classify_doc(404, &doc("NoSuchBucket"), None, true);
        assert!(matches!(e, TransportError::Status { status: 404, .. }));
        assert!(
            e.to_string().contains("bucket \"rel\" does not exist"),
            "{e}"
        );

        let e = classify_doc(403, &doc("SignatureDoesNotMatch"), None, true);
        let TransportError::Denied { hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            hint.contains("AWS_SECRET_ACCESS_KEY") && hint.contains("AKIDEXAMPLE"),
            "{hint}"
        );
        assert!(hint.contains("m & m"), "{hint}");
        let e = classify_doc(403, &doc("AccessDenied"), None, false);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.to_string().contains("\"rel\""), "{e}");
        let e = classify_doc(403, &doc("AccessDenied"), None, true);
        assert!(e.to_string().contains("s3:GetObject"), "{e}");

        for (status, code) in [(503, "SlowDown"), (500, "InternalError"), (429, "")] {
            let e = classify_doc(status, &doc(code), None, true);
            assert!(e.is_retryable(), "{status} {code}: {e:?}");
        }
        assert!(classify_doc(400, &doc("RequestTimeout"), None, true).is_retryable());
        assert!(!classify_doc(400, &doc("InvalidArgument"), None, true).is_retryable());

        let wrong = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
        let e = classify_doc(400, wrong, None, true);
        assert!(
            matches!(&e, TransportError::WrongRegion { region, configured, .. } if region == "eu-west-1" && configured == "us-east-1"),
            "{e:?}"
        );
        assert!(e.to_string().contains("AWS_REGION=eu-west-1"), "{e}");
        let e = classify_doc(301, &doc("PermanentRedirect"), Some("ap-southeast-2"), true);
        assert!(
            matches!(&e, TransportError::WrongRegion { region, .. } if region == "ap-southeast-2"),
            "{e:?}"
        );
        let e = classify_doc(301, "", None, true);
        assert!(e.to_string().contains("s3_region"), "{e}");
    }
}
