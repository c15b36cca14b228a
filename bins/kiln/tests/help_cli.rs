//! `--help` and `-h` through the real binary, for every command and both
//! installed names: exit 0, help on stdout, every flag of the tables with
//! its placeholder, default and description in its group; usage errors
//! still exit 2 with a hint. Expectations come from the flag tables
//! themselves (compiled in from src/cli) and from docs/kaniko-compat.md.

mod common;

// The tables, as the binary compiles them.
#[allow(dead_code)]
#[path = "../src/cli/mod.rs"]
mod cli;

use cli::flag::{Flag, Shown};
use cli::{attestations_flags, executor_flags, manifest_flags, parse_flags, warmer_flags};
use common::{kiln, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// kiln linked under `name` (`executor`, `warmer`) in `dir`.
fn installed_as(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(kiln(), &link).unwrap();
    link
}

/// A help page cut into its sections: title -> lines.
fn sections(page: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in page.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            let title = line.trim_end_matches(':').to_string();
            out.entry(title.clone()).or_default();
            current = Some(title);
        } else if let Some(title) = &current
            && line.starts_with("  ")
        {
            out.get_mut(title).unwrap().push(line.to_string());
        }
    }
    out
}

/// Checks that `page` shows every row of `rows` as the table says: in its
/// group's section, with short name, placeholder, description, default and
/// deprecated spellings.
fn check_page(what: &str, page: &str, rows: &[&Flag]) {
    let sections = sections(page);
    for flag in rows.iter().filter(|f| f.alias_of.is_none()) {
        let lines = sections
            .get(flag.group)
            .unwrap_or_else(|| panic!("{what}: no section {:?} in\n{page}", flag.group));
        let long = format!("--{}", flag.name);
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().any(|w| w == long))
            .unwrap_or_else(|| panic!("{what}: {long} not in {:?}:\n{page}", flag.group));
        if let Some(c) = flag.short {
            assert!(line.contains(&format!("-{c}, {long}")), "{what}: {line}");
        }
        if !flag.value.is_empty() {
            assert!(
                line.contains(&format!("{long} {}", flag.value)),
                "{what}: {line}"
            );
        }
        assert!(line.contains(flag.help), "{what}: {line}");
        match flag.default {
            Shown::Nothing => assert!(!line.contains("(default"), "{what}: {line}"),
            Shown::Value(d) | Shown::Note(d) => {
                assert!(line.contains(&format!("(default {d})")), "{what}: {line}")
            }
        }
        for alias in rows.iter().filter(|a| a.alias_of == Some(flag.name)) {
            assert!(
                line.contains(&format!("deprecated spelling: --{}", alias.name)),
                "{what}: {line}"
            );
        }
    }
}

fn assert_help(what: &str, o: &Output, rows: &[&Flag]) -> String {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(o));
    assert!(stderr(o).is_empty(), "{what}: {}", stderr(o));
    let page = stdout(o);
    assert!(page.starts_with("usage: "), "{what}: {page}");
    check_page(what, &page, rows);
    page
}

#[test]
fn build_and_executor_help_list_every_executor_flag() {
    let dir = tempfile::tempdir().unwrap();
    let executor = installed_as(dir.path(), "executor");
    let rows: Vec<&Flag> = executor_flags::FLAGS.iter().collect();
    let kiln = Path::new(kiln());
    for (program, args) in [
        (kiln, vec!["build", "--help"]),
        (kiln, vec!["build", "-h"]),
        (kiln, vec!["help", "build"]),
        (kiln, vec!["build", "--context", "/x", "--help"]),
        (kiln, vec!["--no-push", "-h"]),
        (executor.as_path(), vec!["--help"]),
        (executor.as_path(), vec!["-h"]),
    ] {
        let what = format!("{} {args:?}", program.display());
        let page = assert_help(&what, &run(program, &args), &rows);
        let first = page.lines().next().unwrap();
        if program == executor {
            assert!(first.contains(&executor.display().to_string()), "{first}");
        } else {
            assert!(first.starts_with("usage: kiln build"), "{first}");
        }
    }
}

