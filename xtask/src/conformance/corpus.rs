//! The cases: every Dockerfile of the kaniko corpus (with the build args,
//! targets and contexts kaniko's harness used, from its README) and the
//! project's own fixtures in `fixtures/conformance/<name>/` (the directory is
//! the context; `# conformance: --build-arg K=V --target T --expect-failure`
//! comment lines in its Dockerfile give the options; a `Dockerfile.buildah`
//! next to it is what buildah builds instead, see [`Case::reference_dockerfile`]).

use super::rewrite::BuildArg;
use super::skips::skip_reason;
use crate::util::workspace_root;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One build to run with both builders and compare.
#[derive(Debug, Clone)]
pub struct Case {
    /// `Dockerfile_test_copy`, `with-context/issue-1315`, `testdata/...`, `fixtures/...`.
    pub name: String,
    /// The context directory (copied before the build).
    pub context: PathBuf,
    /// The Dockerfile (rewritten before the build).
    pub dockerfile: PathBuf,
    /// What buildah builds instead, when the Dockerfile uses what buildah
    /// 1.28 lacks (heredocs, COPY --link/--parents/--exclude): the same
    /// image by Docker's semantics, spelt with what buildah supports.
    pub reference_dockerfile: Option<PathBuf>,
    /// Text replacements applied to the Dockerfile for both builders: what
    /// buildah 1.28 cannot build at all is taken out, so the rest is compared.
    pub edits: Vec<(&'static str, &'static str)>,
    pub build_args: Vec<BuildArg>,
    /// Environment for the builders (values of bare `--build-arg KEY`).
    pub env: Vec<(String, String)>,
    pub target: Option<String>,
    /// Both builders must fail (e.g. `RUN exit 42`).
    pub expect_failure: bool,
    /// Files removed from the context copy (relative paths).
    pub removed_files: Vec<&'static str>,
    /// Files added to the context copy: (relative path, content, mode).
    pub extra_files: Vec<(&'static str, &'static [u8], u32)>,
    /// A layer-cache case: kiln builds it twice with `--cache` (the second
    /// time as a fresh runner) and the two images are compared, as kaniko's
    /// harness did; buildah is not involved.
    pub cache: Option<CacheStore>,
}

/// Where a layer-cache case keeps its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStore {
    /// A repository of the harness's registry.
    Registry,
    /// `--cache-repo oci:DIR`.
    Layout,
}

/// A case to build, or one skipped with its reason.
pub enum Entry {
    Run(Case),
    Skip { name: String, reason: String },
}

/// The kaniko corpus directory (KILN_CONFORMANCE_DIR overrides `../shared/conformance`).
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("KILN_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/conformance"))
        .join("kaniko-dockerfiles/integration")
}

/// Every case, in a stable order.
pub fn all() -> Result<Vec<Entry>> {
    let integration = corpus_dir();
    let mut cases = Vec::new();
    for file in sorted_entries(&integration.join("dockerfiles"))? {
        let name = file_name(&file);
        if name.ends_with(".dockerignore") {
            continue;
        }
        let context = if name == "Dockerfile_relative_copy" {
            integration.join("context")
        } else {
            integration.clone()
        };
        cases.push(kaniko_case(name, context, file));
    }
    for dir in sorted_entries(&integration.join("dockerfiles-with-context"))? {
        let name = format!("with-context/{}", file_name(&dir));
        cases.push(kaniko_case(name, dir.clone(), dir.join("Dockerfile")));
    }
    let testdata = integration.join("testdata");
    cases.push(kaniko_case(
        "testdata/Dockerfile.trivial".into(),
        testdata.clone(),
        testdata.join("Dockerfile.trivial"),
    ));
    let exit = testdata.join("exit-code-propagation");
    cases.push(kaniko_case(
        "testdata/exit-code-propagation".into(),
        exit.clone(),
        exit.join("Dockerfile_exit_code_propagation"),
    ));
    for dir in sorted_entries(&workspace_root().join("fixtures/conformance"))? {
        cases.push(fixture_case(&dir)?);
    }
    Ok(cases
        .into_iter()
        .map(|case| match skip_reason(&case.name) {
            Some(reason) => Entry::Skip {
                name: case.name,
                reason: reason.to_string(),
            },
            None => Entry::Run(case),
        })
        .collect())
}

