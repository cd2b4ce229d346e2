//! Who signs the requests: keys from the config, the environment, or a profile of the
//! AWS shared credentials file, in that order (as the AWS CLI looks them up).

use crate::transport::{S3Options, TransportError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CredsFrom {
    None,
    Config,
    Environment,
    /// A profile of the shared credentials file (`~/.aws/credentials`).
    SharedFile {
        path: String,
        profile: String,
    },
}

impl std::fmt::Display for CredsFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredsFrom::None => write!(f, "nowhere"),
            CredsFrom::Config => write!(f, "config"),
            CredsFrom::Environment => write!(f, "environment"),
            CredsFrom::SharedFile { path, profile } => write!(f, "profile [{profile}] of {path}"),
        }
    }
}

/// Credentials of `profile` in an AWS shared credentials file (INI: `[profile]`,
/// then `aws_access_key_id`, `aws_secret_access_key`, optional `aws_session_token`).
/// Pure, so every shape of the file is unit-tested.
///
/// Hand-written rather than taken from an INI crate because the file follows the AWS
/// SDKs' own grammar (their Rust SDK hand-writes its parser too), which generic INI
/// crates differ from where it matters: `rust-ini` refuses a comment after a section
/// header and reads a line without `=` as the start of the next key (losing it);
/// `configparser` cuts `#`/`;` out of the middle of a value. Both take `:` as a
/// separator. The AWS rules followed here: a comment after a section header, a comment
/// in a value only after whitespace, the last value of a key wins.
pub(super) fn parse_shared_credentials(text: &str, profile: &str) -> Result<Option<Creds>, String> {
    let mut in_profile = false;
    let mut seen = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = strip_comment(line, false)
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
        {
            in_profile = name.trim() == profile;
            seen |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((k, v)) = strip_comment(line, true).split_once('=') else {
            continue;
        };
        let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        match k.trim() {
            "aws_access_key_id" => key_id = v,
            "aws_secret_access_key" => secret = v,
            "aws_session_token" => token = v,
            _ => {}
        }
    }
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(Some(Creds {
            key_id,
            secret,
            token,
        })),
        (None, None) if !seen => Ok(None),
        _ => Err(format!(
            "profile [{profile}] needs both aws_access_key_id and aws_secret_access_key"
        )),
    }
}

/// `line` without its trailing `#` or `;` comment. In a property line the comment must
/// follow whitespace, so a value may hold `#` and `;` (`abc#d` is a value, `abc #d` is
/// `abc` and a comment), as the AWS SDKs read it.
fn strip_comment(line: &str, need_whitespace: bool) -> &str {
    let mut after_space = false;
    for (i, c) in line.char_indices() {
        if matches!(c, '#' | ';') && (after_space || !need_whitespace) {
            return line[..i].trim_end();
        }
        after_space = c.is_whitespace();
    }
    line
}

#[derive(Clone, PartialEq, Eq)]
pub(super) struct Creds {
    pub(super) key_id: String,
    pub(super) secret: String,
    pub(super) token: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The credentials to sign with and where they came from. `env` reads an environment
/// variable, passed in so that every case is tested without touching the process's.
pub(super) fn resolve(
    url: &str,
    opts: &S3Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<Creds>, CredsFrom), TransportError> {
    let invalid = |why: String| TransportError::InvalidUrl {
        url: url.to_string(),
        why,
    };
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());

