//! `cargo xtask bench`: runs every benchmark in release mode. Each one
//! prints its own figures next to a baseline measured in the same run.

use crate::util::{cargo, run as run_cmd};

/// (package, bench target) pairs; each is a `harness = false` bench.
const BENCHES: &[(&str, &str)] = &[];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    for (package, bench) in BENCHES {
        if args.is_empty() || args.iter().any(|a| a == package || a == bench) {
            run_cmd(cargo().args(["bench", "--package", package, "--bench", bench]))?;
        }
    }
    Ok(())
}
