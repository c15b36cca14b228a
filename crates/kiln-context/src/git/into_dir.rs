//! Fetching a [`GitSource`] into a directory: clone (shallow when the ref
//! allows), write the tree, then the submodules when asked.

use std::path::Path;

use kiln_auth::Environment;

use super::checkout::{self, CheckoutError};
use super::fetch::{self, Connect, Wanted};
use super::submodules;
use super::{GitCredentials, GitOptions, GitSource};
use crate::ContextError;

/// Submodules inside submodules stop here.
const MAX_SUBMODULE_DEPTH: usize = 8;

/// What was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit whose tree is in the destination (hex).
    pub commit: String,
    /// The URL it came from (no user info).
    pub url: String,
    /// The bare repository it was fetched into (inside the scratch dir).
    pub git_dir: std::path::PathBuf,
}

/// Everything one fetch (and its submodules) shares.
struct Session<'a> {
    options: &'a GitOptions,
    credentials: GitCredentials,
    /// Credentials go only to the repository's own origin, never to submodules
    /// on other hosts.
    origin: url::Origin,
    env: &'a dyn Environment,
    scratch: &'a Path,
}

impl GitSource {
    /// Fetches this repository and writes the tree of the commit built (the
    /// pinned commit, else the tip of the ref, else HEAD) into `dest`, which
    /// must exist and be empty; `.git` is not written. `scratch` holds the bare
    /// clones (the caller removes it). `credentials` from the caller (kaniko's
    /// variables) win over user info in the URL.
    pub fn fetch(
        &self,
        options: &GitOptions,
        credentials: &GitCredentials,
        env: &dyn Environment,
        scratch: &Path,
        dest: &Path,
    ) -> Result<Fetched, ContextError> {
        let credentials = if credentials.is_empty() {
            self.url_credentials.clone()
        } else {
            credentials.clone()
        };
        let session = Session {
            options,
            origin: self.url.origin(),
            credentials,
            env,
            scratch,
        };
        tracing::info!(
            url = %self.url,
            reference = self.effective_ref(options).unwrap_or("HEAD"),
            commit = self.commit.as_deref().unwrap_or(""),
            "fetching git context"
        );
        let (commit, git_dir) = session.fetch_into(
            &self.url,
            self.effective_ref(options),
            self.commit.as_deref(),
            dest,
            0,
        )?;
        Ok(Fetched {
            commit: commit.to_string(),
            url: self.url.to_string(),
            git_dir,
        })
    }
}

