//! Every Dockerfile of kaniko's integration corpus parses and plans.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;

use kiln_dockerfile::{PlanOptions, parse};

/// The build args kaniko's harness passed (corpus README).
fn build_args(name: &str) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match name.rsplit('/').next().unwrap_or_default() {
        "Dockerfile_test_run" | "Dockerfile_test_run_new" | "Dockerfile_test_run_redo" => {
            &[("file", "/file")]
        }
        "Dockerfile_test_workdir" => &[("workdir", "/arg/workdir")],
        "Dockerfile_test_add" => &[("file", "context/foo")],
        "Dockerfile_test_onbuild" => &[("file", "/tmp/onbuild")],
        "Dockerfile_test_multistage" => &[("file", "/foo2")],
        "Dockerfile_test_scratch" => &[
            ("image", "scratch"),
            ("hello", "hello-value"),
            ("file", "context/foo"),
            ("file3", "context/b*"),
        ],
        _ => &[],
    };
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_kaniko_dockerfile_parses_and_plans() {
    let root = common::conformance_dir().join("kaniko-dockerfiles/integration");
    // Everything in dockerfiles/ (some names do not start with
    // "Dockerfile") plus the Dockerfile* files elsewhere.
    let files = common::files_under(&root, &|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let in_dockerfiles = p.parent().is_some_and(|d| d.ends_with("dockerfiles"));
        !name.ends_with(".dockerignore") && (in_dockerfiles || name.starts_with("Dockerfile"))
    });
    let mut failures = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        match parse(&name, &bytes) {
            Ok(df) => {
                let opts = PlanOptions {
                    build_args: build_args(&name),
                    ..PlanOptions::default()
                };
                if let Err(e) = df.plan(&opts) {
                    failures.push(format!("plan {name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("parse {name}: {e}")),
        }
    }
    eprintln!(
        "kaniko corpus: {}/{} parsed and planned",
        files.len() - failures.len(),
        files.len()
    );
    assert_eq!(files.len(), 98, "corpus size changed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
