//! BuildKit's golden data (../shared/conformance/buildkit): parser dumps,
//! negative cases, line numbers, and the shell lexer tables.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::conformance_dir;

use kiln_dockerfile::shell::Lexer;
use kiln_dockerfile::syntax::{dump, parse_syntax};

fn bk() -> PathBuf {
    conformance_dir().join("buildkit/frontend/dockerfile")
}

fn sorted_dirs(p: PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(&p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn parser_testfiles_reproduce_result() {
    let dirs = sorted_dirs(bk().join("parser/testfiles"));
    let mut failures = Vec::new();
    for d in &dirs {
        let df = std::fs::read(d.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(d.join("result")).unwrap();
        match parse_syntax("Dockerfile", &df) {
            Ok(tree) => {
                let got = dump(&tree.nodes);
                if got != expected {
                    failures.push(format!(
                        "{}:\n--- got\n{got}--- expected\n{expected}",
                        d.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", d.display())),
        }
    }
    eprintln!(
        "buildkit parser: {}/{} passed",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert_eq!(dirs.len(), 33);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parser_negative_cases_rejected() {
    let dirs = sorted_dirs(bk().join("parser/testfiles-negative"));
    let mut accepted = Vec::new();
    for d in &dirs {
        let df = std::fs::read(d.join("Dockerfile")).unwrap();
        if parse_syntax("Dockerfile", &df).is_ok() {
            accepted.push(d.display().to_string());
        }
    }
    eprintln!(
        "buildkit negative: {}/{} rejected",
        dirs.len() - accepted.len(),
        dirs.len()
    );
    assert_eq!(dirs.len(), 4);
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    assert!(parse_syntax("D", b"").is_err());
    assert!(parse_syntax("D", b"# only\n\n   # comments\n").is_err());
}

#[test]
fn parser_line_numbers() {
    let df = std::fs::read(bk().join("parser/testfile-line/Dockerfile")).unwrap();
    let tree = parse_syntax("Dockerfile", &df).unwrap();
    let spans: Vec<(u32, u32)> = tree
        .nodes
        .iter()
        .map(|n| (n.span.start.line, n.span.end_line))
        .collect();
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
}

fn env_var_env() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn lexer_env_var_test() {
    let text = std::fs::read_to_string(bk().join("shell/envVarTest")).unwrap();
    let env = env_var_env();
    let lex = Lexer::new('\\');
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 3, "broken line {line:?}");
        let (plat, input, expected) = (f[0].trim(), f[1].trim(), f[2].trim());
        if plat == "W" {
            continue;
        }
        total += 1;
        let got = lex.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(s), e) => e != "error" && s == e,
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?}: got {got:?}, expected {expected:?}"));
        }
    }
    eprintln!(
        "buildkit envVarTest: {}/{} passed",
        total - failures.len(),
        total
    );
    assert_eq!(total, 228);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lexer_words_test() {
    let text = std::fs::read_to_string(bk().join("shell/wordsTest")).unwrap();
    let mut env = BTreeMap::new();
    let lex = Lexer::new('\\');
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(def) = line.strip_prefix("ENV ") {
            let (k, v) = def.trim_start_matches(' ').split_once('=').unwrap();
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        let (input, expected) = line.split_once('|').unwrap();
        let (input, expected) = (input.trim(), expected.trim_start_matches(' '));
        total += 1;
        let got = lex.process_words(input, &env);
        let ok = match &got {
            Err(_) => expected == "error",
            Ok(words) => expected != "error" && *words == expected.split(',').collect::<Vec<_>>(),
        };
        if !ok {
            failures.push(format!("{input:?}: got {got:?}, expected {expected:?}"));
        }
    }
    eprintln!(
        "buildkit wordsTest: {}/{} passed",
        total - failures.len(),
        total
    );
    assert_eq!(total, 24);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
