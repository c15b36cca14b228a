//! Parsing a git context: the URL, its `#REF#COMMIT` tail, `--git` options and
//! credentials.

use kiln_auth::Secret;

use crate::ContextError;

/// A git repository to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What is fetched: scheme, host and path, never user info.
    pub(crate) url: url::Url,
    /// REF after the first `#`, if any.
    pub(crate) reference: Option<String>,
    /// COMMIT after the second `#`, if any (full hex id).
    pub(crate) commit: Option<String>,
    /// User info found in the URL (used when no variable gives credentials).
    pub(crate) url_credentials: GitCredentials,
}

/// kaniko's `--git` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitOptions {
    /// `branch=`: the branch (or tag) to check out; overrides a `#REF`.
    pub branch: Option<String>,
    /// `single-branch=`: fetch only the ref built. kiln always fetches only that
    /// ref (at depth 1 when it can), so this changes nothing.
    pub single_branch: bool,
    /// `recurse-submodules=`: check submodules out too, recursively.
    pub recurse_submodules: bool,
    /// `insecure-skip-tls=`: do not verify the server's certificate.
    pub insecure_skip_tls: bool,
}

/// Credentials for a private repository over HTTP(S).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GitCredentials {
    /// The user name.
    pub username: Option<String>,
    /// The password or token.
    pub password: Option<Secret>,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("username", &self.username.as_ref().map(|_| "<set>"))
            .field("password", &self.password)
            .finish()
    }
}

impl GitCredentials {
    /// kaniko's variables: `GIT_TOKEN` (sent as the user name with an empty
    /// password, as kaniko does) wins over `GIT_USERNAME` / `GIT_PASSWORD`.
    pub fn from_env(env: &dyn kiln_auth::Environment) -> GitCredentials {
        GitCredentials::from_vars(|name| env.var(name))
    }

    /// [`GitCredentials::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> GitCredentials {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(token) = get("GIT_TOKEN") {
            return GitCredentials {
                username: Some(token),
                password: Some(Secret::new("")),
            };
        }
        GitCredentials {
            username: get("GIT_USERNAME"),
            password: get("GIT_PASSWORD").map(Secret::new),
        }
    }

    /// True when neither a user name nor a password is set.
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.password.is_none()
    }
}

impl GitOptions {
    /// Parses kaniko's `--git` value: `key=value`, or several separated by commas
    /// (`branch=main,single-branch=true,recurse-submodules=false,insecure-skip-tls=false`).
    /// A comma splits only before a known key, so a branch name may hold commas.
    pub fn parse(value: &str) -> Result<GitOptions, ContextError> {
        let mut out = GitOptions::default();
        out.apply(value)?;
        Ok(out)
    }