#[test]
fn build_help_shows_every_default_of_the_table() {
    let page = stdout(&run(Path::new(kiln()), &["build", "--help"]));
    let mut shown = 0;
    for flag in executor_flags::FLAGS {
        if let Shown::Value(d) | Shown::Note(d) = flag.default {
            let line = page
                .lines()
                .find(|l| {
                    l.split_whitespace()
                        .any(|w| w == format!("--{}", flag.name))
                })
                .unwrap();
            assert!(line.contains(&format!("(default {d})")), "{line}");
            shown += 1;
        }
    }
    assert!(shown > 0);
}

#[test]
fn warm_and_warmer_help_list_every_warmer_flag() {
    let dir = tempfile::tempdir().unwrap();
    let warmer = installed_as(dir.path(), "warmer");
    let rows: Vec<&Flag> = warmer_flags::flags().collect();
    let kiln = Path::new(kiln());
    for (program, args) in [
        (kiln, vec!["warm", "--help"]),
        (kiln, vec!["warm", "-h"]),
        (kiln, vec!["help", "warm"]),
        (warmer.as_path(), vec!["--help"]),
        (warmer.as_path(), vec!["-i", "x", "-h"]),
    ] {
        let what = format!("{} {args:?}", program.display());
        assert_help(&what, &run(program, &args), &rows);
    }
}

#[test]
fn parse_help_lists_every_parse_flag() {
    let rows: Vec<&Flag> = parse_flags::FLAGS.iter().collect();
    for args in [
        vec!["parse", "--help"],
        vec!["parse", "-h"],
        vec!["help", "parse"],
    ] {
        let what = format!("{args:?}");
        assert_help(&what, &run(Path::new(kiln()), &args), &rows);
    }
}

#[test]
fn manifest_help_lists_every_manifest_flag() {
    let rows: Vec<&Flag> = manifest_flags::flags().collect();
    for args in [
        vec!["manifest", "--help"],
        vec!["manifest", "-h"],
        vec!["manifest", "create", "--help"],
        vec!["manifest", "inspect", "-h"],
        vec!["help", "manifest"],
    ] {
        let what = format!("{args:?}");
        assert_help(&what, &run(Path::new(kiln()), &args), &rows);
    }
}

#[test]
fn attestations_help_lists_every_attestations_flag() {
    let rows: Vec<&Flag> = attestations_flags::flags().collect();
    for args in [
        vec!["attestations", "--help"],
        vec!["attestations", "-h"],
        vec!["help", "attestations"],
    ] {
        let what = format!("{args:?}");
        assert_help(&what, &run(Path::new(kiln()), &args), &rows);
    }
}

