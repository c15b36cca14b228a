//! `cargo xtask chaos [--seed N] [--bounded]`: kiln under the conditions a CI
//! fleet meets (issue 19), against real components, with one line of figures
//! per family:
//!
//! - `crash`: SIGKILL at seeded points spread over a build with RUN, COPY,
//!   `--cache` lookups and a push; after every kill each tag in the registry
//!   is checked (manifest and every blob present, sizes right), then the same
//!   build with the same `--kaniko-dir` and cache must succeed with the digest
//!   of an undisturbed build (`--reproducible`).
//! - `signals`: SIGTERM and SIGINT during a RUN end the build within 5 s with
//!   exit code 128+N, the RUN process gone, no mount left, the build dir
//!   removed and nothing pushed.
//! - `faults`: a large push and pull through kiln-testkit's fault proxy, one
//!   seeded fault at a seeded point per case (dropped connection, 500/502/503,
//!   429 with Retry-After, truncated body, an upload's body cut short, a body
//!   stalling past a short `--registry-timeout`): with retries the build succeeds
//!   with the right digest; without, it fails and no tag moves.
//! - `hostile`: kiln-testkit's lying registry; each lie is refused with a
//!   clear error in bounded time and memory (peak RSS of the kiln process,
//!   from `wait4`), and nothing is written outside the build's directories.
//! - `load`: 8 builds at once sharing one registry, cache repo and
//!   `--kaniko-dir`; each image equals the same build run alone, every cache
//!   entry is whole, no lock or build dir is left.
//! - `diskfull`: `--kaniko-dir` on a small tmpfs filling during unpack, RUN
//!   and layer encoding; one error naming the directory, context and
//!   registry untouched.
//!
//! The seed is printed first, so a failing run can be repeated exactly.
//! `--bounded` (run by `cargo xtask test`) uses fewer points and smaller
//! images so the whole run takes a few minutes on a 2-core machine.

mod check;
mod crash;
mod diskfull;
mod faults;
mod hostile;
mod http;
mod load;
mod proc;
mod rig;
mod rng;
mod signals;

use anyhow::{Result, bail};

/// How hard to push: the full run, or the bounded one CI runs.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub bounded: bool,
    pub seed: u64,
}

/// What one family found: `passed` of `total` cases, and why the others failed.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
    pub failures: Vec<String>,
}

impl Tally {
    /// Records one case.
    pub fn record(&mut self, name: &str, outcome: Result<()>) {
        self.total += 1;
        match outcome {
            Ok(()) => self.passed += 1,
            Err(e) => {
                let line = format!("{name}: {e:#}");
                eprintln!("chaos: FAILED {line}");
                self.failures.push(line);
            }
        }
    }
}

type Family = (
    &'static str,
    &'static str,
    fn(&rig::Rig, Scale) -> Result<Tally>,
);

const FAMILIES: &[Family] = &[
    ("crash", "recovered", crash::run),
    ("signals", "clean", signals::run),
    ("faults", "survived", faults::run),
    ("hostile", "refused", hostile::run),
    ("load", "correct", load::run),
    ("diskfull", "reported", diskfull::run),
];

pub fn run(args: &[String]) -> Result<()> {
    let mut seed = None;
    let mut bounded = false;
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bounded" => bounded = true,
            "--seed" => {
                let value = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--seed needs a number"))?;
                seed = Some(
                    value
                        .parse::<u64>()
                        .map_err(|e| anyhow::anyhow!("--seed {value:?}: {e}"))?,
                );
            }
            s if s.starts_with("--seed=") => {
                let value = &s["--seed=".len()..];
                seed = Some(
                    value
                        .parse::<u64>()
                        .map_err(|e| anyhow::anyhow!("--seed {value:?}: {e}"))?,
                );
            }
            s if FAMILIES.iter().any(|(name, _, _)| *name == s) => only.push(s.to_owned()),
            other => bail!(
                "usage: cargo xtask chaos [--seed N] [--bounded] [FAMILY...]; unknown argument {other:?}"
            ),
        }
    }
    let seed = seed.unwrap_or_else(rng::seed_from_clock);
    let scale = Scale { bounded, seed };
    println!(
        "chaos: seed {seed} ({}); repeat with `cargo xtask chaos --seed {seed}{}`",
        if bounded { "bounded" } else { "full" },
        if bounded { " --bounded" } else { "" }
    );
    let setup = std::time::Instant::now();
    let rig = rig::Rig::start()?;
    let setup = setup.elapsed();
    let started = std::time::Instant::now();
    let mut lines = Vec::new();
    let mut failed = false;
    for (name, verb, family) in FAMILIES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let family_started = std::time::Instant::now();
        let tally = match family(&rig, scale) {
            Ok(tally) => tally,
            Err(e) => Tally {
                passed: 0,
                total: 1,
                failures: vec![format!("could not run: {e:#}")],
            },
        };
        let line = format!(
            "{name}: {}/{} {verb} ({:.1} s)",
            tally.passed,
            tally.total,
            family_started.elapsed().as_secs_f64()
        );
        println!("{line}");
        failed |= tally.passed != tally.total || tally.total == 0;
        lines.push((line, tally));
    }
    println!(
        "chaos: seed {seed}, wall time {:.1} s (after {:.1} s building kiln and starting the registry)",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
    for (line, tally) in &lines {
        if !tally.failures.is_empty() {
            println!("{line}");
            for failure in &tally.failures {
                println!("  {failure}");
            }
        }
    }
    if failed {
        bail!("chaos: failures above (seed {seed})");
    }
    Ok(())
}