impl Session<'_> {
    fn connect(&self, url: &url::Url) -> Result<Connect, ContextError> {
        let credentials = if url.origin() == self.origin {
            self.credentials.clone()
        } else {
            GitCredentials::default()
        };
        // Plain HTTP gets one too: reqwest builds its TLS backend whatever the
        // scheme, and kiln's is the only crypto provider there is.
        let tls = if matches!(url.scheme(), "https" | "http") {
            let host = url.host_str().unwrap_or_default().to_string();
            let mut tls_options = kiln_auth::TlsOptions::default();
            if self.options.insecure_skip_tls {
                tls_options.skip_verify.insert(host.clone());
            }
            let key = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            };
            let config = kiln_auth::TlsConfigs::new(tls_options, self.env)
                .and_then(|c| c.client_config(&key))
                .map_err(|e| ContextError::Git {
                    url: url.to_string(),
                    reference: "HEAD".into(),
                    what: "setting up TLS",
                    reason: e.to_string(),
                    hint: "; check SSL_CERT_FILE and SSL_CERT_DIR".into(),
                })?;
            Some(config)
        } else {
            None
        };
        Ok(Connect { credentials, tls })
    }

    fn fetch_into(
        &self,
        url: &url::Url,
        reference: Option<&str>,
        commit: Option<&str>,
        dest: &Path,
        depth: usize,
    ) -> Result<(gix::ObjectId, std::path::PathBuf), ContextError> {
        let connect = self.connect(url)?;
        let shown_ref = reference.unwrap_or("HEAD");
        let fail = |what: &'static str, e: gix::Error| self.git_error(url, shown_ref, what, &e);
        let by_ref = match reference {
            Some(r) => Wanted::Ref(r),
            None => Wanted::Head,
        };
        let new_git_dir = || {
            tempfile::Builder::new()
                .prefix("git-")
                .tempdir_in(self.scratch)
                .map(|d| d.keep())
                .map_err(|e| ContextError::Write {
                    url: url.to_string(),
                    path: self.scratch.to_path_buf(),
                    source: e,
                })
        };
        let (repo, head) = match commit {
            None => fetch::clone_bare(url.as_str(), &by_ref, true, &connect, &new_git_dir()?)
                .map_err(|e| fail("fetching", e))?,
            Some(id) => {
                match fetch::clone_bare(
                    url.as_str(),
                    &Wanted::Commit(id),
                    true,
                    &connect,
                    &new_git_dir()?,
                ) {
                    Ok(found) => found,
                    Err(e) => {
                        // Servers that refuse a commit id as a want: fetch the
                        // whole history of the ref and look for the commit in it.
                        tracing::debug!(url = %url, commit = id, error = %first_line(&e), "fetching the commit by id failed; fetching the ref's history");
                        let (repo, _) = fetch::clone_bare(
                            url.as_str(),
                            &by_ref,
                            false,
                            &connect,
                            &new_git_dir()?,
                        )
                        .map_err(|e| fail("fetching", e))?;
                        let oid = gix::ObjectId::from_hex(id.as_bytes()).map_err(|e| {
                            fail("reading the commit id", gix::Error::from_error(e))
                        })?;
                        if repo.find_commit(oid).is_err() {
                            return Err(ContextError::Git {
                                url: url.to_string(),
                                reference: shown_ref.to_string(),
                                what: "finding the pinned commit",
                                reason: format!("commit {id} is not in the history of {shown_ref}"),
                                hint: "; pin a commit reachable from the ref after the first #"
                                    .into(),
                            });
                        }
                        (repo, oid)
                    }
                }
            }
        };
        let tree = repo
            .find_commit(head)
            .and_then(|c| c.tree_id().map(|t| t.detach()))
            .map_err(|e| fail("reading the commit", e))?;
        let links = checkout::write_tree(&repo, tree, dest).map_err(|e| match e {
            CheckoutError::Git(e) => fail("reading the tree", e),
            CheckoutError::Io(path, source) => ContextError::Write {
                url: url.to_string(),
                path,
                source,
            },
            CheckoutError::BadName(name) => ContextError::Git {
                url: url.to_string(),
                reference: shown_ref.to_string(),
                what: "checking out",
                reason: format!(
                    "the tree holds the entry {name:?}, which git refuses to check out"
                ),
                hint: String::new(),
            },
        })?;
        let git_dir = repo.path().to_path_buf();
        if !self.options.recurse_submodules || links.is_empty() {
            return Ok((head, git_dir));
        }
        if depth >= MAX_SUBMODULE_DEPTH {
            return Err(ContextError::Git {
                url: url.to_string(),
                reference: shown_ref.to_string(),
                what: "checking out submodules",
                reason: format!("submodules nest deeper than {MAX_SUBMODULE_DEPTH} levels"),
                hint: "; use --git recurse-submodules=false".into(),
            });
        }
        let gitmodules = repo
            .find_tree(tree)
            .ok()
            .and_then(|t| t.find_entry(".gitmodules").map(|e| e.object_id()))
            .and_then(|id| repo.find_blob(id).ok().map(|b| b.data.clone()))
            .unwrap_or_default();
        let subs =
            submodules::resolve(&gitmodules, &links, url).map_err(|reason| ContextError::Git {
                url: url.to_string(),
                reference: shown_ref.to_string(),
                what: "reading .gitmodules",
                reason,
                hint: String::new(),
            })?;
        for sub in subs {
            let commit = sub.link.commit.to_string();
            tracing::info!(url = %sub.url, path = %sub.link.path, commit = %commit, "fetching submodule");
            self.fetch_into(
                &sub.url,
                None,
                Some(&commit),
                &dest.join(&sub.link.path),
                depth + 1,
            )?;
        }
        Ok((head, git_dir))
    }

    fn git_error(
        &self,
        url: &url::Url,
        reference: &str,
        what: &'static str,
        e: &gix::Error,
    ) -> ContextError {
        let mut reason = chain(e);
        for secret in [
            self.credentials
                .password
                .as_ref()
                .map(|p| p.expose().to_string()),
            self.credentials.username.clone(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 3)
        {
            reason = reason.replace(&secret, "<redacted>");
        }
        if self.credentials.is_empty() && reason.contains("No credentials were returned") {
            reason = "the server asks for credentials (HTTP 401) and none are set".into();
        }
        let lower = reason.to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let hint = if any(&["certificate", "unknownissuer", "tls handshake"]) {
            "; trust the server's CA with SSL_CERT_FILE or SSL_CERT_DIR, or pass --git insecure-skip-tls=true"
        } else if any(&["unauthorized", "authenticat", "credential", "forbidden"]) {
            if self.credentials.is_empty() {
                "; the repository needs credentials: set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN"
            } else {
                "; the server refused the credentials from GIT_USERNAME/GIT_PASSWORD (or GIT_TOKEN, or the URL)"
            }
        } else if any(&["connection refused", "dns", "resolve", "connect"]) {
            "; check host and port (kaniko's git://HOST/PATH form is fetched with GIT_PULL_METHOD: https by default, http, or git)"
        } else if reference != "HEAD"
            && any(&[
                "not found",
                "could not find",
                "no match",
                "did not match",
                "couldn't find",
            ])
        {
            "; check the ref after # or --git branch="
        } else {
            ""
        };
        ContextError::Git {
            url: url.to_string(),
            reference: reference.to_string(),
            what,
            reason,
            hint: hint.to_string(),
        }
    }
}

/// gitoxide's error chain on one line.
fn chain(e: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for err in e.iter_errors() {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn first_line(e: &gix::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
