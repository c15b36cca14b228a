//! The stage graph of every target platform, run in parallel (`--jobs`).
//!
//! Nodes are (platform, stage) pairs; a node waits for the stages it needs in its own
//! platform's plan. Nodes with the same [`StageKey`] (a stage pinned to the build
//! platform) are one build: the first in plan order builds it, the others take its
//! output.
//!
//! - A puller thread does every building node's registry work on a runtime of its
//!   own, through the build's registry client (one set of sessions and tokens for
//!   the permission check, the pulls and the pushes), so later bases are pulled
//!   while earlier stages run; no node is reported ready before the push permission
//!   check ([`crate::push_access`]) passed, which runs while the first bases resolve:
//!   bases are resolved for the stage's platform up to three at once
//!   ([`crate::stage_loop::resolve_base`]), so a build with several bases or platforms
//!   does not wait on each registry round trip in turn; then, in plan order, the missing
//!   base layers are planned (they download while the stage unpacks them,
//!   [`crate::pull::pipeline`]) and `--from` images unpacked
//!   ([`crate::stage_loop::prepare_stage`]).
//! - The scheduler loop starts a stage, on a scoped thread, as soon as its registry
//!   work is done, the stages it needs are built and fewer than `jobs` run. The first
//!   error stops new starts (and the puller); the running stages finish; that error is
//!   returned.
//!
//! Stages are deterministic given their inputs, so the images are byte-identical to a
//! sequential build's. Never used in in-place mode (every stage is `/`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use futures_util::StreamExt;

use crate::error::BuildError;
use crate::outcome::PhaseTimings;
use crate::platforms::{StageKey, stage_platform};
use crate::pull::pipeline::{Fetch, while_fetching};
use crate::push_access::PushAccess;
use crate::stage::{Base, BuildEnv, StageOutput, StageRun};
use crate::stage_loop::{prepare_stage, resolve_base};

/// (index into the envs, Dockerfile index of the stage).
type NodeId = (usize, usize);

/// Images named by `--from`, unpacked, by reference (one platform's).
type Images = BTreeMap<String, PathBuf>;

struct Node {
    id: NodeId,
    position: usize,
    /// The node that builds this one's key (itself, or an earlier platform's).
    builder: NodeId,
    needs: Vec<NodeId>,
}

enum Event {
    /// A node's registry work is done.
    Prepared(NodeId, Result<(Base, Option<Fetch>, Images), BuildError>),
    /// The puller has nothing more to do.
    PullerDone(PhaseTimings),
    /// A stage finished.
    Built(NodeId, Result<Box<StageOutput>, BuildError>),
}

