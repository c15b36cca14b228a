//! Runs one case: copy the context, rewrite the Dockerfile, build with kiln
//! and the reference builder, pull both images back, compare.

use super::bases::Bases;
use super::builders::{self, Build, Outcome};
use super::compare::{self, Side};
use super::corpus::{CacheStore, Case};
use super::reference::{Reference, docker_cannot_parse};
use super::rewrite::rewrite;
use super::{pull, tree};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus case whose reference image is kaniko's `onbuild-base`
/// (kaniko's harness built it first, the same way).
const ONBUILD_BASE_CASE: &str = "Dockerfile_onbuild_base";

/// How a case ended.
pub enum Verdict {
    Passed,
    Failed(Vec<String>),
    Skipped(String),
}

/// What a case needs from the harness.
pub struct Harness<'a> {
    pub bases: &'a mut Bases,
    pub kiln: &'a Path,
    pub reference: Reference,
    pub buildah_storage: &'a Path,
    /// The engine that builds the reference with `--reference docker`.
    pub docker: Option<&'a kiln_testkit::Dockerd>,
    /// Where builder logs are kept after the run.
    pub logs: &'a Path,
    /// Scratch space; the case's directory is removed when it ends.
    pub work: &'a Path,
    /// Build the "kiln" side with the reference too: checks the harness itself,
    /// which must then pass every case it can build.
    pub self_check: bool,
}

/// Builds and compares `case`.
pub fn run(case: &Case, harness: &mut Harness<'_>) -> Result<Verdict> {
    let slug = slug(&case.name);
    let dir = harness.work.join(&slug);
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    fs_err::create_dir_all(&dir)?;
    let verdict = run_in(case, &slug, &dir, harness);
    if std::env::var_os("KILN_CONFORMANCE_KEEP").is_some() {
        // Kept for a closer look (both images unpacked under pulled-*/bundle).
        let kept = harness.logs.join(&slug);
        if kept.exists() {
            fs_err::remove_dir_all(&kept)?;
        }
        fs_err::rename(&dir, &kept)?;
        eprintln!("conformance: kept {}", kept.display());
    } else {
        fs_err::remove_dir_all(&dir)?;
    }
    verdict
}

