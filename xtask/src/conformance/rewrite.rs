//! Rewrites a Dockerfile so that every external image it names comes from the
//! harness's registry (`127.0.0.1:PORT/...`, fully qualified as TESTBED.md
//! advises), changing as little of the file as possible so that the ARG and
//! FROM expansion under test still happens in the builders:
//!
//! - a literal `FROM image` / `COPY --from=image` gets the local name
//!   ([`super::images::localize`]), digest pins dropped;
//! - `FROM busybox${VARIANT}:1.3${VERSION}` (a literal start) gets `HOST/`
//!   prepended, and the expanded name is pushed;
//! - `FROM $IMAGE` / `FROM ${REGISTRY}/${IMAGE}:${TAG}` gets the first
//!   variable's value rewritten where it is set (the build arg, or the global
//!   ARG default): `HOST/` prepended, or the registry host replaced by HOST.
//!
//! Stage names, stage indexes and `scratch` are left alone.

use super::expand::expand;
use super::images::{LocalImage, is_host, localize};
use std::collections::{BTreeMap, BTreeSet};

/// A `--build-arg`: `KEY=VALUE`, or a bare `KEY` taken from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArg {
    pub key: String,
    pub value: Option<String>,
}

/// The rewritten Dockerfile, the build args to pass, the images to provide.
#[derive(Debug)]
pub struct Rewritten {
    pub dockerfile: String,
    pub build_args: Vec<BuildArg>,
    pub images: Vec<LocalImage>,
}

/// One `name[=value]` of a global ARG line.
struct GlobalArg {
    line: usize,
    name: String,
    raw_value: Option<String>,
    changed: bool,
}

/// Rewrites `text`; `Err` says which image cannot be provided.
pub fn rewrite(text: &str, build_args: &[BuildArg], host: &str) -> Result<Rewritten, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let instructions = instruction_lines(&lines);
    let stages = stage_names(&lines, &instructions);
    let mut build_args = build_args.to_vec();
    let mut globals = global_args(&lines, &instructions);
    let mut images = Vec::new();
    for &index in &instructions {
        let (keyword, rest) = split_keyword(&lines[index]);
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            let vars = global_values(&globals, &build_args);
            let Some(token) = from_image_token(rest) else {
                continue;
            };
            let expanded = expand(token, &vars);
            if expanded == "scratch" || stages.contains(&expanded.to_ascii_lowercase()) {
                continue;
            }
            let new_token = if !token.contains('$') {
                let local = localize(token)?;
                let name = format!("{host}/{}", local.repo_tag);
                images.push(local);
                name
            } else if !token.starts_with('$') {
                let local = localize(&expanded)?;
                if local.repo_tag != with_tag(&expanded) {
                    return Err(format!(
                        "cannot rewrite FROM {token} (= {expanded}) in place"
                    ));
                }
                images.push(local);
                format!("{host}/{token}")
            } else {
                let name = leading_variable(token);
                set_variable(name, &expanded, host, &mut globals, &mut build_args)?;
                let vars = global_values(&globals, &build_args);
                let rewritten = expand(token, &vars);
                let local = rewritten
                    .strip_prefix(&format!("{host}/"))
                    .ok_or_else(|| format!("cannot rewrite FROM {token}"))
                    .and_then(|rest| localize(rest).map(|l| (rest.to_string(), l)))?;
                if with_tag(&local.0) != local.1.repo_tag {
                    return Err(format!(
                        "cannot rewrite FROM {token} (= {expanded}) in place"
                    ));
                }
                images.push(local.1);
                continue;
            };
            lines[index] = lines[index].replacen(token, &new_token, 1);
        } else if keyword == "COPY"
            && let Some(from) = copy_from(rest)
        {
            if from.contains('$') {
                return Err(format!(
                    "COPY --from={from} with a variable is not rewritten"
                ));
            }
            let lower = from.to_ascii_lowercase();
            if stages.contains(&lower) || from.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let local = localize(from)?;
            let new = format!("--from={host}/{}", local.repo_tag);
            images.push(local);
            lines[index] = lines[index].replacen(&format!("--from={from}"), &new, 1);
        }
    }
    for arg in globals.iter().filter(|a| a.changed) {
        let value = arg.raw_value.as_deref().unwrap_or_default();
        lines[arg.line] = replace_arg_value(&lines[arg.line], &arg.name, value);
    }
    let mut dockerfile = lines.join("\n");
    if text.ends_with('\n') {
        dockerfile.push('\n');
    }
    Ok(Rewritten {
        dockerfile,
        build_args,
        images,
    })
}

