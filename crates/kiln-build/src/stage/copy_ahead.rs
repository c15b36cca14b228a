//! A COPY's layer encoded while its stage's base is still being laid out.
//!
//! The first step of a stage that needs its files (a COPY right after `FROM`,
//! or after WORKDIRs, which then wait for the files themselves: see
//! `workdir`) would wait for the whole base to download and unpack before
//! reading a single source, and only then encode and upload its layer. Yet a COPY's
//! layer depends on the base only through a `--chown` name (looked up in the
//! base's `/etc/passwd`), the destination's existing directories (whose
//! metadata the layer repeats, and which make a destination a directory) and
//! symlinks on its path. So when the stage's files are not laid out yet, the
//! COPY is planned as onto an empty root and that layer is encoded (and
//! uploaded, when pushed) on a thread of its own while this thread lays the
//! base out; then the COPY is planned again against the real root:
//!
//! - the same entries: the layer is byte for byte the one the usual path
//!   would have made (the encoding is a function of the entries), so it is
//!   kept, and the entries are written into the root for later steps;
//! - different entries (the base has a directory or a symlink on the
//!   destination's path): the early encoding is stopped, its uploads are
//!   dropped, and the step is done the usual way, as if never tried.
//!
//! A `COPY --link` is planned on an empty root whatever the base holds
//! (BuildKit's semantics), so its early layer is always kept.
//!
//! Not tried where a plan against an empty root cannot stand in: `--chown` by
//! name, ADD's extraction of archives (which unpacks into a staging
//! directory both plans would share), kaniko's in-place mode, one snapshot
//! per stage.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_layer::Entry;
use kiln_oci::Digest;

use crate::owner::resolve_chown;

use super::copy_add::{CopySources, entries, entries_on_root};
use super::layer::{encode_step_layer, step_apply_options};
use super::state::{StageRun, StepResult};

/// How a COPY tried ahead of its stage's root ended.
pub(super) enum Ahead {
    /// Not tried: the caller does the step the usual way.
    NotTried,
    /// Done: the step's layer (`None`: it has no entries).
    Done(Option<Digest>),
    /// The base changes the layer: the entries planned against the laid-out root,
    /// for the caller to commit the usual way.
    Differs(Vec<Entry>),
}

/// Runs the COPY ahead of its stage's root when that root is still to be laid
/// out and the COPY may be planned without it. `unresolved`: the entries as
/// they would land in an empty root without `--chown` (the plan itself when
/// there is none).
pub(super) fn ahead_of_root(
    run: &mut StageRun<'_, '_>,
    sources: &CopySources<'_>,
    staging: &Path,
    created_by: &str,
    unresolved: &[Entry],
) -> StepResult<Ahead> {
    let base_to_lay_out = run.rootfs.is_none()
        && run
            .pending
            .as_ref()
            .is_some_and(|p| p.from.is_some() || !p.layers.is_empty());
    let env = run.env;
    if !base_to_lay_out || env.in_place || env.options.single_snapshot || sources.extract {
        return Ok(Ahead::NotTried);
    }
    let owned;
    let planned = match &sources.cmd.chown {
        None => unresolved,
        Some(spec) => {
            let Ok(owner) = resolve_chown(spec, None) else {
                // A name: only the base's /etc/passwd knows it.
                return Ok(Ahead::NotTried);
            };
            // A plan that fails here (a missing source) fails the same way on the
            // usual path, which reports it.
            let Ok(planned) = entries(run, sources, None, Some(owner), staging) else {
                return Ok(Ahead::NotTried);
            };
            owned = planned;
            &owned
        }
    };
    if planned.is_empty() {
        return Ok(Ahead::NotTried);
    }
    let stage = run.stage_index();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let early = planned.to_vec();
        let encoding = s.spawn(|| encode_step_layer(env, stage, early, None, Some(&stop)));
        let laid_out = lay_out_and_compare(run, sources, staging, planned);
        if !matches!(laid_out, Ok(None)) {
            stop.store(true, Ordering::Relaxed);
        }
        let encoded = encoding
            .join()
            .unwrap_or_else(|_| Err("internal: encoding the COPY's layer panicked".into()));
        if let Some(real) = laid_out? {
            tracing::debug!("the base changes the COPY's layer: encoding it again");
            return Ok(Ahead::Differs(real));
        }
        let layer = encoded?;
        tracing::debug!(layer = %layer.digest, "COPY layer encoded ahead of the base");
        // The next RUN takes a fresh baseline.
        run.snapshotter = None;
        Ok(Ahead::Done(Some(
            run.add_layer(layer, created_by.to_string()),
        )))
    })
}

/// Lays the stage's root out and plans the COPY against it: when that gives
/// `planned`, writes the entries into the root (`None`); else the entries it
/// gives, for the usual path.
fn lay_out_and_compare(
    run: &mut StageRun<'_, '_>,
    sources: &CopySources<'_>,
    staging: &Path,
    planned: &[Entry],
) -> StepResult<Option<Vec<Entry>>> {
    let root = run.root()?;
    let real = entries_on_root(run, sources, &root, staging)?;
    if real != planned {
        return Ok(Some(real));
    }
    kiln_layer::apply_entries(real, &root, &step_apply_options())
        .map_err(|e| format!("writing the step's files into the stage root: {e}"))?;
    Ok(None)
}
