//! Syntax nodes -> typed instructions, with BuildKit's checks and messages.

use std::time::Duration;

use super::chmod::Chmod;
use super::flags::{Flags, Kind};
use super::mount::parse_mount;
use super::*;
use crate::diagnostic::Diagnostics;
use crate::syntax::{Node, chomp_heredoc, parse_heredoc_word, parse_syntax};

/// Converts one node; every problem with it is returned (messages without
/// position: the caller locates them at the node).
pub fn instruction_from_node(node: &Node) -> Result<Instruction, Vec<String>> {
    let mut errors = Vec::new();
    let command = command_from_node(node, &mut errors);
    match command {
        Some(command) if errors.is_empty() => Ok(Instruction {
            command,
            span: node.span,
            original: node.original.clone(),
        }),
        _ => Err(errors),
    }
}

/// Parses an ONBUILD trigger text from an image config (`RUN echo hi`).
pub fn parse_trigger(trigger: &str) -> Result<Instruction, Diagnostics> {
    let tree = parse_syntax("ONBUILD", trigger.as_bytes())?;
    let Some(node) = tree.nodes.first() else {
        return Err(crate::Diagnostic::new("ONBUILD", Default::default(), "empty trigger").into());
    };
    instruction_from_node(node).map_err(|msgs| {
        Diagnostics(
            msgs.into_iter()
                .map(|m| crate::Diagnostic::new("ONBUILD", node.span.start, m))
                .collect(),
        )
    })
}

const FROM_FLAGS: &[(&str, Kind)] = &[("platform", Kind::Str)];
const RUN_FLAGS: &[(&str, Kind)] = &[
    ("mount", Kind::List),
    ("network", Kind::Str),
    ("security", Kind::Str),
];
const COPY_FLAGS: &[(&str, Kind)] = &[
    ("from", Kind::Str),
    ("chown", Kind::Str),
    ("chmod", Kind::Str),
    ("link", Kind::Bool),
    ("parents", Kind::Bool),
    ("exclude", Kind::List),
];
const ADD_FLAGS: &[(&str, Kind)] = &[
    ("chown", Kind::Str),
    ("chmod", Kind::Str),
    ("link", Kind::Bool),
    ("keep-git-dir", Kind::Bool),
    ("checksum", Kind::Str),
    ("exclude", Kind::List),
    ("unpack", Kind::Bool),
];
const HEALTH_FLAGS: &[(&str, Kind)] = &[
    ("interval", Kind::Str),
    ("timeout", Kind::Str),
    ("start-period", Kind::Str),
    ("start-interval", Kind::Str),
    ("retries", Kind::Str),
];

fn command_from_node(node: &Node, errors: &mut Vec<String>) -> Option<Command> {
    let kw = node.keyword.to_ascii_uppercase();
    let spec: &[(&str, Kind)] = match kw.as_str() {
        "FROM" => FROM_FLAGS,
        "RUN" => RUN_FLAGS,
        "COPY" => COPY_FLAGS,
        "ADD" => ADD_FLAGS,
        "HEALTHCHECK" => HEALTH_FLAGS,
        "CMD" | "ENTRYPOINT" | "ENV" | "LABEL" | "ARG" | "EXPOSE" | "VOLUME" | "USER"
        | "WORKDIR" | "SHELL" | "STOPSIGNAL" | "ONBUILD" | "MAINTAINER" => &[],
        _ => {
            errors.push(format!("unknown instruction: {}", node.keyword));
            return None;
        }
    };
    let flags = Flags::parse(&node.flags, spec, errors);
    let args = &node.args;
    let one = |errors: &mut Vec<String>| -> Option<Word> {
        if args.len() != 1 {
            errors.push(format!("{kw} requires exactly one argument"));
            return None;
        }
        Some(Word {
            value: args[0].clone(),
        })
    };
    let at_least_one = |errors: &mut Vec<String>| -> bool {
        if args.is_empty() {
            errors.push(format!("{kw} requires at least one argument"));
            return false;
        }
        true
    };
    Some(match kw.as_str() {
        "FROM" => Command::From(from_cmd(node, &flags, errors)?),
        "RUN" => Command::Run(run_cmd(node, &flags, errors)?),
        "CMD" => Command::Cmd(command_line(node)),
        "ENTRYPOINT" => Command::Entrypoint(command_line(node)),
        "COPY" | "ADD" => {
            let c = copy_cmd(node, &flags, kw == "ADD", errors)?;
            if kw == "ADD" {
                Command::Add(c)
            } else {
                Command::Copy(c)
            }
        }
        "ENV" | "LABEL" => {
            if !at_least_one(errors) {
                return None;
            }
            let pairs = key_values(&kw, args, errors)?;
            if kw == "ENV" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "ARG" => {
            if !at_least_one(errors) {
                return None;
            }
            Command::Arg(arg_cmd(node, errors)?)
        }
        "EXPOSE" => {
            if !at_least_one(errors) {
                return None;
            }
            Command::Expose(Words {
                values: args.clone(),
            })
        }
        "VOLUME" => {
            if !at_least_one(errors) {
                return None;
            }
            if args.iter().any(|v| v.trim().is_empty()) {
                errors.push("VOLUME specified can not be an empty string".to_string());
                return None;
            }
            Command::Volume(Words {
                values: args.iter().map(|v| v.trim().to_string()).collect(),
            })
        }
        "USER" => Command::User(one(errors)?),
        "WORKDIR" => Command::Workdir(one(errors)?),
        "STOPSIGNAL" => Command::Stopsignal(one(errors)?),
        "MAINTAINER" => Command::Maintainer(one(errors)?),
        "SHELL" => {
            if !at_least_one(errors) {
                return None;
            }
            if !node.json {
                errors.push("SHELL requires the arguments to be in JSON form".to_string());
                return None;
            }
            Command::Shell(Words {
                values: args.clone(),
            })
        }
        "HEALTHCHECK" => {
            if !at_least_one(errors) {
                return None;
            }
            Command::Healthcheck(healthcheck(node, &flags, errors)?)
        }
        _ => Command::Onbuild(onbuild(node, errors)?),
    })
}

fn from_cmd(node: &Node, flags: &Flags, errors: &mut Vec<String>) -> Option<FromCmd> {
    let args = &node.args;
    let name = match args.len() {
        1 => None,
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_ascii_lowercase();
            if !valid_stage_name(&name) {
                errors.push(format!(
                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                    args[2]
                ));
                return None;
            }
            Some(name)
        }
        _ => {
            errors.push("FROM requires either one or three arguments".to_string());
            return None;
        }
    };
    Some(FromCmd {
        image: args[0].clone(),
        name,
        platform: flags.str("platform"),
    })
}

