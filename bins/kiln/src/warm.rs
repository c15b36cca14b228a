//! kaniko's warmer: `kiln warm FLAGS` (or the binary installed as `warmer`)
//! fills `--cache-dir` with base images for later builds.
//!
//! Its own flags follow kaniko's warmer (`-i/--image`, `-d/--dockerfile`,
//! `-c/--cache-dir`, `-f/--force`, `--customPlatform`); the registry, TLS,
//! build-arg and logging flags are the executor's and are handed to the
//! executor's parser, so both commands read them identically.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::executor_flags;
use crate::cli::pflag::{self, Arity, FlagSpec};

const fn flag(name: &'static str, short: Option<char>, arity: Arity) -> FlagSpec {
    FlagSpec { name, short, arity }
}

/// The warmer's own flags.
const OWN: &[FlagSpec] = &[
    flag("image", Some('i'), Arity::Value),
    flag("dockerfile", Some('d'), Arity::Value),
    flag("cache-dir", Some('c'), Arity::Value),
    flag("force", Some('f'), Arity::Bool),
    flag("customPlatform", None, Arity::Value),
    flag("custom-platform", None, Arity::Value),
];

/// Executor flags the warmer also takes, passed through unchanged.
const SHARED: &[FlagSpec] = &[
    flag("build-arg", None, Arity::Value),
    flag("target", None, Arity::Value),
    flag("insecure", None, Arity::Bool),
    flag("insecure-pull", None, Arity::Bool),
    flag("insecure-registry", None, Arity::Value),
    flag("skip-tls-verify", None, Arity::Bool),
    flag("skip-tls-verify-pull", None, Arity::Bool),
    flag("skip-tls-verify-registry", None, Arity::Value),
    flag("registry-certificate", None, Arity::Value),
    flag("registry-client-cert", None, Arity::Value),
    flag("registry-mirror", None, Arity::Value),
    flag("registry-map", None, Arity::Value),
    flag("skip-default-registry-fallback", None, Arity::Bool),
    flag("image-download-retry", None, Arity::Value),
    flag("verbosity", Some('v'), Arity::Value),
    flag("log-format", None, Arity::Value),
    flag("log-timestamp", None, Arity::Bool),
];

pub fn run(args: &[String]) -> ExitCode {
    let specs: Vec<FlagSpec> = OWN.iter().chain(SHARED).copied().collect();
    let parsed = match pflag::parse(&specs, args) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Some(extra) = parsed.positional.first() {
        return usage_error(&format!("unexpected argument {extra:?}"));
    }
    let mut request = kiln_build::WarmRequest::default();
    let mut cache_dir = "/cache".to_string();
    let mut forwarded = vec!["--no-push".to_string()];
    for occurrence in &parsed.flags {
        let value = occurrence.value.clone();
        match occurrence.name {
            "image" => request.images.push(value),
            "dockerfile" => request.dockerfile = Some(PathBuf::from(value)),
            "cache-dir" => cache_dir = value,
            "force" => match pflag::parse_bool("--force", &value) {
                Ok(b) => request.force = b,
                Err(e) => return usage_error(&e.to_string()),
            },
            "customPlatform" | "custom-platform" => {
                forwarded.push(format!("--custom-platform={value}"))
            }
            name => forwarded.push(format!("--{name}={value}")),
        }
    }
    let executor_args = match executor_flags::parse(&forwarded) {
        Ok(a) => a,
        Err(e) => return usage_error(&e.to_string()),
    };
    crate::logging::init(
        &executor_args.verbosity,
        &executor_args.log_format,
        executor_args.log_timestamp,
    );
    let env = |name: &str| std::env::var(name).ok();
    let mut options = match crate::executor::options::build_options(&executor_args, &env) {
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
                tracing::info!("{state}: {}@{} in {cache_dir}", w.reference, w.digest);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("warming failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    eprintln!(
        "usage: kiln warm -i IMAGE [-i IMAGE...] [-d Dockerfile [--build-arg K=V]] [-c /cache] [-f]"
    );
    ExitCode::from(2)
}
