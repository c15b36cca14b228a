//! kaniko's push permission check: each destination repository must answer a
//! push-scoped blob `HEAD` (reachability, TLS and credentials are all exercised)
//! before any stage runs.
//!
//! The check needs nothing from the build, so it runs while the first bases
//! are resolved (manifest and config requests), not before them: the stage
//! loop and the scheduler's puller await [`PushAccess::passed`] together with
//! that registry work and start no stage until it has passed. A failing check
//! is the build's error (reported ahead of any pull error), no stage runs, so
//! no layer is uploaded and no manifest pushed.

use kiln_registry::{Client, RepoRef};
use tokio::sync::OnceCell;

use crate::error::BuildError;
use crate::options::BuildOptions;

/// The check of one build, run once by whoever awaits it first.
pub(crate) struct PushAccess<'a> {
    /// The client and options to check with; `None` when there is nothing to check
    /// (`--no-push`, `--skip-push-permission-check`).
    check: Option<(&'a Client, &'a BuildOptions)>,
    outcome: OnceCell<Result<(), String>>,
}

impl<'a> PushAccess<'a> {
    /// The check `options` ask for, through the build's registry client.
    pub fn new(
        registry: &'a std::sync::OnceLock<Client>,
        options: &'a BuildOptions,
    ) -> Result<PushAccess<'a>, BuildError> {
        let check = match options.no_push || options.skip_push_permission_check {
            true => None,
            false => Some((crate::engine::registry_client(registry, options)?, options)),
        };
        Ok(PushAccess {
            check,
            outcome: OnceCell::new(),
        })
    }

    /// Waits for the check (running it if nobody has yet); its failure says which
    /// destination and why.
    pub async fn passed(&self) -> Result<(), BuildError> {
        let Some((client, options)) = self.check else {
            return Ok(());
        };
        self.outcome
            .get_or_init(|| check(client, options))
            .await
            .clone()
            .map_err(BuildError::Registry)
    }
}

async fn check(client: &Client, options: &BuildOptions) -> Result<(), String> {
    let probe = kiln_oci::Digest::sha256_of(b"");
    for d in &options.destinations {
        let r = kiln_oci::Reference::parse(d).map_err(|e| format!("--destination {d:?}: {e}"))?;
        let repo = RepoRef::new(r.registry(), r.repository());
        client.blob_exists(&repo, &probe).await.map_err(|e| {
            format!(
                "checking push access to {d} before building (--skip-push-permission-check skips this): {e}"
            )
        })?;
    }
    Ok(())
}