/// `^[a-z][a-z0-9-_.]*$`
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

fn command_line(node: &Node) -> CommandLine {
    if node.json || node.args.is_empty() {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.join(" "))
    }
}

fn run_cmd(node: &Node, flags: &Flags, errors: &mut Vec<String>) -> Option<RunCmd> {
    if node.args.is_empty() {
        errors.push("RUN requires at least one argument".to_string());
        return None;
    }
    let mount_flags = flags.list("mount");
    let mounts = parse_mounts(&mount_flags, &mut |s| Ok(s.to_string()), errors);
    let network = match flags.str("network").as_deref() {
        None => None,
        Some("default") => Some(NetworkMode::Default),
        Some("none") => Some(NetworkMode::None),
        Some("host") => Some(NetworkMode::Host),
        Some(other) => {
            errors.push(format!("network mode {other:?} not supported"));
            None
        }
    };
    let security = match flags.str("security").as_deref() {
        None => None,
        Some("sandbox") => Some(SecurityMode::Sandbox),
        Some("insecure") => Some(SecurityMode::Insecure),
        Some(other) => {
            errors.push(format!("security mode {other:?} not supported"));
            None
        }
    };
    Some(RunCmd {
        command: command_line(node),
        heredocs: node.heredocs.clone(),
        mounts,
        mount_flags,
        network,
        security,
    })
}

/// Parses every `--mount` value, numbering ssh mounts for their default
/// socket path.
pub(crate) fn parse_mounts(
    values: &[String],
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
    errors: &mut Vec<String>,
) -> Vec<Mount> {
    let mut out = Vec::new();
    let mut ssh = 0;
    for v in values {
        match parse_mount(v, expand, ssh) {
            Ok(m) => {
                if m.kind == MountKind::Ssh {
                    ssh += 1;
                }
                out.push(m);
            }
            Err(e) => errors.push(format!("invalid --mount={v}: {e}")),
        }
    }
    out
}