/// `name` with `:latest` added when it has neither tag nor digest, as a pull does.
fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Indexes of the lines that start an instruction (not continuations,
/// comments or heredoc bodies).
fn instruction_lines(lines: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut continued = false;
    let mut heredoc: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        if let Some(end) = &heredoc {
            if line.trim_start_matches('\t') == end {
                heredoc = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if !continued && !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(i);
            heredoc = heredoc_terminator(trimmed);
        }
        if !trimmed.starts_with('#') {
            continued = trimmed.ends_with('\\');
        }
    }
    out
}

/// The terminator word of the first heredoc (`<<EOF`, `<<-"EOF"`) on a line.
fn heredoc_terminator(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let word = line[at + 2..].trim_start_matches('-');
    let word: String = word
        .trim_matches(|c| c == '"' || c == '\'')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

fn split_keyword(line: &str) -> (&str, &str) {
    let line = line.trim_start();
    match line.find(char::is_whitespace) {
        Some(at) => (&line[..at], line[at..].trim_start()),
        None => (line, ""),
    }
}

/// The image word of a FROM line (after `--platform=...` and other flags).
fn from_image_token(rest: &str) -> Option<&str> {
    rest.split_whitespace().find(|t| !t.starts_with("--"))
}

/// The value of a COPY's `--from=` flag.
fn copy_from(rest: &str) -> Option<&str> {
    rest.split_whitespace()
        .take_while(|t| t.starts_with("--"))
        .find_map(|t| t.strip_prefix("--from="))
}

/// Lower-cased names of every `FROM ... AS name`.
fn stage_names(lines: &[String], instructions: &[usize]) -> BTreeSet<String> {
    instructions
        .iter()
        .filter_map(|&i| {
            let (keyword, rest) = split_keyword(&lines[i]);
            if !keyword.eq_ignore_ascii_case("FROM") {
                return None;
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
            words.get(at + 1).map(|n| n.to_ascii_lowercase())
        })
        .collect()
}

/// The ARGs declared before the first FROM.
fn global_args(lines: &[String], instructions: &[usize]) -> Vec<GlobalArg> {
    let mut out = Vec::new();
    for &i in instructions {
        let (keyword, rest) = split_keyword(&lines[i]);
        if keyword.eq_ignore_ascii_case("FROM") {
            break;
        }
        if !keyword.eq_ignore_ascii_case("ARG") {
            continue;
        }
        for word in rest.split_whitespace() {
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (word, None),
            };
            out.push(GlobalArg {
                line: i,
                name: name.to_string(),
                raw_value: value,
                changed: false,
            });
        }
    }
    out
}

/// Values of the global ARGs, in order, each default expanded with the
/// earlier ones; build args override the defaults of declared ARGs.
fn global_values(globals: &[GlobalArg], build_args: &[BuildArg]) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for arg in globals {
        let given = build_args
            .iter()
            .find(|b| b.key == arg.name)
            .and_then(|b| b.value.clone());
        let value = given.or_else(|| arg.raw_value.as_ref().map(|v| expand(v, &vars)));
        if let Some(value) = value {
            vars.insert(arg.name.clone(), value);
        }
    }
    vars
}

/// The name of the variable a word starts with (`$NAME` or `${NAME...}`).
fn leading_variable(word: &str) -> &str {
    let rest = word.trim_start_matches('$').trim_start_matches('{');
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// Points the variable `name` (the start of an image word that expands to
/// `expanded`) at the local registry, where its value is set.
fn set_variable(
    name: &str,
    expanded: &str,
    host: &str,
    globals: &mut [GlobalArg],
    build_args: &mut [BuildArg],
) -> Result<(), String> {
    let retarget = |value: &str| -> String {
        let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
        let quote = &value[..value.len() - value.trim_start_matches(['"', '\'']).len()];
        let is_registry = is_host(unquoted) && expanded.starts_with(&format!("{unquoted}/"));
        if is_registry {
            format!("{quote}{host}{quote}")
        } else {
            format!("{quote}{host}/{}", &value[quote.len()..])
        }
    };
    if let Some(arg) = build_args.iter_mut().find(|b| b.key == name) {
        let value = arg
            .value
            .as_deref()
            .ok_or_else(|| format!("build arg {name} has no value"))?;
        arg.value = Some(retarget(value));
        return Ok(());
    }
    let arg = globals
        .iter_mut()
        .rev()
        .find(|g| g.name == name && g.raw_value.is_some())
        .ok_or_else(|| format!("FROM ${name}: no global ARG default to rewrite"))?;
    let value = arg.raw_value.as_deref().unwrap_or_default();
    arg.raw_value = Some(retarget(value));
    arg.changed = true;
    Ok(())
}

/// `line` with the ARG `name`'s value replaced by `value`.
fn replace_arg_value(line: &str, name: &str, value: &str) -> String {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => w.to_string(),
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> Vec<BuildArg> {
        pairs
            .iter()
            .map(|(k, v)| BuildArg {
                key: k.to_string(),
                value: Some(v.to_string()),
            })
            .collect()
    }

    #[test]
    fn rewrites_literal_and_variable_images() {
        let host = "127.0.0.1:5";
        let df = "ARG REGISTRY=docker.io\nARG IMAGE=debian\nARG TAG=9.11\nFROM ${REGISTRY}/${IMAGE}:${TAG} as stage1\nFROM alpine@sha256:5ce5f501c457015c4b91 AS two\nCOPY --from=debian:10.13 /a /b\nCOPY --from=stage1 /a /b\n";
        let out = rewrite(df, &[], host).unwrap();
        assert!(
            out.dockerfile.starts_with("ARG REGISTRY=127.0.0.1:5\n"),
            "{}",
            out.dockerfile
        );
        assert!(
            out.dockerfile
                .contains("FROM 127.0.0.1:5/alpine:sha256-5ce5f501c457 AS two")
        );
        assert!(
            out.dockerfile
                .contains("COPY --from=127.0.0.1:5/debian:10.13 /a /b")
        );
        assert!(out.dockerfile.contains("COPY --from=stage1 /a /b"));
        let names: Vec<&str> = out.images.iter().map(|i| i.repo_tag.as_str()).collect();
        assert_eq!(
            names,
            ["debian:9.11", "alpine:sha256-5ce5f501c457", "debian:10.13"]
        );
    }

    #[test]
    fn rewrites_arg_defaults_and_build_args() {
        let host = "h:1";
        let out = rewrite("ARG A=3.9\nARG B=alpine:${A}\nFROM ${B}\n", &[], host).unwrap();
        assert_eq!(
            out.dockerfile,
            "ARG A=3.9\nARG B=h:1/alpine:${A}\nFROM ${B}\n"
        );
        let out = rewrite(
            "ARG IMAGE_NAME=\"busybox:latest\"\nFROM $IMAGE_NAME\n",
            &[],
            host,
        )
        .unwrap();
        assert!(
            out.dockerfile
                .starts_with("ARG IMAGE_NAME=\"h:1/busybox:latest\"\n")
        );
        let out = rewrite(
            "ARG image\nFROM ${image}\n",
            &args(&[("image", "scratch")]),
            host,
        )
        .unwrap();
        assert!(out.images.is_empty());
        let out = rewrite(
            "ARG image\nFROM ${image}\n",
            &args(&[("image", "busybox")]),
            host,
        )
        .unwrap();
        assert_eq!(out.build_args, args(&[("image", "h:1/busybox")]));
        let out = rewrite("ARG V\nFROM busybox${V}:1.3${X}1\n", &[], host).unwrap();
        assert!(out.dockerfile.contains("FROM h:1/busybox${V}:1.3${X}1"));
        assert_eq!(out.images[0].repo_tag, "busybox:1.31");
    }

    #[test]
    fn leaves_heredoc_bodies_alone() {
        let df = "FROM busybox\nRUN <<EOF\nFROM alpine\nEOF\n";
        let out = rewrite(df, &[], "h:1").unwrap();
        assert_eq!(
            out.dockerfile,
            "FROM h:1/busybox:latest\nRUN <<EOF\nFROM alpine\nEOF\n"
        );
    }

    #[test]
    fn unknown_images_are_refused() {
        assert!(rewrite("FROM rabbitmq@sha256:57b0\n", &[], "h:1").is_err());
    }
}
