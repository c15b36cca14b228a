//! `kiln`: the command line. Only this crate knows about flags, terminals,
//! colours and exit codes; everything else lives in the library crates.
//!
//! Subcommands are dispatched by the first argument. Installed as
//! `executor` (kaniko's `/kaniko/executor`), or called with flags and no
//! subcommand, the binary behaves as `kiln build` (and `executor manifest ...` as
//! `kiln manifest ...`); installed as `warmer` (kaniko's `/kaniko/warmer`), as
//! `kiln warm`.

mod attestations_cmd;
mod cli;
mod executor;
mod logging;
mod manifest_cmd;
mod parse_cmd;
mod runtime;
mod signals;
mod warm;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: kiln <command> [flags]
       kiln <command> --help

commands:
  build FLAGS      build an image (kaniko's executor flags; see docs/kaniko-compat.md)
  parse FILE       print a Dockerfile's parse tree, or every error in it
  manifest create|inspect  combine per-platform images into one index; print a manifest
  warm FLAGS       fill --cache-dir with base images (kaniko's warmer flags)
  attestations IMAGE  list an image's SBOM and provenance (--show prints one)
  version          print kiln's version
  help [COMMAND]   print this, or a command's flags

Installed as `executor`, kiln takes the build flags directly, like kaniko
(and `executor manifest create|inspect` too); installed as `warmer`, the
warmer's. Both answer --help.";

const VERSION_HELP: &str = "usage: kiln version

Prints kiln's version. It takes no flags.";

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
    // Help and usage errors name the binary as it was called (`/kaniko/executor`).
    let called = args.first().map_or(program.as_str(), String::as_str);
    if program == "warmer" {
        return warm::run(called, rest);
    }
    if program == "executor" {
        return match rest.first().map(String::as_str) {
            Some("version") => version(&rest[1..]),
            // The executor takes no positional arguments, so `executor manifest ...`
            // is unambiguous: kiln's image has no other name for `kiln manifest`.
            Some("manifest") => manifest_cmd::run(&rest[1..]),
            _ => executor::run(called, rest),
        };
    }
    match rest.first().map(String::as_str) {
        Some("build") => executor::run("kiln build", &rest[1..]),
        Some("parse") => parse_cmd::run(&rest[1..]),
        Some("manifest") => manifest_cmd::run(&rest[1..]),
        Some("attestations") => attestations_cmd::run(&rest[1..]),
        Some("warm") => warm::run("kiln warm", &rest[1..]),
        Some("version") | Some("--version") => version(&rest[1..]),
        Some("help") => help(rest.get(1).map(String::as_str)),
        Some("--help") | Some("-h") => help(None),
        Some(flag) if flag.starts_with('-') => executor::run("kiln build", rest),
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

/// `kiln help [COMMAND]`: the overview, or the command's own `--help`.
fn help(command: Option<&str>) -> ExitCode {
    let help = ["--help".to_string()];
    match command {
        None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("build") => executor::run("kiln build", &help),
        Some("parse") => parse_cmd::run(&help),
        Some("manifest") => manifest_cmd::run(&help),
        Some("attestations") => attestations_cmd::run(&help),
        Some("warm") => warm::run("kiln warm", &help),
        Some("version") => version(&help),
        Some(other) => {
            eprintln!("kiln help: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn version(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{VERSION_HELP}");
    } else {
        println!("kiln {}", env!("CARGO_PKG_VERSION"));
    }
    ExitCode::SUCCESS
}
