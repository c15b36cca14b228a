//! kaniko's warmer: `kiln warm FLAGS` (or the binary installed as `warmer`)
//! fills `--cache-dir` with base images for later builds.
//!
//! Its flags (cli/warmer_flags.rs) follow kaniko's warmer (`-i/--image`,
//! `-d/--dockerfile`, `-c/--cache-dir`, `-f/--force`, `--customPlatform`);
//! the registry, TLS, build-arg and logging flags are the executor's and are
//! handed to the executor's parser, so both commands read them identically.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::pflag;
use crate::cli::warmer_flags;

/// Warms the cache; `program` is how the warmer was called (`kiln warm`,
/// `warmer`), for `--help` and usage errors.
pub fn run(program: &str, args: &[String]) -> ExitCode {
    let usage_error = |message: &str| usage_error(program, message);
    let parsed = match pflag::parse(&warmer_flags::specs(), args) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if parsed.help {
        print!("{}", warmer_flags::help(program));
        return ExitCode::SUCCESS;
    }
    if let Some(extra) = parsed.positional.first() {
        return usage_error(&format!("unexpected argument {extra:?}"));
    }
    let mut request = kiln_build::WarmRequest::default();
    let mut cache_dir = warmer_flags::DEFAULT_CACHE_DIR.to_string();
    let mut forwarded = vec!["--no-push".to_string()];
    for occurrence in &parsed.flags {
        let value = occurrence.value.clone();
        match occurrence.name {
            "image" => request.images.push(value),
            "dockerfile" => request.dockerfile = Some(PathBuf::from(value)),
            "cache-dir" => cache_dir = value,
            "force" => match pflag::parse_bool("force", &value) {
                Ok(b) => request.force = b,
                Err(e) => return usage_error(&e.to_string()),
            },
            "customPlatform" | "custom-platform" => {
                forwarded.push(format!("--custom-platform={value}"))
            }
            name => forwarded.push(format!("--{name}={value}")),
        }
    }
    let mut options = match crate::executor::options::from_forwarded_flags(&forwarded) {
        Ok(o) => o,
        Err(message) => return usage_error(&message),
    };
    options.cache.dir = Some(PathBuf::from(&cache_dir));
    let Some(result) = crate::runtime::block_on(kiln_build::warm(&options, &request)) else {
        return ExitCode::FAILURE;
    };
    match result {
        Ok(warmed) => {
            for w in &warmed {
                let state = if w.already_cached {
                    "already cached"
                } else {
                    "cached"
                };
                tracing::info!(
                    "{state}: {}@{} ({}) in {cache_dir}",
                    w.reference,
                    w.digest,
                    w.platform
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("warming failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(program: &str, message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    eprintln!("Run '{program} --help' for the flags.");
    ExitCode::from(2)
}