fn run_in(case: &Case, slug: &str, dir: &Path, harness: &mut Harness<'_>) -> Result<Verdict> {
    let host = harness.bases.host();
    if case.cache.is_some() && harness.self_check {
        return Ok(Verdict::Skipped(
            "a layer-cache case compares kiln with itself".into(),
        ));
    }
    let reference = harness.reference;
    if reference == Reference::Docker
        && let Some(reason) = docker_cannot_parse(&fs_err::read_to_string(&case.dockerfile)?)
    {
        return Ok(Verdict::Skipped(reason));
    }
    // The edits and removed files work around buildah 1.28; Docker needs none.
    let edits: &[(&str, &str)] = match reference {
        Reference::Buildah => &case.edits,
        Reference::Docker => &[],
    };
    let kiln_df = match prepare_dockerfile(case, &case.dockerfile, edits, &host, &dir.join("df"))? {
        Ok(prepared) => prepared,
        Err(reason) => return Ok(Verdict::Skipped(reason)),
    };
    let reference_df = match &case.reference_dockerfile {
        Some(path) if reference == Reference::Buildah => {
            match prepare_dockerfile(case, path, &[], &host, &dir.join("df-reference"))? {
                Ok(prepared) => prepared,
                Err(reason) => return Ok(Verdict::Skipped(reason)),
            }
        }
        _ => kiln_df.clone(),
    };
    let images = || kiln_df.images.iter().chain(&reference_df.images);
    if let Some(missing) = images().find(|i| !harness.bases.available(i.kind)) {
        return Ok(Verdict::Skipped(format!(
            "needs {} built first: include Dockerfile_onbuild_base in the run",
            missing.repo_tag
        )));
    }
    for image in images() {
        harness.bases.ensure(&image.repo_tag, image.kind)?;
    }
    let context = copy_context(case, reference, &dir.join("ctx"))?;
    // A cache case: kiln cold (the reference), then kiln again on a fresh
    // work dir with the cache warm; kaniko's harness compared those two.
    let (builders, kiln_flags) = match case.cache {
        None => ([reference.name(), "kiln"], Vec::new()),
        Some(store) => {
            let repo = match store {
                CacheStore::Registry => format!("{host}/cache/{slug}"),
                CacheStore::Layout => format!("oci:{}", dir.join("layer-cache").display()),
            };
            let mut flags = vec!["--cache=true".to_string(), format!("--cache-repo={repo}")];
            if case.name.contains("cache_copy") {
                flags.push("--cache-copy-layers=true".into());
            }
            (["kiln-cold", "kiln"], flags)
        }
    };
    let mut outcomes = Vec::new();
    for builder in builders {
        let work = dir.join(builder);
        fs_err::create_dir_all(&work)?;
        let destination = format!("{host}/{builder}/{slug}:latest");
        let prepared = if builder.starts_with("kiln") && !harness.self_check {
            &kiln_df
        } else {
            &reference_df
        };
        let build = Build {
            case,
            context: &context,
            dockerfile: &prepared.path,
            build_args: &prepared.build_args,
            work: &work,
            destination: &destination,
            kiln_flags: &kiln_flags,
        };
        let outcome = if builder == reference.name() || harness.self_check {
            match reference {
                Reference::Buildah => builders::buildah(harness.buildah_storage, &build)?,
                Reference::Docker => builders::docker(
                    harness.docker.context("--reference docker has an engine")?,
                    &build,
                )?,
            }
        } else {
            builders::kiln(harness.kiln, &build)?
        };
        fs_err::copy(
            &outcome.log,
            harness.logs.join(format!("{slug}.{builder}.log")),
        )?;
        outcomes.push((builder, destination, outcome));
    }
    if case.name == ONBUILD_BASE_CASE && outcomes[0].2.success {
        let repo_tag = outcomes[0].1.trim_start_matches(&format!("{host}/"));
        harness.bases.adopt_onbuild_base(repo_tag)?;
    }
    let failed: Vec<&(&str, String, Outcome)> =
        outcomes.iter().filter(|(_, _, o)| !o.success).collect();
    if case.expect_failure {
        return Ok(match failed.len() {
            2 => Verdict::Passed,
            _ => Verdict::Failed(
                outcomes
                    .iter()
                    .filter(|(_, _, o)| o.success)
                    .map(|(b, _, _)| format!("{b} succeeded but the build must fail"))
                    .collect(),
            ),
        });
    }
    if !failed.is_empty() {
        let lines = failed
            .iter()
            .map(|(builder, _, o)| {
                format!(
                    "{builder} failed ({}); log {}:\n{}",
                    o.status,
                    harness.logs.join(format!("{slug}.{builder}.log")).display(),
                    indent(&builders::log_tail(&o.log, 8))
                )
            })
            .collect();
        return Ok(Verdict::Failed(lines));
    }
    let mut differences = Vec::new();
    if case.cache.is_some() {
        // The rebuild must come from the cache: every lookup hits.
        let log = fs_err::read_to_string(&outcomes[1].2.log)?;
        if log.contains("cache miss") || !log.contains("cache hit") {
            differences.push(format!(
                "the rebuild did not come from the cache; its log:\n{}",
                indent(&builders::log_tail(&outcomes[1].2.log, 12))
            ));
        }
    }
    let pulled_reference = pull::pull(&outcomes[0].1, &dir.join("pulled-reference"))?;
    let kiln = pull::pull(&outcomes[1].1, &dir.join("pulled-kiln"))?;
    let reference_nodes = tree::walk(&pulled_reference.rootfs)?;
    let kiln_nodes = tree::walk(&kiln.rootfs)?;
    differences.extend(compare::configs(
        &kiln.config,
        &pulled_reference.config,
        reference,
    ));
    differences.extend(compare::trees(
        &Side {
            rootfs: &kiln.rootfs,
            nodes: &kiln_nodes,
        },
        &Side {
            rootfs: &pulled_reference.rootfs,
            nodes: &reference_nodes,
        },
        super::skips::volatile_files(&case.name),
        reference,
    )?);
    Ok(if differences.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(differences)
    })
}