#[test]
fn top_level_and_version_help_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let executor = installed_as(dir.path(), "executor");
    for args in [vec!["help"], vec!["--help"], vec!["-h"]] {
        let o = run(Path::new(kiln()), &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let page = stdout(&o);
        for command in [
            "build",
            "parse",
            "manifest",
            "attestations",
            "warm",
            "version",
            "help",
        ] {
            assert!(
                page.lines().any(|l| l.trim_start().starts_with(command)),
                "{args:?}: {command} missing from\n{page}"
            );
        }
    }
    for (program, args) in [
        (Path::new(kiln()), vec!["version", "--help"]),
        (Path::new(kiln()), vec!["help", "version"]),
        (executor.as_path(), vec!["version", "-h"]),
    ] {
        let o = run(program, &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(stdout(&o).starts_with("usage: kiln version"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_line_and_a_hint_to_help() {
    let dir = tempfile::tempdir().unwrap();
    let executor = installed_as(dir.path(), "executor");
    let warmer = installed_as(dir.path(), "warmer");
    let kiln = Path::new(kiln());
    for (program, args, error, hint) in [
        (
            kiln,
            vec!["build", "--nope"],
            "unknown flag: --nope",
            "kiln build --help",
        ),
        (
            kiln,
            vec!["build", "--context"],
            "flag needs an argument: --context",
            "kiln build --help",
        ),
        (
            kiln,
            vec!["--nope"],
            "unknown flag: --nope",
            "kiln build --help",
        ),
        (
            executor.as_path(),
            vec!["-x"],
            "unknown shorthand flag: 'x' in -x",
            "executor --help",
        ),
        (
            kiln,
            vec!["warm", "--nope"],
            "unknown flag: --nope",
            "kiln warm --help",
        ),
        (
            kiln,
            vec!["warm", "--force=maybe"],
            "invalid argument \"maybe\" for \"--force\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            "kiln warm --help",
        ),
        (
            warmer.as_path(),
            vec!["--image"],
            "flag needs an argument: --image",
            "warmer --help",
        ),
        (
            kiln,
            vec!["parse", "--nope", "Dockerfile"],
            "unknown flag: --nope",
            "kiln parse --help",
        ),
        (
            kiln,
            vec!["parse", "--format"],
            "flag needs an argument: --format",
            "kiln parse --help",
        ),
    ] {
        let o = run(program, &args);
        let what = format!("{} {args:?}", program.display());
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{what}");
        let err = stderr(&o);
        let first = err.lines().next().unwrap_or_default();
        assert!(first.ends_with(error), "{what}: {err}");
        assert!(err.contains(hint), "{what}: {err}");
    }
}

/// docs/kaniko-compat.md cut into sections: heading (without `#` and
/// backticks) -> the flags named in the first column of its table rows.
fn doc_flags() -> BTreeMap<String, Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/kaniko-compat.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("### ").or(line.strip_prefix("## ")) {
            current = heading.replace('`', "");
            out.entry(current.clone()).or_default();
        } else if let Some(row) = line.strip_prefix('|') {
            let first = row.split('|').next().unwrap_or_default();
            for word in first.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if let Some(name) = word.strip_prefix("--")
                    && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                {
                    out.get_mut(&current).unwrap().push(name.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn kaniko_compat_doc_and_help_group_the_same_flags() {
    let doc = doc_flags();
    let page = stdout(&run(Path::new(kiln()), &["build", "--help"]));
    let page_sections = sections(&page);
    for group in executor_flags::GROUPS {
        let in_doc = doc
            .get(*group)
            .unwrap_or_else(|| panic!("docs/kaniko-compat.md has no section {group:?}"));
        let in_table: Vec<&str> = executor_flags::FLAGS
            .iter()
            .filter(|f| f.group == *group)
            .map(|f| f.name)
            .collect();
        for name in &in_table {
            assert!(
                in_doc.iter().any(|d| d == name),
                "--{name} is in help's {group:?} but not in the doc's"
            );
        }
        for name in in_doc {
            assert!(
                in_table.contains(&name.as_str()),
                "the doc's {group:?} names --{name}, help's does not"
            );
            assert!(
                page_sections[*group]
                    .iter()
                    .any(|l| l.contains(&format!("--{name}"))),
                "--{name} (doc, {group:?}) is not in kiln build --help"
            );
        }
    }
    let warm = doc
        .get(warmer_flags::WARMER)
        .unwrap_or_else(|| panic!("no doc section {:?}", warmer_flags::WARMER));
    let warm_page = stdout(&run(Path::new(kiln()), &["warm", "--help"]));
    for flag in warmer_flags::OWN {
        assert!(
            warm.iter().any(|d| d == flag.name),
            "--{} not in the doc",
            flag.name
        );
    }
    for name in warm {
        assert!(
            warmer_flags::flags().any(|f| f.name == name),
            "the doc's warmer section names --{name}, the warmer does not take it"
        );
        assert!(warm_page.contains(&format!("--{name}")), "--{name}");
    }
}
