//! The stage graph of every target platform, run in parallel (`--jobs`).
//!
//! Nodes are (platform, stage) pairs; a node waits for the stages it needs in its own
//! platform's plan. Nodes with the same [`StageKey`] (a stage pinned to the build
//! platform) are one build: the first in plan order builds it, the others take its
//! output. Two phases:
//!
//! 1. Every node's registry work, in plan order on the caller's task: bases pulled for
//!    the stage's platform, base layers fetched, `--from` images unpacked
//!    ([`crate::engine::prepare_stage`]).
//! 2. The stage runs, synchronous code, on scoped threads: whenever a node's needs are
//!    built and fewer than `jobs` are running, it starts. The first error stops new
//!    starts; the running ones finish; that error is returned.
//!
//! Stages are deterministic given their inputs, so the images are byte-identical to a
//! sequential build's. Never used in in-place mode (every stage is `/`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::engine::prepare_stage;
use crate::error::BuildError;
use crate::image::ImageState;
use crate::outcome::PhaseTimings;
use crate::platforms::{StageKey, stage_platform};
use crate::stage::{Base, BuildEnv, StageOutput, StageRun};

/// (index into the envs, Dockerfile index of the stage).
type NodeId = (usize, usize);

struct Node {
    id: NodeId,
    position: usize,
    /// The node that builds this one's key (itself, or an earlier platform's).
    builder: NodeId,
    needs: Vec<NodeId>,
    base: Option<Base>,
}

/// Builds every plan of `envs` and returns each one's target image, in `envs` order.
pub(crate) async fn build_all(
    envs: &[BuildEnv<'_>],
    registry: &std::sync::OnceLock<kiln_registry::Client>,
    jobs: usize,
    timings: &mut PhaseTimings,
) -> Result<Vec<ImageState>, BuildError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut builders: BTreeMap<StageKey, NodeId> = BTreeMap::new();
    let mut images: Vec<BTreeMap<String, PathBuf>> = Vec::new();
    let empty = BTreeMap::new();
    for (e, env) in envs.iter().enumerate() {
        let mut keys = BTreeMap::new();
        let mut unpacked = BTreeMap::new();
        for (position, stage) in env.plan.stages.iter().enumerate() {
            let key = StageKey::of(stage, &stage_platform(&env.platform, stage), &keys);
            keys.insert(stage.index, key.clone());
            let id = (e, stage.index);
            let builder = *builders.entry(key).or_insert(id);
            let base = match builder == id {
                true => Some(
                    prepare_stage(
                        env,
                        position,
                        stage,
                        registry,
                        &empty,
                        &mut unpacked,
                        timings,
                    )
                    .await?,
                ),
                false => None,
            };
            nodes.push(Node {
                id,
                position,
                builder,
                needs: stage.depends_on.iter().map(|d| (e, *d)).collect(),
                base,
            });
        }
        images.push(unpacked);
    }

    let start = Instant::now();
    let mut built: BTreeMap<NodeId, StageOutput> = BTreeMap::new();
    let result = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut running = 0;
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
                for node in nodes.iter_mut() {
                    if running >= jobs {
                        break;
                    }
                    let ready =
                        node.base.is_some() && node.needs.iter().all(|n| built.contains_key(n));
                    if !ready {
                        continue;
                    }
                    let base = node.base.take().expect("checked above");
                    let (e, index) = node.id;
                    let env = &envs[e];
                    let stage = env.plan.stage(index).expect("a node is a planned stage");
                    let done: BTreeMap<usize, StageOutput> =
                        node.needs.iter().map(|n| (n.1, built[n].clone())).collect();
                    let (id, position, unpacked, tx) =
                        (node.id, node.position, &images[e], tx.clone());
                    running += 1;
                    scope.spawn(move || {
                        let count = env.plan.stages.len();
                        let output =
                            StageRun::new(env, stage, &done, unpacked, position + 1, count, base)
                                .and_then(StageRun::run);
                        let _ = tx.send((id, output));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (id, output) = rx.recv().expect("a running stage always answers");
            running -= 1;
            match output {
                Ok(output) => {
                    built.insert(id, output);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
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
                .map(|o| o.image)
                .ok_or_else(|| BuildError::Options("internal: a target stage was not built".into()))
        })
        .collect()
}
