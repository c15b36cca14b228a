//! GitLab without boilerplate, end to end against a GitLab-like registry (TLS + token
//! realm): credentials from `CI_REGISTRY*` alone, `--dotenv-report` checked against
//! skopeo's digest, `--ci-labels` checked in the pushed config and manifest, and an
//! explicit config.json that differs winning over the CI variables.

use std::path::Path;
use std::process::{Command, Output};

use kiln_testkit::gitlab::GitLabLike;

mod common;
use common::{kiln, text};

const JOB_URL: &str = "https://gitlab.example.com/group/app/-/jobs/42";

/// Runs `kiln build` as a GitLab job would: the CI variables, the registry's CA
/// trusted, and no credential source but those given in `extra_env`.
fn run_job(gitlab: &GitLabLike, home: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let (user, password) = gitlab.credentials();
    let mut command = Command::new(kiln());
    command
        .arg("build")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("HOME", home)
        .env("SSL_CERT_FILE", gitlab.ca.pem_path())
        .env("CI_REGISTRY", gitlab.ci_registry())
        .env("CI_REGISTRY_USER", user)
        .env("CI_REGISTRY_PASSWORD", password)
        .env("CI_PROJECT_URL", "https://gitlab.example.com/group/app")
        .env("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("CI_COMMIT_SHORT_SHA", "01234567")
        .env("CI_COMMIT_TAG", "")
        .env("CI_JOB_URL", JOB_URL);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("running kiln")
}

fn skopeo(gitlab: &GitLabLike, args: &[&str]) -> serde_json::Value {
    let (user, password) = gitlab.credentials();
    let out = Command::new("skopeo")
        .args(args)
        .arg(format!("--creds={user}:{password}"))
        .arg("--tls-verify=false")
        .output()
        .expect("skopeo (run .ci/install-deps)");
    assert!(out.status.success(), "skopeo {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("skopeo JSON")
}

fn context(dir: &Path) -> String {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nLABEL org.opencontainers.image.url=from-dockerfile\nCOPY hello.txt /hello.txt\n",
    )
    .expect("Dockerfile");
    std::fs::write(ctx.join("hello.txt"), "hello\n").expect("file");
    ctx.to_str().expect("utf8").to_owned()
}

#[test]
fn pushes_with_ci_variables_alone_and_reports_what_it_pushed() {
    let gitlab = GitLabLike::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path());
    let repo = format!("{}/group/app", gitlab.ci_registry());
    let report = dir.path().join("out/build.env");
    let out = run_job(
        &gitlab,
        dir.path(),
        &[
            "-c",
            &ctx,
            "-d",
            &format!("{repo}:v1"),
            "-d",
            &format!("{repo}:latest"),
            "--dotenv-report",
            report.to_str().expect("utf8"),
            "--ci-labels",
            "--kaniko-dir",
            dir.path().join("work").to_str().expect("utf8"),
        ],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("$CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD"),
        "the log names the credential's source: {log}"
    );
    assert!(
        !log.contains(&gitlab.job_token),
        "the job token leaked: {log}"
    );

    let inspect = skopeo(&gitlab, &["inspect", &format!("docker://{repo}:v1")]);
    let digest = inspect["Digest"].as_str().expect("digest");
    let expected =
        format!("IMAGE_DIGEST={digest}\nIMAGE_REF={repo}@{digest}\nIMAGE_TAGS=v1,latest\n");
    assert_eq!(std::fs::read_to_string(&report).expect("report"), expected);

    let labels = &inspect["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://gitlab.example.com/group/app"
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(labels["org.opencontainers.image.version"], "01234567");
    assert_eq!(
        labels["org.opencontainers.image.url"], "from-dockerfile",
        "the Dockerfile's LABEL wins"
    );
    let config = skopeo(
        &gitlab,
        &["inspect", "--config", &format!("docker://{repo}@{digest}")],
    );
    assert_eq!(
        labels["org.opencontainers.image.created"], config["created"],
        "created is the image's"
    );
    let manifest = skopeo(
        &gitlab,
        &["inspect", "--raw", &format!("docker://{repo}@{digest}")],
    );
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        annotations["org.opencontainers.image.url"],
        "from-dockerfile"
    );
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        labels["org.opencontainers.image.created"]
    );
}

#[test]
fn a_config_json_that_differs_wins_over_the_ci_variables() {
    let gitlab = GitLabLike::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path());
    let cfg = dir.path().join("docker");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"gitlab-ci-token","password":"not-the-job-token"}}}}}}"#,
            gitlab.ci_registry()
        ),
    )
    .expect("config.json");
    let report = dir.path().join("build.env");
    let out = run_job(
        &gitlab,
        dir.path(),
        &[
            "-c",
            &ctx,
            "-d",
            &format!("{}/group/app:v1", gitlab.ci_registry()),
            "--dotenv-report",
            report.to_str().expect("utf8"),
            "--kaniko-dir",
            dir.path().join("work").to_str().expect("utf8"),
        ],
        &[("DOCKER_CONFIG", cfg.to_str().expect("utf8"))],
    );
    let log = text(&out);
    assert!(
        !out.status.success(),
        "the config's wrong password must be used: {log}"
    );
    assert!(
        log.contains("config.json"),
        "the log names the config as the source: {log}"
    );
    assert!(!report.exists(), "no report after a failed push");
}

#[test]
fn reproducible_ci_labels_take_the_commit_time_and_no_push_writes_no_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(dir.path());
    let layout = dir.path().join("layout");
    let report = dir.path().join("build.env");
    let out = Command::new(kiln())
        .args([
            "build",
            "-c",
            &ctx,
            "--no-push",
            "--reproducible",
            "--ci-labels",
        ])
        .arg(format!("--oci-layout-path={}", layout.display()))
        .arg(format!("--dotenv-report={}", report.display()))
        .arg(format!(
            "--kaniko-dir={}",
            dir.path().join("work").display()
        ))
        .env_remove("RUST_LOG")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("CI_COMMIT_TIMESTAMP", "2026-12-01T10:00:00+00:00")
        .env("CI_COMMIT_TAG", "v1.2.3")
        .output()
        .expect("running kiln");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!report.exists(), "--no-push pushes nothing, so no report");
    assert!(log.contains("--dotenv-report not written"), "{log}");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .expect("skopeo (run .ci/install-deps)");
    assert!(inspect.status.success(), "{}", text(&inspect));
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("JSON");
    let labels = &config["config"]["Labels"];
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2026-12-01T10:00:00+00:00"
    );
    assert_eq!(labels["org.opencontainers.image.version"], "v1.2.3");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        serde_json::Value::Null
    );
}