/// A kaniko corpus case with the options kaniko's harness gave it.
fn kaniko_case(name: String, context: PathBuf, dockerfile: PathBuf) -> Case {
    let arg = |key: &str, value: &str| BuildArg {
        key: key.into(),
        value: Some(value.into()),
    };
    let mut case = Case {
        name,
        context,
        dockerfile,
        reference_dockerfile: None,
        edits: Vec::new(),
        build_args: Vec::new(),
        env: Vec::new(),
        target: None,
        expect_failure: false,
        removed_files: Vec::new(),
        extra_files: Vec::new(),
        cache: None,
    };
    if case.name.starts_with("Dockerfile_test_cache") {
        case.cache = Some(match case.name.ends_with("_oci") {
            true => CacheStore::Layout,
            false => CacheStore::Registry,
        });
    }
    match case.name.as_str() {
        "Dockerfile_test_run" | "Dockerfile_test_run_new" | "Dockerfile_test_run_redo" => {
            case.build_args = vec![arg("file", "/file")];
        }
        "Dockerfile_test_workdir" => case.build_args = vec![arg("workdir", "/arg/workdir")],
        "Dockerfile_test_add" => case.build_args = vec![arg("file", "context/foo")],
        "Dockerfile_test_onbuild" => case.build_args = vec![arg("file", "/tmp/onbuild")],
        "Dockerfile_test_multistage" => case.build_args = vec![arg("file", "/foo2")],
        "Dockerfile_test_scratch" => {
            case.build_args = vec![
                arg("image", "scratch"),
                arg("hello", "hello-value"),
                arg("file", "context/foo"),
                arg("file3", "context/b*"),
            ];
        }
        "Dockerfile_test_arg_secret" => {
            case.build_args = vec![
                BuildArg {
                    key: "SSH_PRIVATE_KEY".into(),
                    value: None,
                },
                arg("SSH_PUBLIC_KEY", "Pµbl1cK€Y"),
            ];
            case.env = vec![("SSH_PRIVATE_KEY".into(), "ThEPriv4t3Key".into())];
        }
        "Dockerfile_test_target" => case.target = Some("second".into()),
        // buildah 1.28 cannot COPY a file named arr[0].txt through any glob
        // (`arr[[]0].txt`, `context/*`): its copier globs the matched name
        // again, and `[0]` is then a character class that matches nothing.
        // The file and its own COPY line go, for both builders.
        "Dockerfile_test_copy"
        | "Dockerfile_test_copy_bucket"
        | "Dockerfile_test_copy_reproducible" => {
            case.edits = vec![("COPY context/arr[[]0].txt /mydir/\n", "")];
            case.removed_files = vec!["context/arr[0].txt"];
        }
        "testdata/exit-code-propagation" => case.expect_failure = true,
        // The README: "put any executable file named top1 here" (it was an ELF binary).
        "with-context/issue-2075" => {
            case.extra_files = vec![("top1", b"#!/bin/sh\necho top1\n", 0o755)];
        }
        _ => {}
    }
    case
}

/// A fixture directory: its Dockerfile's `# conformance:` lines give the options.
fn fixture_case(dir: &Path) -> Result<Case> {
    let dockerfile = dir.join("Dockerfile");
    let text = fs_err::read_to_string(&dockerfile)?;
    let mut case = Case {
        name: format!("fixtures/{}", file_name(dir)),
        context: dir.to_path_buf(),
        dockerfile,
        reference_dockerfile: Some(dir.join("Dockerfile.buildah")).filter(|p| p.exists()),
        edits: Vec::new(),
        build_args: Vec::new(),
        env: Vec::new(),
        target: None,
        expect_failure: false,
        removed_files: Vec::new(),
        extra_files: Vec::new(),
        cache: None,
    };
    let options = text
        .lines()
        .filter_map(|l| l.strip_prefix("# conformance:"))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>();
    let mut words = options.into_iter();
    while let Some(word) = words.next() {
        match word {
            "--build-arg" => {
                let kv = words.next().context("--build-arg needs KEY=VALUE")?;
                let (key, value) = kv.split_once('=').context("--build-arg needs KEY=VALUE")?;
                case.build_args.push(BuildArg {
                    key: key.into(),
                    value: Some(value.into()),
                });
            }
            "--target" => {
                case.target = Some(words.next().context("--target needs a stage")?.into())
            }
            "--expect-failure" => case.expect_failure = true,
            other => anyhow::bail!("{}: unknown conformance option {other}", case.name),
        }
    }
    Ok(case)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs_err::read_dir(dir)?
        .map(|e| Ok(e?.path()))
        .collect::<Result<_>>()?;
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
