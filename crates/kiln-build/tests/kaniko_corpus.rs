//! Builds Dockerfiles of kaniko's integration corpus (the context is the
//! corpus's `integration/` directory, with its `.dockerignore`), every
//! external base image rewritten to the busybox fixture in a local registry,
//! with the build args kaniko's harness used. Each must build.
//!
//! Not in the list, because busybox lacks what they run: the six cases that
//! call `groupadd`/`useradd`/`adduser -u` (test_copy_chown_intermediate_dirs,
//! test_add_chown_intermediate_dirs, test_copy_chown_nonexisting_user,
//! test_workdir_with_user, test_user_home, test_user_nonexisting); the cases
//! that need the internet (apt, yum, npm, apk, ADD of github URLs); the
//! hardlink cases that need their own base images built first;
//! test_meta_arg (`touch -d 0` is GNU-only). The ONBUILD pair has its own test.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_build::{BuildOptions, ContextSource};
use support::run_tokio;

fn corpus_dir() -> PathBuf {
    let base = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let dir = base.join("kaniko-dockerfiles/integration");
    assert!(
        dir.is_dir(),
        "needs the conformance data at {}: set KILN_CONFORMANCE_DIR",
        dir.display()
    );
    dir
}

/// Rewrites `FROM <external image>` to `base`, keeping `AS name`, scratch,
/// stage references and ARG-driven FROMs.
fn rewrite_from(dockerfile: &str, base: &str) -> String {
    let mut stages: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("from"))
            && words.len() >= 2
        {
            let image = words[1];
            let external = !image.eq_ignore_ascii_case("scratch")
                && !image.contains('$')
                && !stages.iter().any(|s| s.eq_ignore_ascii_case(image));
            if words.len() >= 4 {
                stages.push(words[3].to_string());
            }
            if external {
                let rest = words[2..].join(" ");
                out.push_str(&format!("FROM {base} {rest}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn build(
    name: &str,
    base: &str,
    args: &[(&str, &str)],
    work: &Path,
    mirror: Option<&str>,
) -> Result<String, String> {
    let dir = corpus_dir();
    let (context, dockerfile) = match name.strip_prefix("with-context/") {
        Some(case) => {
            let ctx = dir.join("dockerfiles-with-context").join(case);
            let df = ctx.join("Dockerfile");
            (ctx, df)
        }
        None => (dir.clone(), dir.join("dockerfiles").join(name)),
    };
    let text = fs_err::read_to_string(&dockerfile).unwrap();
    let rewritten = work.join("Dockerfile.rewritten");
    let text = match mirror {
        // Resolved through --registry-mirror instead of being rewritten.
        Some(_) => text,
        None => rewrite_from(&text, base),
    };
    fs_err::write(&rewritten, text).unwrap();
    let mut options = BuildOptions::new(ContextSource::Dir(context));
    options.dockerfile = kiln_build::DockerfileSource::Path(rewritten);
    options.kaniko_dir = work.join("kiln");
    options.no_push = true;
    options.registry.insecure_pull = true;
    if let Some(m) = mirror {
        options.registry.registry_mirrors = vec![m.to_string()];
        options.registry.skip_default_registry_fallback = true;
    }
    options.build_args = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
        .map(|o| o.digest)
        .map_err(|e| e.to_string())
}

#[test]
fn kaniko_corpus_dockerfiles_build() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    // Docker Hub names the corpus uses, served by a --registry-mirror.
    for name in [
        "library/busybox:latest",
        "library/alpine:latest",
        "library/alpine:3.9",
        "library/alpine:3.11",
        "library/debian:9.11",
    ] {
        kiln_testkit::FixtureImage::busybox()
            .push(&registry, name, None)
            .unwrap();
    }
    let mirror = registry.host_port();
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "Dockerfile_test_scratch",
            &[
                ("image", "scratch"),
                ("hello", "hello-value"),
                ("file", "context/foo"),
                ("file3", "context/b*"),
            ],
        ),
        ("Dockerfile_test_env", &[]),
        ("Dockerfile_test_label", &[]),
        ("Dockerfile_test_workdir", &[("workdir", "/arg/workdir")]),
        ("Dockerfile_test_user", &[]),
        ("Dockerfile_test_run", &[("file", "/file")]),
        ("Dockerfile_test_run_2", &[]),
        ("Dockerfile_test_copyadd_chmod", &[]),
        ("Dockerfile_test_cmd", &[]),
        ("Dockerfile_test_volume", &[]),
        ("Dockerfile_test_volume_2", &[]),
        ("Dockerfile_test_volume_3", &[]),
        ("Dockerfile_test_copy_symlink", &[]),
        ("Dockerfile_test_dockerignore", &[]),
        ("Dockerfile_test_ignore", &[]),
        ("Dockerfile_test_copy", &[]),
        ("Dockerfile_test_copy_reproducible", &[]),
        ("Dockerfile_test_copy_same_file_many_times", &[]),
        ("Dockerfile_test_copy_root_multistage", &[]),
        ("Dockerfile_test_metadata", &[]),
        ("Dockerfile_test_expose", &[]),
        ("Dockerfile_test_maintainer", &[]),
        ("Dockerfile_test_arg_multi", &[]),
        ("Dockerfile_test_arg_multi_with_quotes", &[]),
        ("Dockerfile_test_arg_blank_with_quotes", &[]),
        ("Dockerfile_test_multistage_args_issue_1911", &[]),
        ("Dockerfile_test_from_multistage_capital", &[]),
        ("Dockerfile_test_issue_519", &[]),
        ("Dockerfile_test_issue_647", &[]),
        ("Dockerfile_test_deleted_file_cached", &[]),
        ("Dockerfile_test_dangling_symlink", &[]),
        ("Dockerfile_test_replaced_symlinks", &[]),
        ("Dockerfile_test_mv_add", &[]),
        ("Dockerfile_test_complex_substitution", &[]),
        ("Dockerfile_test_registry", &[]),
        ("Dockerfile_test_whitelist", &[]),
        ("Dockerfile_test_daemons", &[]),
        ("Dockerfile_test_snapshotter_ignorelist", &[]),
        ("Dockerfile_test_target", &[]),
        ("TestReplaceFolderWithFile", &[]),
        ("TestReplaceFolderWithLink", &[]),
    ];
    let mut failures = Vec::new();
    for (name, args) in cases {
        let work = tempfile::tempdir().unwrap();
        if let Err(e) = build(name, &base, args, work.path(), None) {
            failures.push(format!("{name}: {e}"));
        }
    }
    // FROM lines left as written (quoted ARG defaults, two-level ARGs, global
    // ARGs in FROM, Docker Hub short names) and resolved through the mirror.
    let mirrored: &[(&str, &[(&str, &str)])] = &[
        ("Dockerfile_test_arg_from_quotes", &[]),
        ("Dockerfile_test_arg_from_single_quotes", &[]),
        ("Dockerfile_test_arg_two_level", &[]),
        ("with-context/issue-721", &[]),
        ("with-context/issue-1315", &[]),
    ];
    for (name, args) in mirrored {
        let work = tempfile::tempdir().unwrap();
        if let Err(e) = build(name, &base, args, work.path(), Some(&mirror)) {
            failures.push(format!("{name}: {e}"));
        }
    }
    let total = cases.len() + mirrored.len();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        total,
        failures.join("\n")
    );
}