    Ok(match (
        given(&opts.access_key_id),
        given(&opts.secret_access_key),
    ) {
        (Some(key_id), Some(secret)) => (
            Some(Creds {
                key_id,
                secret,
                token: given(&opts.session_token),
            }),
            CredsFrom::Config,
        ),
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                "set both s3_access_key_id and s3_secret_access_key in the config, or neither (then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are used)".into(),
            ))
        }
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key_id), Some(secret)) => (
                Some(Creds {
                    key_id,
                    secret,
                    token: env("AWS_SESSION_TOKEN"),
                }),
                CredsFrom::Environment,
            ),
            (Some(_), None) => {
                return Err(invalid(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
                ))
            }
            (None, None) => {
                // Last, as the AWS CLI does: the shared credentials file.
                let profile = env("AWS_PROFILE");
                let path = env("AWS_SHARED_CREDENTIALS_FILE").or_else(|| {
                    env("HOME").map(|h| format!("{}/.aws/credentials", h.trim_end_matches('/')))
                });
                let text = match &path {
                    None => None,
                    Some(p) => match std::fs::read_to_string(p) {
                        Ok(text) => Some(text),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        // There but unreadable is not "no credentials": the requests
                        // would go out unsigned and fail as a puzzling AccessDenied.
                        Err(e)
                            if profile.is_some()
                                || env("AWS_SHARED_CREDENTIALS_FILE").is_some() =>
                        {
                            return Err(TransportError::Credentials {
                                why: format!(
                                    "cannot read the credentials file {p}: {e}; make it readable by this user or point AWS_SHARED_CREDENTIALS_FILE at another"
                                ),
                                source: Some(e),
                            });
                        }
                        Err(e) => {
                            tracing::warn!("ignoring the credentials file {p}: cannot read it: {e}");
                            None
                        }
                    },
                };
                match (text, path) {
                    (Some(text), Some(path)) => {
                        let name = profile.clone().unwrap_or_else(|| "default".into());
                        match parse_shared_credentials(&text, &name) {
                            Ok(Some(c)) => (
                                Some(c),
                                CredsFrom::SharedFile {
                                    path,
                                    profile: name,
                                },
                            ),
                            // A default profile without static keys (role_arn, SSO,
                            // credential_process) is for other tools: not an error
                            // unless this profile was asked for.
                            Err(why) if profile.is_none() => {
                                tracing::warn!(
                                    "ignoring the [default] profile of {path}: {why}"
                                );
                                (None, CredsFrom::None)
                            }
                            Ok(None) if profile.is_some() => {
                                return Err(TransportError::Credentials {
                                    why: format!(
                                        "AWS_PROFILE={name}, but {path} has no [{name}] section: add it, or pick another profile"
                                    ),
                                    source: None,
                                })
                            }
                            Ok(None) => (None, CredsFrom::None),
                            Err(why) => {
                                return Err(TransportError::Credentials {
                                    why: format!("{path}: {why}"),
                                    source: None,
                                })
                            }
                        }
                    }
                    (None, _) if profile.is_some() => {
                        return Err(TransportError::Credentials {
                            why: format!(
                                "AWS_PROFILE is set, but there is no credentials file to read it from ({}); create it or set AWS_SHARED_CREDENTIALS_FILE",
                                env("AWS_SHARED_CREDENTIALS_FILE")
                                    .unwrap_or_else(|| "~/.aws/credentials".into())
                            ),
                            source: None,
                        })
                    }
                    _ => (None, CredsFrom::None),
                }
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::s3::settings::tests::{env_of, resolve};
    use crate::transport::s3::settings::Settings;

    #[test]
    fn shared_credentials_file_shapes() {
        let text = "# comment\n[default]\naws_access_key_id=A1\naws_secret_access_key = S1\n\n; other\n[ci]\n  aws_access_key_id = A2 \naws_secret_access_key=S2\naws_session_token=T2\n[half]\naws_access_key_id=A3\n";
        let c = parse_shared_credentials(text, "default").unwrap().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token),
            ("A1", "S1", None)
        );
        let c = parse_shared_credentials(text, "ci").unwrap().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token.as_deref()),
            ("A2", "S2", Some("T2"))
        );
        assert_eq!(parse_shared_credentials(text, "absent").unwrap(), None);
        assert!(parse_shared_credentials(text, "half")
            .unwrap_err()
            .contains("needs both"));
    }

    #[test]
    fn comments_follow_the_aws_rules() {
        let creds = |text: &str, profile: &str| {
            parse_shared_credentials(text, profile)
                .unwrap()
                .map(|c| (c.key_id, c.secret, c.token))
        };
        let pair = |k: &str, s: &str| Some((k.to_string(), s.to_string(), None));
        for (text, profile, want) in [
            // A comment after a section header still opens that section.
            ("[ci] # CI keys\naws_access_key_id=A\naws_secret_access_key=S\n", "ci", pair("A", "S")),
            ("[default]\naws_access_key_id=D\naws_secret_access_key=D\n[ci] ; rotated\naws_access_key_id=A\naws_secret_access_key=S\n", "default", pair("D", "D")),
            // A comment after a value needs whitespace before it...
            ("[x]\naws_access_key_id = A # old: B\naws_secret_access_key = S\t; rotated\n", "x", pair("A", "S")),
            // ...so `#` and `;` inside a value are kept.
            ("[x]\naws_access_key_id=A\naws_secret_access_key=ab#cd;ef\n", "x", pair("A", "ab#cd;ef")),
            // `=` inside a value (base64 tokens end in it) stays.
            ("[x]\naws_access_key_id=A\naws_secret_access_key=S\naws_session_token=IQo//b3==\n", "x", Some(("A".into(), "S".into(), Some("IQo//b3==".into())))),
            // The last value of a key wins; a repeated section continues the first.
            ("[x]\naws_access_key_id=A1\naws_access_key_id=A2\n[y]\n[x]\naws_secret_access_key=S\n", "x", pair("A2", "S")),
            // Windows line ends.
            ("[x]\r\naws_access_key_id=A\r\naws_secret_access_key=S\r\n", "x", pair("A", "S")),
            // A commented-out section is no section.
            ("# [x]\n; [x]\n", "x", None),
        ] {
            assert_eq!(creds(text, profile), want, "{text:?}");
        }
    }

    #[test]
    fn an_unreadable_credentials_file_is_an_error_when_asked_for() {
        let home = tempfile::tempdir().unwrap();
        // A directory where the file should be: read_to_string fails, even for root.
        let dir = home.path().join(".aws/credentials");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let h = home.path().to_str().unwrap();
        for env in [
            vec![("AWS_SHARED_CREDENTIALS_FILE", d)],
            vec![("HOME", h), ("AWS_PROFILE", "ci")],
        ] {
            let e =
                Settings::resolve("s3://rel", &S3Options::default(), &env_of(&env)).unwrap_err();
            assert!(
                matches!(e, TransportError::Credentials { .. })
                    && e.to_string().contains("cannot read the credentials file")
                    && e.to_string().contains(d),
                "{env:?}: {e}"
            );
        }
        // The default place, not asked for: other tools' business, so only a warning.
        let s = resolve("s3://rel", &S3Options::default(), &[("HOME", h)]);
        assert!(s.credentials.is_none());
    }

    #[test]
    fn a_default_profile_without_keys_is_ignored_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, "[default]\nrole_arn = arn:aws:iam::1:role/x\n").unwrap();
        let f = file.to_str().unwrap();
        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_SHARED_CREDENTIALS_FILE", f)],
        );
        assert!(s.credentials.is_none());
        let asked = Settings::resolve(
            "s3://rel",
            &S3Options::default(),
            &env_of(&[
                ("AWS_SHARED_CREDENTIALS_FILE", f),
                ("AWS_PROFILE", "default"),
            ]),
        )
        .unwrap_err();
        assert!(asked.to_string().contains("needs both"), "{asked}");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id=A\naws_secret_access_key=S\n",
        )
        .unwrap();
        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_SHARED_CREDENTIALS_FILE", f)],
        );
        assert_eq!(s.credentials.unwrap().key_id, "A");
    }

    #[test]
    fn credentials_come_from_config_then_env() {
        let env = [
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "envtoken"),
        ];
        let s = resolve("s3://rel", &S3Options::default(), &env);
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.token.as_deref()),
            ("ENVKEY", Some("envtoken"))
        );
        assert_eq!(s.credentials_from, CredsFrom::Environment);

        let opts = S3Options {
            access_key_id: Some("CFGKEY".into()),
            secret_access_key: Some("cfgsecret".into()),
            ..S3Options::default()
        };
        let s = resolve("s3://rel", &opts, &env);
        let c = s.credentials.unwrap();
        assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("CFGKEY", None));
        assert!(!format!("{c:?}").contains("cfgsecret"));
    }
}