/// Copies the context (owners and times kept, modes as a checkout has them)
/// and adds the case's extra files; removes the files buildah cannot copy
/// when buildah is the reference.
fn copy_context(case: &Case, reference: Reference, dest: &Path) -> Result<PathBuf> {
    let status = crate::util::status(Command::new("cp").arg("-a").arg(&case.context).arg(dest))
        .context("running cp -a")?;
    anyhow::ensure!(status.success(), "cp -a {} failed", case.context.display());
    // The shared corpus is stored read-only (dirs 0555, files 0444); give the
    // copy the modes a git checkout has, as kaniko's harness had: dirs 0755,
    // files 0755 when executable, else 0644.
    let status = crate::util::status(
        Command::new("sh")
            .arg("-c")
            .arg(
                "find \"$1\" -type d -exec chmod 0755 {} + && \
                 find \"$1\" -type f -perm /111 -exec chmod 0755 {} + && \
                 find \"$1\" -type f ! -perm /111 -exec chmod 0644 {} +",
            )
            .arg("sh")
            .arg(dest),
    )
    .context("running find/chmod")?;
    anyhow::ensure!(
        status.success(),
        "normalising modes in {} failed",
        dest.display()
    );
    let removed: &[&str] = match reference {
        Reference::Buildah => &case.removed_files,
        Reference::Docker => &[],
    };
    for path in removed {
        fs_err::remove_file(dest.join(path))?;
    }
    for (path, content, mode) in &case.extra_files {
        let file = dest.join(path);
        fs_err::write(&file, content)?;
        fs_err::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    Ok(dest.to_path_buf())
}

/// A rewritten Dockerfile on disk, with its build args and base images.
#[derive(Clone)]
struct Prepared {
    path: PathBuf,
    build_args: Vec<super::rewrite::BuildArg>,
    images: Vec<super::images::LocalImage>,
}

/// Applies `edits` (each must match) to `source`, rewrites it for the local
/// registry and writes it under its own name into `dir` (outside the
/// context), with its `<name>.dockerignore` companion when it has one. The
/// inner `Err` says why the case is skipped.
fn prepare_dockerfile(
    case: &Case,
    source: &Path,
    edits: &[(&str, &str)],
    host: &str,
    dir: &Path,
) -> Result<std::result::Result<Prepared, String>> {
    let mut text = fs_err::read_to_string(source)?;
    for (from, to) in edits {
        anyhow::ensure!(
            text.contains(from),
            "{}: no {from:?} to edit",
            source.display()
        );
        text = text.replace(from, to);
    }
    let rewritten = match rewrite(&text, &case.build_args, host) {
        Ok(r) => r,
        Err(reason) => return Ok(Err(reason)),
    };
    fs_err::create_dir_all(dir)?;
    let name = source.file_name().context("Dockerfile has a name")?;
    let path = dir.join(name);
    fs_err::write(&path, &rewritten.dockerfile)?;
    let mut companion = source.as_os_str().to_owned();
    companion.push(".dockerignore");
    let companion = PathBuf::from(companion);
    if companion.exists() {
        let mut dest = path.clone().into_os_string();
        dest.push(".dockerignore");
        fs_err::copy(&companion, PathBuf::from(dest))?;
    }
    Ok(Ok(Prepared {
        path,
        build_args: rewritten.build_args,
        images: rewritten.images,
    }))
}

/// A repository-safe name for a case.
pub fn slug(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