fn copy_cmd(node: &Node, flags: &Flags, add: bool, errors: &mut Vec<String>) -> Option<CopyCmd> {
    let kw = if add { "ADD" } else { "COPY" };
    let args = &node.args;
    if args.len() < 2 {
        errors.push(format!(
            "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
        return None;
    }
    let (srcs, dest) = args.split_at(args.len() - 1);
    let dest = dest[0].clone();
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    if !node.json
        && !node.heredocs.is_empty()
        && let Ok(Some(_)) = parse_heredoc_word(&dest)
    {
        errors.push(format!("{kw} cannot accept a heredoc as a destination"));
        return None;
    }
    for src in srcs {
        let doc = match parse_heredoc_word(src) {
            Ok(Some(h)) if !node.json => node.heredocs.iter().find(|d| d.name == h.name),
            _ => None,
        };
        match doc {
            Some(d) => inline.push(InlineSource {
                path: d.name.clone(),
                data: if d.chomp {
                    chomp_heredoc(&d.content)
                } else {
                    d.content.clone()
                },
                expand: d.expand,
            }),
            None => sources.push(src.clone()),
        }
    }
    let chmod = flags.str("chmod");
    if let Some(c) = &chmod
        && !c.contains('$')
        && let Err(e) = Chmod::parse(c)
    {
        errors.push(e);
    }
    Some(CopyCmd {
        sources,
        inline,
        dest,
        from: flags.str("from"),
        chown: flags.str("chown"),
        chmod,
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.list("exclude"),
        checksum: flags.str("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.bool("unpack"),
        json: node.json,
    })
}

fn key_values(kw: &str, args: &[String], errors: &mut Vec<String>) -> Option<KeyValues> {
    if !args.len().is_multiple_of(3) {
        errors.push(format!("Bad input to {kw}, too many arguments"));
        return None;
    }
    let mut pairs = Vec::new();
    for t in args.chunks(3) {
        if t[0].is_empty() {
            errors.push(format!("{kw} names can not be blank"));
            return None;
        }
        pairs.push(KeyValue {
            key: t[0].clone(),
            value: t[1].clone(),
        });
    }
    Some(KeyValues { pairs })
}

fn arg_cmd(node: &Node, errors: &mut Vec<String>) -> Option<ArgCmd> {
    let mut args = Vec::new();
    for w in &node.args {
        let (name, default) = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w.clone(), None),
        };
        if name.is_empty() {
            errors.push("ARG names can not be blank".to_string());
            return None;
        }
        let prefix = format!("{name} ");
        let doc = node
            .comments
            .iter()
            .find_map(|c| c.strip_prefix(&prefix).map(str::to_string));
        args.push(ArgDecl { name, default, doc });
    }
    Some(ArgCmd { args })
}

fn healthcheck(node: &Node, flags: &Flags, errors: &mut Vec<String>) -> Option<Healthcheck> {
    let args = &node.args;
    let typ = args[0].to_ascii_uppercase();
    match typ.as_str() {
        "NONE" => {
            if args.len() > 1 {
                errors.push("HEALTHCHECK NONE takes no arguments".to_string());
                return None;
            }
            Some(Healthcheck::None)
        }
        "CMD" => {
            if args.len() < 2 {
                errors.push("Missing command after HEALTHCHECK CMD".to_string());
                return None;
            }
            let test = if node.json {
                std::iter::once("CMD".to_string())
                    .chain(args[1..].iter().cloned())
                    .collect()
            } else {
                vec!["CMD-SHELL".to_string(), args[1].clone()]
            };
            let mut duration = |name: &str| -> Option<Duration> {
                let v = flags.str(name)?;
                match parse_go_duration(&v) {
                    Ok(d) if d.is_zero() || d >= Duration::from_millis(1) => Some(d),
                    Ok(_) => {
                        errors.push(format!("Interval \"{name}\" cannot be less than 1ms"));
                        None
                    }
                    Err(e) => {
                        errors.push(format!("invalid --{name}={v}: {e}"));
                        None
                    }
                }
            };
            let interval = duration("interval");
            let timeout = duration("timeout");
            let start_period = duration("start-period");
            let start_interval = duration("start-interval");
            let retries = match flags.str("retries") {
                None => None,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n < 0 => {
                        errors.push("--retries cannot be negative".to_string());
                        None
                    }
                    Ok(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                    Err(_) => {
                        errors.push(format!("invalid --retries={v}: not an integer"));
                        None
                    }
                },
            };
            Some(Healthcheck::Cmd(HealthcheckCmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }))
        }
        _ => {
            errors.push(format!(
                "Unknown type {:?} in HEALTHCHECK (try CMD)",
                args[0]
            ));
            None
        }
    }
}

/// Go's `time.ParseDuration` for non-negative values (`1m30s`, `1.5h`,
/// `300ms`, `0`).
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err("cannot be negative".to_string());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err("invalid duration".to_string());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += num * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_nanos(total as u64))
}

fn onbuild(node: &Node, errors: &mut Vec<String>) -> Option<OnbuildCmd> {
    let Some(child) = &node.nested else {
        errors.push("ONBUILD requires at least one argument".to_string());
        return None;
    };
    match child.keyword.to_ascii_uppercase().as_str() {
        "ONBUILD" => {
            errors.push("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
            return None;
        }
        k @ ("FROM" | "MAINTAINER") => {
            errors.push(format!("{k} isn't allowed as an ONBUILD trigger"));
            return None;
        }
        _ => {}
    }
    let instruction = match instruction_from_node(child) {
        Ok(i) => i,
        Err(msgs) => {
            errors.extend(msgs);
            return None;
        }
    };
    let trimmed = node.original.trim_start();
    let mut trigger = trimmed
        .get(node.keyword.len()..)
        .unwrap_or_default()
        .trim_start()
        .to_string();
    // BuildKit stores heredoc triggers with their bodies and terminators.
    for h in &node.heredocs {
        trigger.push('\n');
        trigger.push_str(&h.content);
        trigger.push_str(&h.name);
    }
    Some(OnbuildCmd {
        trigger,
        instruction: Box::new(instruction),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("50ns").unwrap(), Duration::from_nanos(50));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("1y").is_err());
    }

    #[test]
    fn stage_names() {
        assert!(valid_stage_name("build-1.x_y"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("b@d"));
    }
}
