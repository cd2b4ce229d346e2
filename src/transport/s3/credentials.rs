//! Who signs the requests: keys from the config, the environment, or the AWS profile
//! (static keys of the shared credentials file, else the profile's `credential_process`
//! from that file or the shared config file), in that order (as the AWS SDKs look
//! them up).

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
    /// The `credential_process` of a profile, found in the file at `path`.
    Process {
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
            CredsFrom::Process { path, profile } => {
                write!(f, "credential_process of profile [{profile}] in {path}")
            }
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
    let Some(props) = section(text, &|name| name == profile) else {
        return Ok(None);
    };
    let get = |k: &str| {
        props
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(key_id), Some(secret)) => Ok(Some(Creds {
            key_id,
            secret,
            token: get("aws_session_token"),
        })),
        _ => Err(format!(
            "profile [{profile}] needs both aws_access_key_id and aws_secret_access_key"
        )),
    }
}

/// The non-empty properties (in file order) of the sections whose header `wanted`
/// accepts, or `None` when there is no such section; same grammar as
/// [`parse_shared_credentials`].
fn section(text: &str, wanted: &dyn Fn(&str) -> bool) -> Option<Vec<(String, String)>> {
    let mut in_profile = false;
    let mut seen = false;
    let mut props = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = strip_comment(line, false)
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
        {
            in_profile = wanted(name.trim());
            seen |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((k, v)) = strip_comment(line, true).split_once('=') else {
            continue;
        };
        if !v.trim().is_empty() {
            props.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    seen.then_some(props)
}

/// The `credential_process` of `profile` in a shared config file, where a profile's
/// section is `[profile NAME]` (`[default]` for the default one).
fn config_file_process(text: &str, profile: &str) -> Option<String> {
    let wanted = |name: &str| {
        let mut words = name.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("profile"), Some(n), None) => n == profile,
            (Some("default"), None, _) => profile == "default",
            _ => false,
        }
    };
    last(&section(text, &wanted)?, "credential_process")
}

fn last(props: &[(String, String)], key: &str) -> Option<String> {
    props
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// A shared file's text: `None` when it is absent; an error when it is there but
/// unreadable and the operator pointed at it (`asked`), since the requests would then
/// go out unsigned and fail as a puzzling AccessDenied.
fn read_shared_file(
    path: &Option<String>,
    what: &str,
    var: &str,
    asked: bool,
) -> Result<Option<String>, TransportError> {
    let Some(p) = path else { return Ok(None) };
    match std::fs::read_to_string(p) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if asked => Err(TransportError::Credentials {
            why: format!(
                "cannot read the {what} file {p}: {e}; make it readable by this user or point {var} at another"
            ),
            source: Some(e),
        }),
        Err(e) => {
            tracing::warn!("ignoring the {what} file {p}: cannot read it: {e}");
            Ok(None)
        }
    }
}