/// kaniko's ONBUILD pair: `Dockerfile_onbuild_base` is built and pushed as the
/// image `Dockerfile_test_onbuild` names (`gcr.io/kaniko-test/onbuild-base`,
/// reached through `--registry-map`), whose triggers then run in the second build.
#[test]
fn kaniko_onbuild_base_and_its_triggers() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "library/ubuntu:18.04", None)
        .unwrap();
    let dir = corpus_dir();
    let work = tempfile::tempdir().unwrap();

    let mut base = BuildOptions::new(ContextSource::Dir(dir.clone()));
    base.dockerfile =
        kiln_build::DockerfileSource::Path("dockerfiles/Dockerfile_onbuild_base".into());
    base.kaniko_dir = work.path().join("kiln");
    base.registry.insecure = true;
    base.registry.insecure_pull = true;
    base.registry.registry_mirrors = vec![host.clone()];
    base.registry.skip_default_registry_fallback = true;
    base.destinations = vec![format!("{host}/kaniko-test/onbuild-base:latest")];
    run_tokio(kiln_build::build(&base, &kiln_build::NoopObserver)).unwrap();

    let layout = work.path().join("layout");
    let mut options = BuildOptions::new(ContextSource::Dir(dir));
    options.dockerfile =
        kiln_build::DockerfileSource::Path("dockerfiles/Dockerfile_test_onbuild".into());
    options.kaniko_dir = work.path().join("kiln");
    options.no_push = true;
    options.registry.insecure_pull = true;
    options.registry.registry_maps = [("gcr.io".to_string(), vec![host.clone()])].into();
    options.registry.skip_default_registry_fallback = true;
    options
        .build_args
        .insert("file".into(), "/tmp/onbuild".into());
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    let unpacked = tempfile::tempdir().unwrap();
    let bundle = support::umoci_unpack(&layout, "latest", unpacked.path());
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_to_string(rootfs.join("tmp/onbuild")).unwrap(),
        "onbuild\n"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("tmp/dir/onbuild2")).unwrap(),
        "onbuild 2\n"
    );
    assert!(
        rootfs.join("new/workdir/foo").is_file(),
        "COPY ran in the trigger's WORKDIR"
    );
    let runtime: serde_json::Value =
        serde_json::from_slice(&fs_err::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["cwd"], "/new/workdir");
}
