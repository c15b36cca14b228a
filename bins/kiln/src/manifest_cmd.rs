//! `kiln manifest create --destination REF SRC...` combines single-platform images pushed
//! by separate jobs into one index (`--oci-layout-path DIR`: also, or only, into a layout); `kiln manifest inspect REF` prints a manifest or index
//! as the registry serves it. The logic is `kiln_build::manifest_list`; the registry, TLS
//! and logging flags are the executor's, handed to its parser so they mean the same.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{manifest_flags, pflag};

pub fn run(args: &[String]) -> ExitCode {
    let (create, rest) = match args.first().map(String::as_str) {
        Some("create") => (true, &args[1..]),
        Some("inspect") => (false, &args[1..]),
        Some("--help" | "-h") | Some("help") => {
            print!("{}", manifest_flags::help());
            return ExitCode::SUCCESS;
        }
        _ => return usage_error("expected `create` or `inspect`"),
    };
    let parsed = match pflag::parse(&manifest_flags::specs(create), rest) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if parsed.help {
        print!("{}", manifest_flags::help());
        return ExitCode::SUCCESS;
    }
    let mut destinations = Vec::new();
    let mut forwarded = vec!["--no-push".to_string()];
    for occurrence in &parsed.flags {
        match occurrence.name {
            "destination" => destinations.push(occurrence.value.clone()),
            name => forwarded.push(format!("--{name}={}", occurrence.value)),
        }
    }
    let layout = forwarded
        .iter()
        .any(|f| f.starts_with("--oci-layout-path="));
    if create && destinations.is_empty() && !layout {
        return usage_error("create needs --destination or --oci-layout-path");
    }
    let options = match crate::executor::options::from_forwarded_flags(&forwarded) {
        Ok(o) => o,
        Err(message) => return usage_error(&message),
    };
    if create {
        let future = kiln_build::manifest_list::create(&options, &parsed.positional, &destinations);
        match crate::runtime::block_on(future) {
            None => ExitCode::FAILURE,
            Some(Ok(outcome)) => {
                tracing::info!(
                    platforms = %outcome.platforms.join(","),
                    "pushed {} to {}",
                    outcome.digest,
                    destinations.join(", ")
                );
                println!("{}", outcome.digest);
                ExitCode::SUCCESS
            }
            Some(Err(e)) => {
                tracing::error!("manifest create failed: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        let [reference] = parsed.positional.as_slice() else {
            return usage_error("inspect takes exactly one image reference");
        };
        let future = kiln_build::manifest_list::inspect(&options, reference);
        match crate::runtime::block_on(future) {
            None => ExitCode::FAILURE,
            Some(Ok((_, _, bytes))) => {
                let mut out = std::io::stdout().lock();
                if out.write_all(&bytes).and_then(|()| writeln!(out)).is_err() {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Some(Err(e)) => {
                tracing::error!("manifest inspect failed: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    eprintln!("Run 'kiln manifest --help' for the flags.");
    ExitCode::from(2)
}
