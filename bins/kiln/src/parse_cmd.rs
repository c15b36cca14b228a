//! `kiln parse`: prints a Dockerfile's parse tree, its resolved build plan,
//! or every error in it.
//!
//! ```text
//! kiln parse [--format buildkit|json] DOCKERFILE
//! kiln parse --plan [--format text|json] [--build-arg K[=V]]... [--target T]
//!            [--platform OS/ARCH[/VARIANT]] DOCKERFILE
//! ```
//! `--format buildkit` (the default) prints BuildKit's dump of the syntax
//! tree; `json` prints the typed, checked model. The BuildKit dump appears
//! only for a file with no errors: the file is first checked as `--format
//! json` checks it and planned as `--plan` plans it with no build args
//! (BuildKit's parser alone would dump `FROM` with no argument, an unknown
//! instruction or an unknown flag). Exit codes: 0 success, 1 the Dockerfile
//! has errors (all of them printed, each as `FILE:LINE:COL: message`),
//! 2 usage errors. DOCKERFILE `-` reads standard input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use crate::cli::{parse_flags, pflag};
use kiln_dockerfile::syntax::{dump, parse_syntax};
use kiln_dockerfile::{Base, Diagnostics, Plan, PlanOptions, Platform, parse};

#[derive(Debug, PartialEq)]
enum Format {
    Buildkit,
    Json,
    Text,
}

#[derive(Debug)]
struct Args {
    format: Option<Format>,
    plan: bool,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    platform: Option<Platform>,
    file: String,
}

pub fn run(args: &[String]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", parse_flags::help());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!(
                "kiln parse: {msg}\nusage: kiln parse [flags] DOCKERFILE; run 'kiln parse --help' for the flags."
            );
            return ExitCode::from(2);
        }
    };
    let bytes = match read_input(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kiln parse: reading {}: {e}", args.file);
            return ExitCode::from(1);
        }
    };
    let out = if args.plan {
        plan(&args, &bytes)
    } else if args.format == Some(Format::Json) {
        parse(&args.file, &bytes).map(|df| {
            print_warnings(&df.warnings);
            json(serde_json::to_string_pretty(&df))
        })
    } else {
        buildkit_dump(&args.file, &bytes)
    };
    match out {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(text.as_bytes()).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            ExitCode::from(1)
        }
    }
}

/// The command line, or `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let parsed = pflag::parse(&parse_flags::specs(), args).map_err(|e| e.to_string())?;
    if parsed.help {
        return Ok(None);
    }
    let mut a = Args {
        format: None,
        plan: false,
        build_args: BTreeMap::new(),
        target: None,
        platform: None,
        file: String::new(),
    };
    for occurrence in parsed.flags {
        let value = occurrence.value;
        match occurrence.name {
            "format" => {
                a.format = Some(match value.as_str() {
                    "buildkit" => Format::Buildkit,
                    "json" => Format::Json,
                    "text" => Format::Text,
                    other => return Err(format!("unknown format {other:?}")),
                })
            }
            "plan" => a.plan = pflag::parse_bool("plan", &value).map_err(|e| e.to_string())?,
            "build-arg" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => match std::env::var(&value) {
                        Ok(v) => (value.clone(), v),
                        Err(_) => continue,
                    },
                };
                if k.is_empty() {
                    return Err(format!("invalid --build-arg {value:?}: empty name"));
                }
                a.build_args.insert(k, v);
            }
            "target" => a.target = Some(value),
            "platform" => a.platform = Some(Platform::parse(&value)?),
            other => unreachable!("flag --{other} is in the table but not handled"),
        }
    }
    a.file = match parsed.positional.as_slice() {
        [f] => f.clone(),
        [] => return Err("missing DOCKERFILE".to_string()),
        files => return Err(format!("expected one DOCKERFILE, got {}", files.len())),
    };
    match (&a.format, a.plan) {
        (Some(Format::Text), false) => return Err("--format text needs --plan".to_string()),
        (Some(Format::Buildkit), true) => {
            return Err("--plan prints text or json, not buildkit".to_string());
        }
        _ => {}
    }
    if !a.plan && (!a.build_args.is_empty() || a.target.is_some() || a.platform.is_some()) {
        return Err("--build-arg, --target and --platform need --plan".to_string());
    }
    Ok(Some(a))
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        return Ok(buf);
    }
    std::fs::read(file)
}

fn print_warnings(warnings: &[kiln_dockerfile::Diagnostic]) {
    for w in warnings {
        eprintln!(
            "{}:{}:{}: warning: {}",
            w.file, w.pos.line, w.pos.column, w.message
        );
    }
}

/// Pretty JSON with a final newline (serialising these types cannot fail:
/// string keys only).
fn json(v: serde_json::Result<String>) -> String {
    let mut s = v.unwrap_or_default();
    s.push('\n');
    s
}

/// BuildKit's dump of the syntax tree, for a file with no errors. BuildKit's
/// parser alone accepts unknown instructions and flags and `FROM` with no
/// argument; a person checking a file wants those reported, so the file is
/// first parsed into the typed model and planned (no build args, the last
/// stage, this machine's platform), and every error of either is returned.
fn buildkit_dump(file: &str, bytes: &[u8]) -> Result<String, Diagnostics> {
    let df = parse(file, bytes)?;
    df.plan(&default_plan_options())?;
    print_warnings(&df.warnings);
    let tree = parse_syntax(file, bytes)?;
    Ok(dump(&tree.nodes))
}

fn default_plan_options() -> PlanOptions {
    PlanOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: Platform::default(),
        build_platform: Platform::host(),
    }
}

fn plan(args: &Args, bytes: &[u8]) -> Result<String, Diagnostics> {
    let df = parse(&args.file, bytes)?;
    print_warnings(&df.warnings);
    let platform = args.platform.clone().unwrap_or_default();
    let opts = PlanOptions {
        build_args: args.build_args.clone(),
        target: args.target.clone(),
        target_platform: platform,
        build_platform: Platform::host(),
    };
    let plan = df.plan(&opts)?;
    for a in &plan.unused_build_args {
        eprintln!(
            "{}: warning: build arg {a:?} is not consumed by any stage",
            args.file
        );
    }
    Ok(if args.format == Some(Format::Json) {
        json(serde_json::to_string_pretty(&plan))
    } else {
        plan_text(&plan)
    })
}

/// One line per stage in build order:
/// `stage 2 (final): FROM stage 0 (build) [linux/amd64] needs 0, 1`.
fn plan_text(plan: &Plan) -> String {
    let label = |index: usize| -> String {
        match plan.stage(index).and_then(|s| s.name.as_deref()) {
            Some(n) => format!("stage {index} ({n})"),
            None => format!("stage {index}"),
        }
    };
    let mut out = String::new();
    for s in &plan.stages {
        let base = match &s.base {
            Base::Scratch => "scratch".to_string(),
            Base::Image(i) => i.clone(),
            Base::Stage(i) => label(*i),
        };
        out.push_str(&format!("{}: FROM {base} [{}]", label(s.index), s.platform));
        if !s.depends_on.is_empty() {
            let deps: Vec<String> = s.depends_on.iter().map(usize::to_string).collect();
            out.push_str(&format!(" needs {}", deps.join(", ")));
        }
        out.push('\n');
    }
    out
}