/// Last of the static sources, as the AWS SDKs read it: the profile (`AWS_PROFILE`,
/// else `default`): its static keys in the shared credentials file, else its
/// `credential_process` (credentials file first, then the shared config file).
fn from_profile(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<Creds>, CredsFrom), TransportError> {
    let profile = env("AWS_PROFILE");
    let name = profile.clone().unwrap_or_else(|| "default".into());
    let home = env("HOME").map(|h| h.trim_end_matches('/').to_string());
    let creds_path = env("AWS_SHARED_CREDENTIALS_FILE")
        .or_else(|| home.as_ref().map(|h| format!("{h}/.aws/credentials")));
    let config_path =
        env("AWS_CONFIG_FILE").or_else(|| home.as_ref().map(|h| format!("{h}/.aws/config")));
    let creds_text = read_shared_file(
        &creds_path,
        "credentials",
        "AWS_SHARED_CREDENTIALS_FILE",
        profile.is_some() || env("AWS_SHARED_CREDENTIALS_FILE").is_some(),
    )?;
    let config_text = read_shared_file(
        &config_path,
        "config",
        "AWS_CONFIG_FILE",
        env("AWS_CONFIG_FILE").is_some(),
    )?;

    let in_creds = creds_text
        .as_deref()
        .and_then(|t| section(t, &|n| n == name));
    let process = match (&in_creds, &creds_path) {
        (Some(props), Some(path)) => last(props, "credential_process").map(|c| (c, path.clone())),
        _ => None,
    }
    .or_else(|| {
        let cmd = config_file_process(config_text.as_deref()?, &name)?;
        Some((cmd, config_path.clone()?))
    });

    if let (Some(text), Some(path)) = (&creds_text, &creds_path) {
        match parse_shared_credentials(text, &name) {
            Ok(Some(c)) => {
                return Ok((
                    Some(c),
                    CredsFrom::SharedFile {
                        path: path.clone(),
                        profile: name,
                    },
                ))
            }
            Ok(None) => {}
            // Keys are not the only way a profile gives credentials.
            Err(_) if process.is_some() => {}
            // A default profile without static keys (role_arn, SSO) is for other
            // tools: not an error unless this profile was asked for.
            Err(why) if profile.is_none() => {
                tracing::warn!("ignoring the [default] profile of {path}: {why}");
                return Ok((None, CredsFrom::None));
            }
            Err(why) => {
                return Err(TransportError::Credentials {
                    why: format!("{path}: {why}"),
                    source: None,
                })
            }
        }
    }

    if let Some((cmd, path)) = process {
        let from = CredsFrom::Process {
            path,
            profile: name,
        };
        return match super::credential_process::run(&cmd) {
            Ok(c) => {
                tracing::debug!("S3 credentials from the {from}");
                Ok((Some(c), from))
            }
            Err(why) => Err(TransportError::Credentials {
                why: format!(
                    "the {from} ({cmd}): {why}; run the command by hand to see what it prints"
                ),
                source: None,
            }),
        };
    }

    let in_config = config_text
        .as_deref()
        .and_then(|t| {
            section(t, &|n| {
                n.split_whitespace().eq(["profile", name.as_str()])
                    || (name == "default" && n == "default")
            })
        })
        .is_some();
    match (&creds_text, &creds_path) {
        _ if profile.is_none() || in_config => Ok((None, CredsFrom::None)),
        (Some(_), Some(path)) if in_creds.is_none() => Err(TransportError::Credentials {
            why: format!(
                "AWS_PROFILE={name}, but {path} has no [{name}] section: add it, or pick another profile"
            ),
            source: None,
        }),
        (None, _) => Err(TransportError::Credentials {
            why: format!(
                "AWS_PROFILE is set, but there is no credentials file to read it from ({}); create it or set AWS_SHARED_CREDENTIALS_FILE",
                env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".into())
            ),
            source: None,
        }),
        _ => Ok((None, CredsFrom::None)),
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
            (None, None) => from_profile(&env)?,
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
    fn a_profiles_credential_process_comes_after_its_static_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
        let answer = |key: &str| {
            format!("echo '{{\"Version\":1,\"AccessKeyId\":\"{key}\",\"SecretAccessKey\":\"S\"}}'")
        };
        std::fs::write(
            &creds,
            format!(
                "[keys]\naws_access_key_id=STATIC\naws_secret_access_key=S\ncredential_process={}\n[proc]\ncredential_process={}\n",
                answer("NOTRUN"),
                answer("FROMCREDS")
            ),
        )
        .unwrap();
        std::fs::write(
            &config,
            format!(
                "[default]\ncredential_process={}\n[profile proc]\ncredential_process={}\n[profile cfg]\ncredential_process={}\n[profile regiononly]\nregion=eu-west-1\n[cfg]\ncredential_process=false\n",
                answer("DEFAULT"),
                answer("SHADOWED"),
                answer("FROMCONFIG")
            ),
        )
        .unwrap();
        let (c, k) = (creds.to_str().unwrap(), config.to_str().unwrap());
        let key = |profile: Option<&str>| {
            let mut env = vec![("AWS_SHARED_CREDENTIALS_FILE", c), ("AWS_CONFIG_FILE", k)];
            env.extend(profile.map(|p| ("AWS_PROFILE", p)));
            let s = resolve("s3://rel", &S3Options::default(), &env);
            (
                s.credentials.map(|c| c.key_id),
                s.credentials_from.to_string(),
            )
        };
        assert_eq!(key(Some("keys")).0.as_deref(), Some("STATIC"));
        let (id, from) = key(Some("proc"));
        assert_eq!(id.as_deref(), Some("FROMCREDS"));
        assert_eq!(from, format!("credential_process of profile [proc] in {c}"));
        // In the config file a profile is [profile NAME]; [cfg] is not it.
        let (id, from) = key(Some("cfg"));
        assert_eq!(id.as_deref(), Some("FROMCONFIG"));
        assert_eq!(from, format!("credential_process of profile [cfg] in {k}"));
        assert_eq!(key(None).0.as_deref(), Some("DEFAULT"));
        // A profile with only settings gives no credentials (later sources may).
        assert_eq!(key(Some("regiononly")).0, None);
        let e = Settings::resolve(
            "s3://rel",
            &S3Options::default(),
            &env_of(&[
                ("AWS_SHARED_CREDENTIALS_FILE", c),
                ("AWS_CONFIG_FILE", k),
                ("AWS_PROFILE", "absent"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no [absent] section"), "{e}");
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