/// The nodes of every plan, in plan order.
fn nodes(envs: &[BuildEnv<'_>]) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut builders: BTreeMap<StageKey, NodeId> = BTreeMap::new();
    for (e, env) in envs.iter().enumerate() {
        let mut keys = BTreeMap::new();
        for (position, stage) in env.plan.stages.iter().enumerate() {
            let key = StageKey::of(stage, &stage_platform(&env.platform, stage), &keys);
            keys.insert(stage.index, key.clone());
            let id = (e, stage.index);
            nodes.push(Node {
                id,
                position,
                builder: *builders.entry(key).or_insert(id),
                needs: stage.depends_on.iter().map(|d| (e, *d)).collect(),
            });
        }
    }
    nodes
}

/// How many bases the puller resolves at once.
const CONCURRENT_PULLS: usize = 3;

/// The puller: every building node's registry work until done or `stop`. Bases are
/// resolved [`CONCURRENT_PULLS`] at a time ([`resolve_base`]); the rest of each node's
/// work ([`prepare_stage`]: the base recorded, its layer fetch planned, `--from` images
/// unpacked) and its report follow in plan order, so the first error in plan order is
/// the one reported and the recorded bases are in plan order whatever the registry's
/// timing. `timings.pull` is the puller's wall time.
fn pull_all(
    envs: &[BuildEnv<'_>],
    work: &[(NodeId, usize)],
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    access: &PushAccess<'_>,
    stop: &AtomicBool,
    tx: Sender<Event>,
) {
    let start = Instant::now();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let error = BuildError::Options(format!("starting the puller's runtime: {e}"));
            if let Some(((id, _), _)) = work.split_first() {
                let _ = tx.send(Event::Prepared(*id, Err(error)));
            }
            let _ = tx.send(Event::PullerDone(PhaseTimings::default()));
            return;
        }
    };
    runtime.block_on(async {
        let (resolved_tx, mut resolved_rx) = tokio::sync::mpsc::unbounded_channel();
        let resolving = async move {
            let mut resolved = futures_util::stream::iter(work)
                .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
                .map(|&(id, position)| async move {
                    let env = &envs[id.0];
                    let stage = env.plan.stage(id.1).expect("a node is a planned stage");
                    (
                        id,
                        position,
                        resolve_base(env, position, stage, registry).await,
                    )
                })
                .buffered(CONCURRENT_PULLS);
            while let Some(base) = resolved.next().await {
                // The receiver is gone once a node failed.
                if resolved_tx.send(base).is_err() {
                    break;
                }
            }
        };
        let preparing = async {
            // No node is reported (so no stage starts) before the push permission
            // check passed; the bases resolve meanwhile.
            if let Err(e) = access.passed().await {
                if let Some(((id, _), _)) = work.split_first() {
                    let _ = tx.send(Event::Prepared(*id, Err(e)));
                }
                return;
            }
            let mut images: Vec<Images> = vec![Images::new(); envs.len()];
            while let Some((id, position, base)) = resolved_rx.recv().await {
                let env = &envs[id.0];
                let stage = env.plan.stage(id.1).expect("a node is a planned stage");
                let prepared = match base {
                    Ok(base) => prepare_stage(
                        env,
                        position,
                        stage,
                        base,
                        registry,
                        &BTreeMap::new(),
                        &mut images[id.0],
                    )
                    .await
                    .map(|(base, fetch)| (base, fetch, images[id.0].clone())),
                    Err(e) => Err(e),
                };
                let failed = prepared.is_err();
                let _ = tx.send(Event::Prepared(id, prepared));
                if failed || stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            drop(resolved_rx);
        };
        futures_util::join!(resolving, preparing);
    });
    let timings = PhaseTimings {
        pull: start.elapsed(),
        ..PhaseTimings::default()
    };
    let _ = tx.send(Event::PullerDone(timings));
}

/// Builds every plan of `envs` and returns each one's target stage, in `envs` order.
/// Registry work goes through the build's one client (`registry`).
pub(crate) fn build_all(
    envs: &[BuildEnv<'_>],
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    access: &PushAccess<'_>,
    jobs: usize,
    timings: &mut PhaseTimings,
) -> Result<Vec<StageOutput>, BuildError> {
    let nodes = nodes(envs);
    let work: Vec<(NodeId, usize)> = nodes
        .iter()
        .filter(|n| n.builder == n.id)
        .map(|n| (n.id, n.position))
        .collect();
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let mut built: BTreeMap<NodeId, StageOutput> = BTreeMap::new();
    let mut prepared: BTreeMap<NodeId, (Base, Option<Fetch>, Images)> = BTreeMap::new();
    let result = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (puller_tx, work, stop) = (tx.clone(), &work, &stop);
        scope.spawn(move || {
            // A panic must still end the loop below, which waits for PullerDone.
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pull_all(envs, work, registry, access, stop, puller_tx.clone())
            }));
            if let Err(panic) = caught {
                let _ = puller_tx.send(Event::PullerDone(PhaseTimings::default()));
                std::panic::resume_unwind(panic);
            }
        });
        let (mut running, mut puller_done) = (0, false);
        let mut failed: Option<BuildError> = None;
        loop {
            // Outputs of other platforms' builds of the same stage.
            for node in nodes.iter().filter(|n| n.builder != n.id) {
                if !built.contains_key(&node.id)
                    && let Some(output) = built.get(&node.builder).cloned()
                {
                    built.insert(node.id, output);
                }
            }
            if failed.is_none() {
                for node in &nodes {
                    if running >= jobs {
                        break;
                    }
                    if !node.needs.iter().all(|n| built.contains_key(n)) {
                        continue;
                    }
                    let Some((base, fetch, images)) = prepared.remove(&node.id) else {
                        continue;
                    };
                    let (e, index) = node.id;
                    let env = &envs[e];
                    let stage = env.plan.stage(index).expect("a node is a planned stage");
                    let done: BTreeMap<usize, StageOutput> =
                        node.needs.iter().map(|n| (n.1, built[n].clone())).collect();
                    let (id, position, tx) = (node.id, node.position, tx.clone());
                    running += 1;
                    scope.spawn(move || {
                        let count = env.plan.stages.len();
                        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            while_fetching(fetch, env.blobs, env.observer, || {
                                StageRun::new(env, stage, &done, &images, position + 1, count, base)
                                    .and_then(StageRun::run)
                            })
                        }));
                        match caught {
                            Ok(output) => {
                                let _ = tx.send(Event::Built(id, output.map(Box::new)));
                            }
                            Err(panic) => {
                                // Tell the loop, then let the scope re-raise the panic.
                                let _ = tx.send(Event::Built(
                                    id,
                                    Err(BuildError::Options("internal: a stage panicked".into())),
                                ));
                                std::panic::resume_unwind(panic);
                            }
                        }
                    });
                }
            }
            if running == 0 && (puller_done || failed.is_some()) {
                break;
            }
            match rx
                .recv()
                .expect("the puller and running stages always answer")
            {
                Event::Prepared(id, Ok(ready)) => {
                    prepared.insert(id, ready);
                }
                Event::Prepared(_, Err(e)) => {
                    failed.get_or_insert(e);
                }
                Event::PullerDone(pulled) => {
                    puller_done = true;
                    timings.pull += pulled.pull;
                }
                Event::Built(id, output) => {
                    running -= 1;
                    match output {
                        Ok(output) => {
                            built.insert(id, *output);
                        }
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
            }
            if failed.is_some() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    timings.build += start.elapsed();
    result?;
    envs.iter()
        .enumerate()
        .map(|(e, env)| {
            built
                .remove(&(e, env.plan.target().index))
                .ok_or_else(|| BuildError::Options("internal: a target stage was not built".into()))
        })
        .collect()
}
