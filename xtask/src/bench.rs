//! `cargo xtask bench [PACKAGE|BENCH]...`: runs the benchmarks in release
//! mode (all of them, or those named). Each one prints its own figures next to
//! a baseline measured in the same run, with the ratio.
//!
//! `cargo xtask bench ci [...]` is the CI-like bench instead ([`ci`]): whole
//! builds by the release binary through a shaped registry proxy, next to the
//! floors of the same run.

mod ci;

use crate::util::{cargo, run as run_cmd};

/// (package, bench target) pairs; each is a `harness = false` bench.
const BENCHES: &[(&str, &str)] = &[
    ("kiln-dockerfile", "parse"),
    ("kiln-oci", "blob_store"),
    ("kiln-layer", "encode"),
    ("kiln-layer", "apply"),
    ("kiln-layer", "apply_disk"),
    ("kiln-snapshot", "step"),
    ("kiln-sandbox", "run_overhead"),
    ("kiln-registry", "push_pull"),
    ("kiln-build", "build"),
    ("kiln-build", "cache_rebuild"),
    ("kiln-build", "parallel"),
];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().is_some_and(|a| a == "ci") {
        return ci::run(&args[1..]);
    }
    if let Some(unknown) = args
        .iter()
        .find(|a| !BENCHES.iter().any(|(p, b)| p == a || b == a))
    {
        anyhow::bail!("no benchmark or package named {unknown:?}; known: {BENCHES:?}");
    }
    for (package, bench) in BENCHES {
        if args.is_empty() || args.iter().any(|a| a == package || a == bench) {
            run_cmd(cargo().args(["bench", "--package", package, "--bench", bench]))?;
        }
    }
    Ok(())
}
