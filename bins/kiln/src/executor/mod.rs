//! The kaniko-compatible executor: `kiln build FLAGS` or `executor FLAGS`.
//! Exit codes: 0 success, 1 build error, 2 usage error, 128+N stopped by
//! signal N (SIGTERM, SIGINT; see [`crate::signals`]).

pub(crate) mod options;
mod report;

use crate::cli::executor_flags;
use std::process::ExitCode;

/// Runs a build; `program` is how the executor was called (`kiln build`,
/// `executor`), for `--help`.
pub fn run(program: &str, args: &[String]) -> ExitCode {
    let parsed = match executor_flags::parse(args) {
        Ok(parsed) => parsed,
        Err(e) => return usage_error(program, &e.to_string()),
    };
    if parsed.help {
        print!("{}", executor_flags::help(program));
        return ExitCode::SUCCESS;
    }
    crate::logging::init(&parsed.verbosity, &parsed.log_format, parsed.log_timestamp);
    for flag in &parsed.ignored {
        tracing::debug!("{flag}: accepted for kaniko compatibility; it has no effect in kiln");
    }
    let env = |name: &str| std::env::var(name).ok();
    let options = match options::build_options(&parsed, &env) {
        Ok(options) => options,
        Err(message) => return usage_error(program, &message),
    };
    // Without root: the whole build in a user namespace mapping the caller's
    // subordinate ids, so layers keep the image's owners.
    match kiln_sandbox::rerun_in_user_namespace() {
        Ok(Some(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Ok(None) => {}
        Err(e) => tracing::warn!("{e}; building with only the caller mapped"),
    }
    let reporter = report::Reporter::new(&parsed.log_format);
    let Some(result) =
        crate::signals::block_on_until_signal(kiln_build::build(&options, &reporter))
    else {
        return ExitCode::FAILURE;
    };
    let result = match result {
        Ok(result) => result,
        Err(signo) => {
            tracing::error!("build stopped by signal {signo}");
            return ExitCode::from(u8::try_from(128 + signo).unwrap_or(1));
        }
    };
    match result {
        Ok(outcome) => {
            reporter.summary(&outcome);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("build failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(program: &str, message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    eprintln!("Run '{program} --help' or see docs/kaniko-compat.md for the flags.");
    ExitCode::from(2)
}
