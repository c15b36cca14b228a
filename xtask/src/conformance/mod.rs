//! `cargo xtask conformance [--reference docker|buildah] [FILTER]`: kiln
//! against a reference builder (buildah 1.28 by default, or Docker 20.10's
//! built-in BuildKit 0.8 on a private dockerd) on the kaniko corpus and the
//! project's fixtures (docs/conformance.md).
//!
//! Base images are made offline and pushed to a local plain-HTTP registry
//! ([`bases`]); each case's Dockerfile is rewritten to use them ([`rewrite`]),
//! built by kiln and the reference ([`builders`], [`mod@reference`]), pulled back with skopeo and umoci
//! ([`pull`]), and the two images compared ([`compare`]) after removing only
//! buildah's documented artifacts ([`artifacts`]); Docker's are reported
//! and explained in the docs, not filtered. Cases run one after the
//! other (the machine has two cores), each builder under a time limit.

mod artifacts;
mod bases;
mod builders;
mod case;
mod compare;
mod corpus;
mod expand;
mod images;
mod pull;
mod reference;
mod rewrite;
mod skips;
mod tree;

use anyhow::{Context, Result};
use case::{Harness, Verdict};
use std::time::Instant;

/// Differences printed per case before the rest are counted.
const MAX_DIFFERENCES: usize = 40;

/// `[--reference docker|buildah] [--self-check] [FILTER]`; KILN_BIN overrides
/// the kiln binary (default: `<target>/debug/kiln` from `cargo build -p kiln`).
pub fn run(args: &[String]) -> Result<()> {
    let (reference, args) = reference::Reference::from_args(args)?;
    // Every tool a case needs, up front: one line naming what is missing.
    let reference_tool = match reference {
        reference::Reference::Buildah => "buildah",
        reference::Reference::Docker => "dockerd",
    };
    for tool in ["skopeo", "umoci", "timeout", "cp", "sh", reference_tool] {
        crate::util::require(tool)?;
    }
    let self_check = args.iter().any(|a| a == "--self-check");
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("", String::as_str);
    let started = Instant::now();
    let out = crate::util::target_dir().join("conformance");
    let kiln = std::env::var_os("KILN_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::util::target_dir().join("debug/kiln"));
    anyhow::ensure!(
        kiln.exists(),
        "needs the kiln binary at {}: run `cargo build -p kiln` first",
        kiln.display()
    );
    let logs = out.join("logs");
    fs_err::create_dir_all(&logs)?;
    let work = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&out)
        .context("creating the run directory")?;
    let buildah_storage = work.path().join("buildah");
    let cases_dir = work.path().join("cases");
    let mut bases = bases::Bases::start(&out)?;
    let engine = (reference == reference::Reference::Docker).then(kiln_testkit::Dockerd::start);
    let mut harness = Harness {
        bases: &mut bases,
        kiln: &kiln,
        reference,
        buildah_storage: &buildah_storage,
        docker: engine.as_ref(),
        logs: &logs,
        work: &cases_dir,
        self_check,
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for entry in corpus::all()? {
        let (case, name) = match entry {
            corpus::Entry::Skip { name, reason } => {
                if name.contains(filter) {
                    println!("SKIP {name}: {reason}");
                    skipped += 1;
                }
                continue;
            }
            corpus::Entry::Run(case) => {
                let name = case.name.clone();
                (case, name)
            }
        };
        if !name.contains(filter) {
            continue;
        }
        let case_started = Instant::now();
        let verdict = case::run(&case, &mut harness)
            .unwrap_or_else(|e| Verdict::Failed(vec![format!("harness error: {e:#}")]));
        let secs = case_started.elapsed().as_secs_f64();
        match verdict {
            Verdict::Passed => {
                println!("PASS {name} ({secs:.1} s)");
                passed += 1;
            }
            Verdict::Skipped(reason) => {
                println!("SKIP {name}: {reason}");
                skipped += 1;
            }
            Verdict::Failed(differences) => {
                println!("FAIL {name} ({secs:.1} s)");
                for line in differences.iter().take(MAX_DIFFERENCES) {
                    println!("  {line}");
                }
                if differences.len() > MAX_DIFFERENCES {
                    println!("  ... and {} more", differences.len() - MAX_DIFFERENCES);
                }
                failed += 1;
            }
        }
    }
    println!("run time: {:.0} s", started.elapsed().as_secs_f64());
    println!("reference: {}", reference.name());
    println!("conformance: {passed} passed, {failed} failed, {skipped} skipped");
    anyhow::ensure!(failed == 0, "{failed} conformance cases failed");
    Ok(())
}