    /// Applies one more `--git` value on top of these options.
    pub fn apply(&mut self, value: &str) -> Result<(), ContextError> {
        let fail = |reason: String| ContextError::Invalid {
            input: format!("--git {value}"),
            reason,
        };
        for pair in split_pairs(value) {
            let (key, val) = pair
                .split_once('=')
                .ok_or_else(|| fail(format!("{pair:?} is not key=value")))?;
            let flag = |v: &str| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(fail(format!("{key} must be true or false, not {v:?}"))),
            };
            match key {
                "branch" => self.branch = Some(val.to_string()).filter(|b| !b.is_empty()),
                "single-branch" => self.single_branch = flag(val)?,
                "recurse-submodules" => self.recurse_submodules = flag(val)?,
                "insecure-skip-tls" => self.insecure_skip_tls = flag(val)?,
                _ => {
                    return Err(fail(format!(
                        "unknown option {key:?} (known: branch, single-branch, recurse-submodules, insecure-skip-tls)"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl GitSource {
    /// Parses a `--context` value (or an `ADD` source) that names a git
    /// repository; `Ok(None)` when it is not one (a plain `https://` URL is a
    /// tarball). `pull_method` is `GIT_PULL_METHOD`: the scheme kaniko's
    /// `git://` form is fetched with (`https` when unset).
    pub fn parse(
        input: &str,
        pull_method: Option<&str>,
    ) -> Result<Option<GitSource>, ContextError> {
        let (base, fragment) = match input.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (input, None),
        };
        let url_text = if let Some(rest) = base.strip_prefix("git://") {
            let scheme = match pull_method.unwrap_or("https") {
                "https" | "" => "https",
                "http" => "http",
                "git" => "git",
                other => {
                    return Err(ContextError::Invalid {
                        input: redact(input),
                        reason: format!(
                            "GIT_PULL_METHOD={other:?} is not https, http or git; unset it for https"
                        ),
                    });
                }
            };
            format!("{scheme}://{rest}")
        } else if base.starts_with("https://") || base.starts_with("http://") {
            let path_end = base.split(['?']).next().unwrap_or(base);
            if !path_end.ends_with(".git") && !path_end.ends_with(".git/") {
                return Ok(None);
            }
            base.to_string()
        } else {
            return Ok(None);
        };
        let invalid = |reason: String| ContextError::Invalid {
            input: redact(input),
            reason,
        };
        let mut url = url::Url::parse(&url_text)
            .map_err(|e| invalid(format!("not a valid repository URL: {e}")))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the repository URL has no host".into()));
        }
        let url_credentials = GitCredentials {
            username: Some(url.username().to_string()).filter(|u| !u.is_empty()),
            password: url.password().map(Secret::new),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut parts = fragment.unwrap_or_default().splitn(2, '#');
        let reference = parts.next().filter(|r| !r.is_empty()).map(str::to_string);
        let commit = parts.next().filter(|c| !c.is_empty()).map(str::to_string);
        if let Some(c) = &commit
            && !(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(format!(
                "{c:?} after the second # must be a full 40-character commit id"
            )));
        }
        if let Some(r) = &reference
            && (r.contains("..") || r.starts_with('/') || r.contains(['\\', ' ', '~', '^', ':']))
        {
            return Err(invalid(format!("{r:?} is not a valid ref name")));
        }
        Ok(Some(GitSource {
            url,
            reference,
            commit,
            url_credentials,
        }))
    }

    /// The repository URL as shown to users (no user info).
    pub fn display_url(&self) -> String {
        self.url.to_string()
    }

    /// The ref that will be built: `--git branch=`, else `#REF`, else `HEAD`.
    pub fn effective_ref<'a>(&'a self, options: &'a GitOptions) -> Option<&'a str> {
        options.branch.as_deref().or(self.reference.as_deref())
    }

    /// The commit pinned after the second `#`.
    pub fn commit(&self) -> Option<&str> {
        self.commit.as_deref()
    }

    /// The scheme, host and port fetched from, as `scheme://host[:port]`:
    /// the boundary credentials are scoped to.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

const KEYS: [&str; 4] = [
    "branch",
    "single-branch",
    "recurse-submodules",
    "insecure-skip-tls",
];

/// `a=1,b=2` into pairs, splitting at a comma only when a known key follows it.
fn split_pairs(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in value.match_indices(',') {
        let rest = &value[i + 1..];
        if KEYS
            .iter()
            .any(|k| rest.strip_prefix(k).is_some_and(|r| r.starts_with('=')))
        {
            out.push(&value[start..i]);
            start = i + 1;
        }
    }
    out.push(&value[start..]);
    out.retain(|p| !p.is_empty());
    out
}

/// `input` with any user info (`user:password@`) removed, for messages.
pub fn redact(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    let authority_end = rest.find(['/', '#', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaniko_form_defaults_to_https_and_keeps_ref_and_commit() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let s = GitSource::parse(&format!("git://example.com/a/b.git#refs/heads/x#{c}"), None)
            .unwrap()
            .unwrap();
        assert_eq!(s.display_url(), "https://example.com/a/b.git");
        assert_eq!(s.reference.as_deref(), Some("refs/heads/x"));
        assert_eq!(s.commit(), Some(c));
        let s = GitSource::parse("git://127.0.0.1:9418/r", Some("git"))
            .unwrap()
            .unwrap();
        assert_eq!(s.display_url(), "git://127.0.0.1:9418/r");
        assert!(
            GitSource::parse("git://h/r", Some("ssh"))
                .unwrap_err()
                .to_string()
                .contains("GIT_PULL_METHOD")
        );
    }

    #[test]
    fn https_is_git_only_with_a_dot_git_path_and_user_info_is_taken_out() {
        assert!(
            GitSource::parse("https://h/ctx.tar.gz", None)
                .unwrap()
                .is_none()
        );
        let s = GitSource::parse("https://bob:hunter2@h/r.git#v1", None)
            .unwrap()
            .unwrap();
        assert_eq!(s.display_url(), "https://h/r.git");
        assert_eq!(s.url_credentials.username.as_deref(), Some("bob"));
        assert_eq!(
            s.url_credentials.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        assert!(!format!("{s:?}").contains("hunter2"));
        let err = GitSource::parse("https://bob:hunter2@h/r.git#v1#abc", None).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("commit id"), "{err}");
    }

    #[test]
    fn git_flag_options() {
        let o = GitOptions::parse(
            "branch=dev,single-branch=true,recurse-submodules=true,insecure-skip-tls=true",
        )
        .unwrap();
        assert_eq!(o.branch.as_deref(), Some("dev"));
        assert!(o.single_branch && o.recurse_submodules && o.insecure_skip_tls);
        assert!(
            GitOptions::parse("depth=1")
                .unwrap_err()
                .to_string()
                .contains("unknown option")
        );
        assert!(
            GitOptions::parse("recurse-submodules=yes")
                .unwrap_err()
                .to_string()
                .contains("true or false")
        );
    }

    #[test]
    fn token_wins_over_user_and_password() {
        let env = kiln_auth::MapEnvironment::new()
            .with("GIT_TOKEN", "t0k")
            .with("GIT_USERNAME", "u");
        let c = GitCredentials::from_env(&env);
        assert_eq!(c.username.as_deref(), Some("t0k"));
        assert!(!format!("{c:?}").contains("t0k"));
    }
}
