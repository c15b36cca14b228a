//! Project chores, run as `cargo xtask <command>`:
//!
//! - `demo`: kiln's main job: the bundled example built offline into an OCI
//!   layout and run, with nothing but a Rust toolchain.
//! - `test`: everything CI checks after fmt and clippy (the README's test command).
//! - `conformance`: kiln against buildah on the kaniko corpus and our fixtures.
//! - `bench`: every benchmark, each printing figures next to its baseline.
//! - `image`: kiln's own executor images, built by kiln.
//! - `scenario gitlab`: the GitLab CI job, emulated end to end.
//! - `chaos [--seed N] [--bounded]`: crashes, signals, registry faults, a lying
//!   registry, load and full disks, with one line of figures per family.
//!
//! A failure is printed as one clean message (no backtrace) and exit code 1;
//! a missing external program is the one line of [`util::MissingTool`].

mod bench;
mod chaos;
mod conformance;
mod demo;
mod image;
mod scenario;
mod test;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", message(&error));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("test") => test::run(rest),
        Some("bench") => bench::run(rest),
        Some("chaos") => chaos::run(rest),
        Some("conformance") => conformance::run(rest),
        Some("demo") => demo::run(rest),
        Some("image") => image::run(rest),
        Some("scenario") => scenario::run(rest),
        // Internal: pid 1 of the emulated container (see scenario/container.rs).
        Some("__container") => scenario::enter_container(rest.first().map_or("", String::as_str)),
        // Internal: unpacks and runs the demo image (see demo.rs).
        Some("__demo-run") => demo::run_image(rest),
        Some(cmd) => anyhow::bail!("unknown command {cmd:?}"),
        None => {
            anyhow::bail!(
                "usage: cargo xtask <demo|test|bench|image|scenario|chaos|conformance> [args]"
            )
        }
    }
}

/// What the user sees of a failure: a missing tool alone (whatever was being
/// done is secondary), otherwise the whole chain of causes.
fn message(error: &anyhow::Error) -> String {
    if let Some(missing) = error
        .chain()
        .find_map(|e| e.downcast_ref::<util::MissingTool>())
    {
        return missing.to_string();
    }
    let text = format!("{error:#}");
    if text.starts_with("xtask:") {
        text
    } else {
        format!("xtask: {text}")
    }
}
