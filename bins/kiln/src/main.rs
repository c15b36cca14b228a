//! `kiln`: the command line. Only this crate knows about flags, terminals,
//! colours and exit codes; everything else lives in the library crates.
//!
//! Subcommands are dispatched by the first argument. Installed as
//! `executor` (kaniko's `/kaniko/executor`), the binary behaves as
//! `kiln build`.

mod cli;
mod parse_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rest = &args[1..];
    match rest.first().map(String::as_str) {
        Some("parse") => parse_cmd::run(&rest[1..]),
        Some("version") | Some("--version") => {
            println!("kiln {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("kiln: unknown command {other:?}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: kiln <parse|version> ...");
            ExitCode::from(2)
        }
    }
}
