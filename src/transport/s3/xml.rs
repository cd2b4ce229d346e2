//! S3's XML documents: ListObjectsV2 pages and error documents, read with quick-xml's
//! serde deserializer (already built for rusty-s3) rather than by string search, so
//! entities, CDATA, comments and attribute-carrying tags are handled as XML defines them.
//!
//! rusty-s3's own `ListObjectsV2::parse_response` is not used: it requires `ETag`,
//! `LastModified` and `Size` on every entry, which S3-compatible servers do not all
//! send, and it drops `IsTruncated`. Only the fields read here are declared; serde
//! skips the rest.

use quick_xml::events::Event;
use serde::Deserialize;

/// Why an S3 XML document could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum XmlError {
    #[error("not well-formed XML: {0}")]
    Syntax(#[from] quick_xml::Error),
    #[error("no XML element in the answer")]
    Empty,
    #[error("expected a <{expected}> document, got <{found}>")]
    UnexpectedRoot {
        expected: &'static str,
        found: String,
    },
    #[error("cannot read the <{root}> document: {source}")]
    Content {
        root: &'static str,
        #[source]
        source: quick_xml::DeError,
    },
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListPage {
    pub(super) keys: Vec<String>,
    /// The token for the next page; only when the page says it is truncated.
    pub(super) next: Option<String>,
}

#[derive(Deserialize)]
struct ListBucketResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "Contents", default)]
    contents: Vec<Contents>,
    #[serde(rename = "NextContinuationToken")]
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct Contents {
    #[serde(rename = "Key")]
    key: String,
}

/// Keys of one ListObjectsV2 page and the token for the next page, if any.
pub(super) fn parse_list_page(xml: &[u8]) -> Result<ListPage, XmlError> {
    let found = root_name(xml)?;
    if found != "ListBucketResult" {
        return Err(XmlError::UnexpectedRoot {
            expected: "ListBucketResult",
            found,
        });
    }
    let page: ListBucketResult =
        quick_xml::de::from_reader(xml).map_err(|source| XmlError::Content {
            root: "ListBucketResult",
            source,
        })?;
    Ok(ListPage {
        keys: page.contents.into_iter().map(|c| c.key).collect(),
        next: page
            .next_continuation_token
            .filter(|t| page.is_truncated && !t.is_empty()),
    })
}

/// The fields of an S3 `<Error>` document; each absent when missing or blank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(super) struct ErrorDocument {
    #[serde(rename = "Code")]
    pub(super) code: Option<String>,
    #[serde(rename = "Message")]
    pub(super) message: Option<String>,
    /// Sent with region errors (`AuthorizationHeaderMalformed`, `PermanentRedirect`).
    #[serde(rename = "Region")]
    pub(super) region: Option<String>,
}

/// The error document in `body`, or None when the body is not one (empty, HTML from a
/// proxy, or a success document such as a completed multipart upload).
pub(super) fn parse_error_document(body: &[u8]) -> Option<ErrorDocument> {
    if root_name(body).ok()? != "Error" {
        return None;
    }
    let doc: ErrorDocument = match quick_xml::de::from_reader(body) {
        Ok(doc) => doc,
        Err(e) => {
            tracing::debug!(error = %e, "unreadable S3 error document");
            return None;
        }
    };
    let field = |v: Option<String>| {
        v.map(|v| v.trim().to_string())
            .filter(|v: &String| !v.is_empty())
    };
    Some(ErrorDocument {
        code: field(doc.code),
        message: field(doc.message),
        region: field(doc.region),
    })
}

