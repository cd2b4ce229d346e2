//! S3's XML documents: ListObjectsV2 pages and error documents.

/// Keys of one ListObjectsV2 page and the token for the next page, if any. Read by hand
/// because servers differ in which optional fields (ETag, Owner...) they send.
pub(super) fn parse_list_page(xml: &str) -> (Vec<String>, Option<String>) {
    let mut keys = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Contents>") {
        let block = &rest[start..];
        let end = block.find("</Contents>").unwrap_or(block.len());
        if let Some(key) = xml_tag(&block[..end], "Key") {
            keys.push(key);
        }
        rest = &block[end..];
    }
    let truncated = xml_tag(xml, "IsTruncated").is_some_and(|t| t == "true");
    let next = xml_tag(xml, "NextContinuationToken").filter(|_| truncated);
    (keys, next)
}

/// The text of the first `<tag>` in a flat S3 error document.
pub(super) fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    let text = body[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_parse_without_optional_fields() {
        let page = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a&amp;b</Key><Size>1</Size></Contents>\
            <Contents><Key>p/1.0.0+b/x</Key><ETag>\"e\"</ETag></Contents>\
            <NextContinuationToken>tok</NextContinuationToken></ListBucketResult>";
        let (keys, next) = parse_list_page(page);
        assert_eq!(keys, vec!["a&b", "p/1.0.0+b/x"]);
        assert_eq!(next.as_deref(), Some("tok"));
        let (keys, next) = parse_list_page(
            "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
        );
        assert!(keys.is_empty() && next.is_none());
    }
}
