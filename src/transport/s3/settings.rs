//! Where to send requests: bucket, prefix, endpoint, region and addressing style, from
//! the registry URL, the config and the usual AWS environment variables.

use rusty_s3::{Bucket, UrlStyle};

use super::credentials::{self, Creds, CredsFrom};
use crate::transport::{S3Options, TransportError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) url: String,
    pub(super) bucket: String,
    /// Empty, or ends with `/`.
    pub(super) prefix: String,
    pub(super) endpoint: String,
    /// True when the endpoint is the user's, false for AWS's.
    pub(super) custom_endpoint: bool,
    pub(super) path_style: bool,
    pub(super) region: String,
    pub(super) credentials: Option<Creds>,
    /// Where the credentials came from, for hints.
    pub(super) credentials_from: CredsFrom,
}

impl Settings {
    pub(super) fn resolve(
        url: &str,
        opts: &S3Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, TransportError> {
        let invalid = |why: String| TransportError::InvalidUrl {
            url: url.to_string(),
            why,
        };
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());

        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|why| invalid(why.into()))?;
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            crate::transport::key::Key::new(prefix)
                .map_err(|e| invalid(format!("prefix {prefix:?}: {}", e.why)))?;
            format!("{prefix}/")
        };

        let region = given(&opts.region)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let custom = given(&opts.endpoint)
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let custom_endpoint = custom.is_some();
        let endpoint = match custom {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        // Dotted bucket names do not match AWS's wildcard certificate when used as a
        // host name, so they need path-style requests.
        let path_style = opts
            .path_style
            .unwrap_or(custom_endpoint || bucket.contains('.'));

        let (credentials, credentials_from) = credentials::resolve(url, opts, &env)?;

        Ok(Settings {
            url: url.to_string(),
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            custom_endpoint,
            path_style,
            region,
            credentials,
            credentials_from,
        })
    }
}

impl Settings {
    /// rusty-s3's view of the bucket: base URL (path-style or virtual-hosted) and region.
    pub(super) fn bucket_addressing(&self) -> Result<Bucket, TransportError> {
        let invalid = |why: String| TransportError::InvalidUrl {
            url: self.url.clone(),
            why,
        };
        // A trailing slash keeps an endpoint's own path when the bucket is joined to it.
        let endpoint: url::Url = format!("{}/", self.endpoint).parse().map_err(|e| {
            invalid(format!(
                "S3 endpoint {:?} is not a URL ({e}): fix s3_endpoint or AWS_ENDPOINT_URL",
                self.endpoint
            ))
        })?;
        let style = if self.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(endpoint, style, self.bucket.clone(), self.region.clone()).map_err(|e| {
            invalid(format!(
                "S3 endpoint {:?} is unusable ({e}): it must be http(s)://host[:port][/path]",
                self.endpoint
            ))
        })
    }
}

/// Lenient on purpose (legacy buckets may hold capitals or `_`): only what would break
/// the URL is refused; the server judges the rest.
pub(super) fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if bucket.is_empty() {
        return Err("the bucket name is missing (expected s3://bucket/prefix)");
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("a bucket name holds only letters, digits, '.', '-' and '_'");
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(in crate::transport::s3) fn env_of(
        pairs: &[(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    pub(in crate::transport::s3) fn resolve(
        url: &str,
        opts: &S3Options,
        env: &[(&str, &str)],
    ) -> Settings {
        Settings::resolve(url, opts, &env_of(env)).unwrap()
    }

    #[test]
    fn aws_defaults_are_virtual_hosted_in_us_east_1_and_anonymous() {
        let s = resolve("s3://rel/apps/", &S3Options::default(), &[]);
        assert_eq!(s.bucket, "rel");
        assert_eq!(s.prefix, "apps/");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert!(!s.path_style);
        assert!(s.credentials.is_none());
    }

    #[test]
    fn region_and_endpoint_precedence() {
        let env = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
        ];
        let s = resolve("s3://rel", &S3Options::default(), &env);
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.endpoint, "http://127.0.0.1:9000");
        assert!(s.path_style, "custom endpoints default to path style");
        assert_eq!(s.prefix, "");

        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_DEFAULT_REGION", "eu-central-1")],
        );
        assert_eq!(s.region, "eu-central-1");

        let opts = S3Options {
            region: Some("ap-south-1".into()),
            endpoint: Some("https://minio.example".into()),
            path_style: Some(false),
            ..S3Options::default()
        };
        let s = resolve("s3://rel/a/b", &opts, &env);
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.endpoint, "https://minio.example");
        assert!(!s.path_style);
        assert_eq!(s.prefix, "a/b/");

        let s = resolve("s3://my.dotted.bucket", &S3Options::default(), &[]);
        assert!(
            s.path_style,
            "dotted buckets break AWS's wildcard certificate"
        );
    }

    #[test]
    fn bucket_urls_for_each_addressing_style() {
        let base = |url: &str, opts: S3Options, env: &[(&str, &str)]| {
            resolve(url, &opts, env)
                .bucket_addressing()
                .unwrap()
                .object_url("k/1.0.0+b")
                .unwrap()
                .to_string()
        };
        assert_eq!(
            base(
                "s3://rel/p",
                S3Options::default(),
                &[("AWS_REGION", "eu-west-1")]
            ),
            "https://rel.s3.eu-west-1.amazonaws.com/k/1.0.0%2Bb"
        );
        assert_eq!(
            base("s3://my.rel", S3Options::default(), &[]),
            "https://s3.us-east-1.amazonaws.com/my.rel/k/1.0.0%2Bb"
        );
        let custom = |endpoint: &str| S3Options {
            endpoint: Some(endpoint.into()),
            ..S3Options::default()
        };
        assert_eq!(
            base("s3://rel", custom("http://127.0.0.1:9000"), &[]),
            "http://127.0.0.1:9000/rel/k/1.0.0%2Bb"
        );
        assert_eq!(
            base("s3://rel", custom("https://gw.example/storage/"), &[]),
            "https://gw.example/storage/rel/k/1.0.0%2Bb"
        );
        let opts = S3Options {
            path_style: Some(false),
            ..custom("https://objects.example")
        };
        assert_eq!(
            base("s3://rel", opts, &[]),
            "https://rel.objects.example/k/1.0.0%2Bb"
        );
        let bad = resolve("s3://rel", &custom("ftp://x"), &[]).bucket_addressing();
        assert!(matches!(bad, Err(TransportError::InvalidUrl { .. })));
    }

    #[test]
    fn half_credentials_and_bad_urls_are_refused() {
        let half = S3Options {
            access_key_id: Some("K".into()),
            ..S3Options::default()
        };
        for (url, opts, env) in [
            ("s3://rel", half.clone(), vec![]),
            (
                "s3://rel",
                S3Options::default(),
                vec![("AWS_ACCESS_KEY_ID", "K")],
            ),
            ("s3://", S3Options::default(), vec![]),
            ("s3:///prefix", S3Options::default(), vec![]),
            ("s3://b@d/x", S3Options::default(), vec![]),
            ("s3://rel/a/../b", S3Options::default(), vec![]),
            ("s3://rel/a//b", S3Options::default(), vec![]),
        ] {
            let r = Settings::resolve(url, &opts, &env_of(&env));
            assert!(
                matches!(r, Err(TransportError::InvalidUrl { .. })),
                "{url}: {r:?}"
            );
        }
    }
}
