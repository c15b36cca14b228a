//! Project chores, run as `cargo xtask <command>`:
//!
//! - `demo`: kiln's main job: the bundled example built offline into an OCI layout.
//! - `test`: everything CI checks after fmt and clippy (the README's test command).
//! - `conformance`: kiln against buildah on the kaniko corpus and our fixtures.
//! - `bench`: every benchmark, each printing figures next to its baseline.
//! - `image`: kiln's own executor images, built by kiln.
//! - `scenario gitlab`: the GitLab CI job, emulated end to end.

mod bench;
mod conformance;
mod demo;
mod image;
mod scenario;
mod test;
mod util;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("test") => test::run(rest),
        Some("bench") => bench::run(rest),
        Some("conformance") => conformance::run(rest),
        Some("demo") => demo::run(rest),
        Some("image") => image::run(rest),
        Some("scenario") => scenario::run(rest),
        // Internal: pid 1 of the emulated container (see scenario/container.rs).
        Some("__container") => scenario::enter_container(rest.first().map_or("", String::as_str)),
        Some(cmd) => anyhow::bail!("xtask: unknown command {cmd:?}"),
        None => {
            anyhow::bail!("usage: cargo xtask <demo|test|bench|image|scenario|conformance> [args]")
        }
    }
}