/// The name of the document's root element, skipping the declaration and comments.
fn root_name(xml: &[u8]) -> Result<String, XmlError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => {
                return Ok(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Event::Eof => return Err(XmlError::Empty),
            _ => buf.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape AWS documents for ListObjectsV2, with a namespace, an owner, quoted
    /// ETags as entities and a key holding `&`.
    const AWS_PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>rel</Name>
  <Prefix>apps/</Prefix>
  <KeyCount>2</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>apps/demo/R&amp;D &lt;1&gt;.txt</Key>
    <LastModified>2026-11-21T19:40:05.000Z</LastModified>
    <ETag>&quot;70ee1738b6b21e2c8a43f3a5ab0eee71&quot;</ETag>
    <Size>11</Size>
    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>me</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>apps/demo/1.0.0+build.5/app.tar.gz</Key>
    <LastModified>2026-11-21T19:40:06.000Z</LastModified>
    <ETag>"a-2"</ETag>
    <Size>9000000</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>"#;

    #[test]
    fn aws_list_pages_decode_entities_and_skip_other_fields() {
        let page = parse_list_page(AWS_PAGE.as_bytes()).unwrap();
        assert_eq!(
            page.keys,
            vec![
                "apps/demo/R&D <1>.txt",
                "apps/demo/1.0.0+build.5/app.tar.gz"
            ]
        );
        assert_eq!(page.next, None);
    }

    #[test]
    fn list_pages_with_and_without_a_continuation() {
        for (xml, keys, next) in [
            // Truncated, as AWS sends it: the token is followed.
            (
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>rel</Name><Prefix></Prefix>\
                 <ContinuationToken>1ueGcxLPRx1Tr</ContinuationToken>\
                 <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
                 <KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>\
                 <Contents><Key>a&amp;b</Key><Size>1</Size></Contents></ListBucketResult>",
                vec!["a&b"],
                Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="),
            ),
            // Entries with only a key (servers differ in the optional fields).
            (
                "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>\
                 <Contents><Key>p/1.0.0+b/x</Key></Contents>\
                 <NextContinuationToken>tok</NextContinuationToken></ListBucketResult>",
                vec!["p/1.0.0+b/x"],
                Some("tok"),
            ),
            // A token on a page that is not truncated is not followed.
            (
                "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key></Contents>\
                 <NextContinuationToken>stale</NextContinuationToken></ListBucketResult>",
                vec!["k"],
                None,
            ),
            // Nor is an empty one.
            (
                "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken/></ListBucketResult>",
                vec![],
                None,
            ),
            // An empty listing, with self-closed and commented parts.
            (
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- s3s -->\n<ListBucketResult><Name>rel</Name><Prefix/>\
                 <KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
                vec![],
                None,
            ),
            // CDATA is text too.
            (
                "<ListBucketResult><Contents><Key><![CDATA[a&b<c>]]></Key></Contents></ListBucketResult>",
                vec!["a&b<c>"],
                None,
            ),
        ] {
            let page = parse_list_page(xml.as_bytes()).unwrap_or_else(|e| panic!("{xml}: {e}"));
            assert_eq!(page.keys, keys, "{xml}");
            assert_eq!(page.next.as_deref(), next, "{xml}");
        }
    }

    #[test]
    fn malformed_list_pages_are_errors_that_say_why() {
        for (xml, says) in [
            ("", "no XML element"),
            ("   \n", "no XML element"),
            (
                "<ListBucketResult><Contents><Key>a</Contents>",
                "ill-formed document",
            ),
            (
                "<ListBucketResult><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
                "ListBucketResult",
            ),
            (
                "<html><body>502 Bad Gateway</body></html>",
                "expected a <ListBucketResult> document, got <html>",
            ),
            ("<Error><Code>AccessDenied</Code></Error>", "got <Error>"),
            (
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                "Key",
            ),
            (
                "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
                "ListBucketResult",
            ),
        ] {
            let e = parse_list_page(xml.as_bytes()).expect_err(xml);
            assert!(e.to_string().contains(says), "{xml}: {e}");
        }
        // Cut off mid-document (the body limit or a dropped connection).
        let cut = &AWS_PAGE.as_bytes()[..AWS_PAGE.len() / 2];
        assert!(parse_list_page(cut).is_err());
        // Not UTF-8 where text is expected.
        assert!(parse_list_page(
            b"<ListBucketResult><Contents><Key>\xff\xfe</Key></Contents></ListBucketResult>"
        )
        .is_err());
    }

    #[test]
    fn error_documents() {
        let aws = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>"#;
        let doc = parse_error_document(aws.as_bytes()).unwrap();
        assert_eq!(doc.code.as_deref(), Some("NoSuchKey"));
        assert_eq!(
            doc.message.as_deref(),
            Some("The resource you requested does not exist")
        );
        assert_eq!(doc.region, None);

        let region = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region &apos;us-east-1&apos; is wrong; expecting &apos;eu-west-1&apos;</Message><Region>eu-west-1</Region><RequestId>X</RequestId><HostId>Y</HostId></Error>";
        let doc = parse_error_document(region.as_bytes()).unwrap();
        assert_eq!(
            doc.message.as_deref(),
            Some("the region 'us-east-1' is wrong; expecting 'eu-west-1'")
        );
        assert_eq!(doc.region.as_deref(), Some("eu-west-1"));

        let blank = parse_error_document(b"<Error><Code>  </Code><Message/></Error>").unwrap();
        assert_eq!(blank, ErrorDocument::default());

        for not_error in [
            &b""[..],
            b"<html><body>502 Bad Gateway</body></html>",
            b"<?xml version=\"1.0\"?><CompleteMultipartUploadResult><Location>x</Location><ETag>&quot;e-2&quot;</ETag></CompleteMultipartUploadResult>",
            b"<Error><Code>Cut off",
            b"not xml at all",
        ] {
            assert_eq!(
                parse_error_document(not_error),
                None,
                "{}",
                String::from_utf8_lossy(not_error)
            );
        }
    }
}
