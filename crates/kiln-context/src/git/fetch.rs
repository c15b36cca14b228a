//! Cloning one commit into a bare scratch repository with gitoxide.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::GitCredentials;
use super::transport;

/// What to fetch.
#[derive(Debug, Clone)]
pub(crate) enum Wanted<'a> {
    /// The remote's HEAD.
    Head,
    /// A branch or tag by short name, or a full `refs/…` name.
    Ref(&'a str),
    /// One commit by id.
    Commit(&'a str),
}

/// How to connect.
#[derive(Clone)]
pub(crate) struct Connect {
    pub credentials: GitCredentials,
    /// The rustls configuration for an HTTP(S) host.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Fetches `wanted` from `url` into a new bare repository at `git_dir`, at depth
/// 1 when `shallow`; returns the repository and the id of the commit fetched.
pub(crate) fn clone_bare(
    url: &str,
    wanted: &Wanted<'_>,
    shallow: bool,
    connect: &Connect,
    git_dir: &Path,
) -> gix::Result<(gix::Repository, gix::ObjectId)> {
    let mut prepare = gix::clone::PrepareFetch::new(
        url,
        git_dir,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        gix::open::Options::isolated(),
    )?;
    prepare = match wanted {
        Wanted::Head => prepare,
        Wanted::Ref(name) if name.starts_with("refs/") => prepare.with_revision(Some(*name))?,
        Wanted::Ref(name) => prepare.with_ref_name(Some(*name))?,
        Wanted::Commit(id) => prepare.with_revision(Some(*id))?,
    };
    if shallow {
        prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
            NonZeroU32::new(1).expect("one is not zero"),
        ));
    }
    let connect = connect.clone();
    prepare = prepare.configure_connection(move |connection| {
        connection.set_credentials(transport::credentials_helper(connect.credentials.clone()));
        if let Some(tls) = &connect.tls {
            connection.set_transport_options(Box::new(transport::http_options(tls.clone())));
        }
        Ok(())
    });
    let (repo, _outcome) = prepare.fetch_only(gix::progress::Discard, &AtomicBool::new(false))?;
    let commit = repo.head_commit()?.id;
    Ok((repo, commit))
}
