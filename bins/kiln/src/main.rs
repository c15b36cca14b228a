//! `kiln`: the command line. Only this crate knows about flags, terminals,
//! colours and exit codes; everything else lives in the library crates.
//!
//! Subcommands are dispatched by the first argument. Installed as
//! `executor` (kaniko's `/kaniko/executor`), or called with flags and no
//! subcommand, the binary behaves as `kiln build`; installed as `warmer`
//! (kaniko's `/kaniko/warmer`), as `kiln warm`.

mod cli;
mod executor;
mod logging;
mod manifest_cmd;
mod parse_cmd;
mod runtime;
mod warm;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: kiln <command> [flags]

commands:
  build FLAGS      build an image (kaniko executor flags; see docs/kaniko-compat.md)
  parse FILE       print a Dockerfile's parse tree, or its errors
  manifest create|inspect  combine per-platform images into one index; print a manifest
  warm FLAGS       fill --cache-dir with base images (kaniko's warmer flags)
  version          print kiln's version

Installed as `executor`, kiln takes the build flags directly, like kaniko;
installed as `warmer`, the warmer's.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let rest = &args[1.min(args.len())..];
    if program == "warmer" {
        return warm::run(rest);
    }
    if program == "executor" {
        return match rest.first().map(String::as_str) {
            Some("version") => version(),
            _ => executor::run(rest),
        };
    }
    match rest.first().map(String::as_str) {
        Some("build") => executor::run(&rest[1..]),
        Some("parse") => parse_cmd::run(&rest[1..]),
        Some("manifest") => manifest_cmd::run(&rest[1..]),
        Some("warm") => warm::run(&rest[1..]),
        Some("version") | Some("--version") => version(),
        Some("help") | Some("--help") | Some("-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(flag) if flag.starts_with('-') => executor::run(rest),
        Some(other) => {
            eprintln!("kiln: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn version() -> ExitCode {
    println!("kiln {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
