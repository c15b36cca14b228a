//! `cargo xtask scenario gitlab`: the job from GitLab's "Building images with
//! kaniko and GitLab CI/CD" page, run in kiln's debug image exactly as a
//! runner would, against a registry shaped like GitLab's (HTTPS with its own
//! CA, token auth whose issuer takes CI_REGISTRY_USER/CI_REGISTRY_PASSWORD).
//!
//! Cases:
//! 1. with the CA line: pushed as $CI_REGISTRY_IMAGE:$CI_COMMIT_TAG, pulled
//!    back with skopeo, files and config as the Dockerfile says, nothing
//!    from /builds, /kaniko or /busybox in it; then `/kaniko/warmer` caches
//!    the base image with the job's credentials and CA;
//! 2. without the CA line: fails naming the registry and the unknown
//!    authority, pushes nothing;
//! 3. wrong password: fails with an authentication error, pushes nothing;
//! 4. multi-stage with RUN steps and a second destination tag;
//! 5. a privileged runner (namespaces allowed): kiln builds in private roots
//!    and the job container's own filesystem stays as it was;
//! 6. `--cache=true` on the job's line: a second job on a fresh runner hits
//!    the cache for every RUN (nothing runs) and pushes the same image;
//! 7. the same job without the `echo … > config.json` line: kiln takes
//!    CI_REGISTRY_USER/CI_REGISTRY_PASSWORD itself, and says so in the log;
//! 8. a config.json that differs from the CI variables (right password there,
//!    a wrong CI_REGISTRY_PASSWORD): the config wins and the push succeeds.

mod container;
mod verify;

pub use container::enter as enter_container;
use container::{ContainerSpec, run as run_container};

use anyhow::{Context, Result, bail, ensure};
use kiln_testkit::{FixtureImage, Registry, RegistryTls, TestCa, TokenIssuer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const USER: &str = "gitlab-ci-token";
const PASSWORD: &str = "job-token-secret-4711";
const PROJECT_DIR: &str = "/builds/group/project";

/// The job's script lines, verbatim from GitLab's page.
const SCRIPT: &[&str] = &[
    "mkdir -p /kaniko/.docker",
    r#"echo "{\"auths\":{\"$CI_REGISTRY\":{\"username\":\"$CI_REGISTRY_USER\",\"password\":\"$CI_REGISTRY_PASSWORD\"}}}" > /kaniko/.docker/config.json"#,
    "/kaniko/executor --context $CI_PROJECT_DIR --dockerfile $CI_PROJECT_DIR/Dockerfile --destination $CI_REGISTRY_IMAGE:$CI_COMMIT_TAG",
];

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("gitlab") => gitlab(),
        _ => bail!("usage: cargo xtask scenario gitlab"),
    }
}

/// One check of the scenario.
type Case = fn(&Env) -> Result<()>;

struct Env {
    registry: Registry,
    _issuer: TokenIssuer,
    ca_pem: String,
    debug_layout: PathBuf,
    work: tempfile::TempDir,
}

fn gitlab() -> Result<()> {
    let ca = Arc::new(TestCa::new("GitLab-like registry CA"));
    let issuer = TokenIssuer::builder()
        .user(USER, PASSWORD, "pull,push")
        .tls(RegistryTls::with_ca(ca.clone()))
        .start();
    let registry = Registry::builder()
        .tls(RegistryTls::with_ca(ca.clone()))
        .token(&issuer)
        .start();
    FixtureImage::busybox()
        .push(&registry, "group/base:1", Some((USER, PASSWORD)))
        .map_err(|e| anyhow::anyhow!("pushing the base image: {e}"))?;
    let work = tempfile::Builder::new().prefix("kiln-gitlab-").tempdir()?;
    let images = build_and_push_images(&registry, &ca, work.path())?;
    let env = Env {
        ca_pem: ca.pem(),
        registry,
        _issuer: issuer,
        debug_layout: images.debug,
        work,
    };

    let mut passed = 0;
    let mut failed = Vec::new();
    let cases: [(&str, Case); 8] = [
        ("push with the CA line", case_push_with_ca),
        ("no CA line", case_without_ca),
        ("wrong password", case_wrong_password),
        ("multi-stage, two tags", case_multi_stage),
        (
            "privileged runner keeps the container intact",
            case_privileged,
        ),
        ("--cache: a second runner reuses the layers", case_cache),
        ("no config.json line", case_no_config_line),
        ("a config.json that differs wins", case_config_differs),
    ];
    for (name, case) in cases {
        match case(&env) {
            Ok(()) => {
                eprintln!("scenario gitlab: {name}: ok");
                passed += 1;
            }
            Err(e) => {
                eprintln!("scenario gitlab: {name}: FAILED: {e:#}");
                failed.push(name);
            }
        }
    }
    println!("gitlab: {passed} passed, {} failed", failed.len());
    ensure!(failed.is_empty(), "scenario gitlab failed: {failed:?}");
    Ok(())
}

/// `cargo xtask image --push`, against the scenario's registry: both images
/// are pushed (with credentials from a docker config and the registry's CA
/// from SSL_CERT_FILE) and the registry holds exactly the layouts' manifests.
fn build_and_push_images(
    registry: &Registry,
    ca: &TestCa,
    work: &Path,
) -> Result<crate::image::Images> {
    let docker_config = work.join("docker-config");
    fs_err::create_dir_all(&docker_config)?;
    fs_err::write(
        docker_config.join("config.json"),
        serde_json::json!({"auths": {registry.host_port(): {"username": USER, "password": PASSWORD}}})
            .to_string(),
    )?;
    let reference = format!("{}/kiln/executor:test", registry.host_port());
    let env = [
        ("DOCKER_CONFIG".to_string(), display(&docker_config)),
        ("SSL_CERT_FILE".to_string(), display(ca.pem_path())),
    ];
    let images = crate::image::build(Some(&reference), &env)?;
    for (layout, tag) in [
        (&images.executor, reference.clone()),
        (&images.debug, crate::image::debug_tag(&reference)),
    ] {
        let pushed = verify::manifest_digest(registry, &tag, (USER, PASSWORD))?;
        let written = verify::layout_manifest_digest(layout)?;
        ensure!(
            pushed == written,
            "{tag} is {pushed} in the registry but {written} in {}",
            layout.display()
        );
    }
    eprintln!("scenario gitlab: executor images pushed as {reference} and its -debug tag: ok");
    Ok(images)
}

/// What one run of the job needs.
struct Job<'a> {
    name: &'a str,
    dockerfile: String,
    files: &'a [(&'a str, &'a str)],
    with_ca: bool,
    password: &'a str,
    extra_script: &'a [&'a str],
    tag: &'a str,
    privileged: bool,
    /// `--cache=true` added to the job's executor line.
    cache: bool,
    /// What the script does about `/kaniko/.docker/config.json`.
    config_line: ConfigLine,
}

/// The job's `echo … > /kaniko/.docker/config.json` line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConfigLine {
    /// As GitLab's page writes it, from the CI variables.
    Seed,
    /// Left out: credentials come from the CI variables alone.
    Absent,
    /// A config with this password, whatever CI_REGISTRY_PASSWORD says.
    Literal(&'static str),
}

struct JobResult {
    success: bool,
    output: String,
    /// The job container's root filesystem, as the job left it.
    rootfs: PathBuf,
}

fn run_job(env: &Env, job: &Job<'_>) -> Result<JobResult> {
    let dir = env.work.path().join(job.name);
    let bundle = dir.join("bundle");
    let project = dir.join("project");
    fs_err::create_dir_all(&project)?;
    fs_err::write(project.join("Dockerfile"), &job.dockerfile)?;
    for (path, content) in job.files {
        let p = project.join(path);
        fs_err::create_dir_all(p.parent().expect("file in a dir"))?;
        fs_err::write(p, content)?;
    }
    let image_env = verify::unpack_layout(&env.debug_layout, &bundle)?;

    let host = env.registry.host_port();
    let mut job_env = image_env;
    for (k, v) in [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".to_string()),
        ("CI_REGISTRY", host.clone()),
        ("CI_REGISTRY_USER", USER.to_string()),
        ("CI_REGISTRY_PASSWORD", job.password.to_string()),
        ("CI_REGISTRY_IMAGE", format!("{host}/group/project")),
        ("CI_COMMIT_TAG", job.tag.to_string()),
        ("CI_PROJECT_DIR", PROJECT_DIR.to_string()),
    ] {
        job_env.retain(|(name, _)| name != k);
        job_env.push((k.to_string(), v));
    }

    let mut lines: Vec<String> = Vec::new();
    if job.with_ca {
        // before_script, as GitLab's page shows it: the PEM text inline.
        lines.push(format!(
            "echo \"{}\" >> /kaniko/ssl/certs/additional-ca-cert-bundle.crt",
            env.ca_pem.trim_end()
        ));
    }
    for line in SCRIPT {
        if line.starts_with("echo ") {
            match job.config_line {
                ConfigLine::Seed => lines.push(line.to_string()),
                ConfigLine::Absent => {}
                ConfigLine::Literal(password) => lines.push(format!(
                    r#"echo '{{"auths":{{"{host}":{{"username":"{USER}","password":"{password}"}}}}}}' > /kaniko/.docker/config.json"#
                )),
            }
        } else if job.cache && line.starts_with("/kaniko/executor") {
            lines.push(format!("{line} --cache=true"));
        } else {
            lines.push(line.to_string());
        }
    }
    lines.extend(job.extra_script.iter().map(|l| l.to_string()));
    let script = format!("set -e\n{}\n", lines.join("\n"));

    let (status, output) = run_container(&ContainerSpec {
        rootfs: bundle.join("rootfs"),
        binds: vec![(project, PROJECT_DIR.to_string())],
        env: job_env,
        cwd: PROJECT_DIR.to_string(),
        argv: vec!["/busybox/sh".into(), "-c".into(), script],
        privileged: job.privileged,
    })?;
    fs_err::write(dir.join("job.log"), &output)?;
    ensure!(
        !output.contains(PASSWORD) && !output.contains("wrong-password-123"),
        "the job log shows the registry password:\n{output}"
    );
    Ok(JobResult {
        success: status.success(),
        output,
        rootfs: bundle.join("rootfs"),
    })
}

fn simple_dockerfile(env: &Env) -> String {
    format!(
        "FROM {}/group/base:1\n\
         COPY app.txt /app/app.txt\n\
         ENV GREETING=hello\n\
         RUN echo built > /app/built.txt\n\
         CMD [\"cat\", \"/app/app.txt\"]\n",
        env.registry.host_port()
    )
}

fn case_push_with_ca(env: &Env) -> Result<()> {
    let job = Job {
        name: "with-ca",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "hello from the project\n")],
        with_ca: true,
        password: PASSWORD,
        // The build ran in place: the job's shell, tools and emulators must
        // survive it; and kaniko's warmer path works with the job's credentials
        // and CA.
        extra_script: &[
            "/busybox/ls /busybox/busybox /kaniko/executor",
            "/busybox/ls /kaniko/emulators/qemu-aarch64-static /kaniko/emulators/qemu-x86_64-static",
            "/kaniko/warmer --image $CI_REGISTRY/group/base:1 --cache-dir /kaniko/warmed",
            "/busybox/grep -q group/base:1 /kaniko/warmed/index.json",
        ],
        tag: "v1.0.0",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Seed,
    };
    let result = run_job(env, &job)?;
    ensure!(result.success, "the job failed:\n{}", result.output);
    let image = verify::pull(&env.registry, "group/project:v1.0.0", (USER, PASSWORD))?;
    image.expect_file("app/app.txt", "hello from the project\n")?;
    image.expect_file("app/built.txt", "built\n")?;
    image.expect_file("bin/busybox", None)?;
    image.expect_env("GREETING=hello")?;
    image.expect_cmd(&["cat", "/app/app.txt"])?;
    for leaked in ["builds", "kaniko", "busybox"] {
        image.expect_absent(leaked)?;
    }
    Ok(())
}

fn case_without_ca(env: &Env) -> Result<()> {
    let job = Job {
        name: "without-ca",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "x\n")],
        with_ca: false,
        password: PASSWORD,
        extra_script: &[],
        tag: "no-ca",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Seed,
    };
    let result = run_job(env, &job)?;
    ensure!(!result.success, "the job succeeded without the CA");
    eprintln!("  the job said: {}", error_line(&result.output));
    let host = env.registry.host_port();
    ensure!(
        result.output.contains(&host) && result.output.contains("unknown authority"),
        "the error must name {host} and the unknown certificate authority:\n{}",
        result.output
    );
    verify::expect_no_tag(&env.registry, "group/project:no-ca", (USER, PASSWORD))
}

fn case_wrong_password(env: &Env) -> Result<()> {
    let job = Job {
        name: "wrong-password",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "x\n")],
        with_ca: true,
        password: "wrong-password-123",
        extra_script: &[],
        tag: "bad-auth",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Seed,
    };
    let result = run_job(env, &job)?;
    ensure!(!result.success, "the job succeeded with a wrong password");
    eprintln!("  the job said: {}", error_line(&result.output));
    let lower = result.output.to_lowercase();
    ensure!(
        lower.contains("unauthorized") || lower.contains("authentication"),
        "the error must say authentication failed:\n{}",
        result.output
    );
    verify::expect_no_tag(&env.registry, "group/project:bad-auth", (USER, PASSWORD))
}

fn case_multi_stage(env: &Env) -> Result<()> {
    let host = env.registry.host_port();
    let job = Job {
        name: "multi-stage",
        dockerfile: format!(
            "FROM {host}/group/base:1 AS builder\n\
             WORKDIR /src\n\
             COPY main.txt .\n\
             RUN mkdir -p /out && tr a-z A-Z < main.txt > /out/program && chmod 755 /out/program\n\
             FROM {host}/group/base:1\n\
             COPY --from=builder /out/program /usr/local/bin/program\n\
             RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && chown app /usr/local/bin/program\n\
             USER app\n\
             LABEL org.example.stage=final\n"
        ),
        files: &[("main.txt", "compiled program\n")],
        with_ca: true,
        password: PASSWORD,
        extra_script: &[
            "/kaniko/executor --context $CI_PROJECT_DIR --dockerfile $CI_PROJECT_DIR/Dockerfile --destination $CI_REGISTRY_IMAGE:$CI_COMMIT_TAG --destination $CI_REGISTRY_IMAGE:latest",
        ],
        tag: "v2.0.0",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Seed,
    };
    let result = run_job(env, &job)?;
    ensure!(result.success, "the job failed:\n{}", result.output);
    let tagged = verify::pull(&env.registry, "group/project:v2.0.0", (USER, PASSWORD))?;
    let latest = verify::pull(&env.registry, "group/project:latest", (USER, PASSWORD))?;
    ensure!(
        tagged.digest == latest.digest,
        "the two destinations differ: {} vs {}",
        tagged.digest,
        latest.digest
    );
    tagged.expect_file("usr/local/bin/program", "COMPILED PROGRAM\n")?;
    tagged.expect_owner("usr/local/bin/program", 1000)?;
    tagged.expect_user("app")?;
    tagged.expect_absent("src")?;
    for leaked in ["builds", "kaniko", "busybox"] {
        tagged.expect_absent(leaked)?;
    }
    Ok(())
}

/// Where namespaces are allowed, kiln builds in private roots and leaves the
/// job container's own filesystem as it was.
fn case_privileged(env: &Env) -> Result<()> {
    let job = Job {
        name: "privileged",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "privileged runner\n")],
        with_ca: true,
        password: PASSWORD,
        extra_script: &[],
        tag: "privileged",
        privileged: true,
        cache: false,
        config_line: ConfigLine::Seed,
    };
    let result = run_job(env, &job)?;
    ensure!(result.success, "the job failed:\n{}", result.output);
    ensure!(
        result.output.contains("chroot"),
        "kiln should say it chose chroot isolation:\n{}",
        result.output
    );
    let image = verify::pull(&env.registry, "group/project:privileged", (USER, PASSWORD))?;
    image.expect_file("app/app.txt", "privileged runner\n")?;
    image.expect_file("app/built.txt", "built\n")?;
    // The base image was not unpacked over the container, and nothing the
    // build made landed there.
    for path in ["etc/passwd", "app", "bin/busybox"] {
        ensure!(
            result.rootfs.join(path).symlink_metadata().is_err(),
            "/{path} appeared in the job container: the build touched its filesystem"
        );
    }
    for path in ["kaniko/executor", "busybox/sh", "bin/sh"] {
        ensure!(
            result.rootfs.join(path).symlink_metadata().is_ok(),
            "/{path} disappeared from the job container"
        );
    }
    Ok(())
}

/// `--cache=true`: the first job stores every RUN layer in
/// `$CI_REGISTRY_IMAGE/cache`; a second job, on a fresh runner, runs none of
/// them and pushes the same image.
fn case_cache(env: &Env) -> Result<()> {
    let host = env.registry.host_port();
    let dockerfile = format!(
        "FROM {host}/group/base:1\n\
         COPY app.txt /app/app.txt\n\
         RUN echo cached-$((6*7)) && echo layer > /app/layer.txt\n\
         RUN echo second-$((6*7)) && ls /app > /app/listing\n"
    );
    let job = |name: &'static str, tag: &'static str| Job {
        name,
        dockerfile: dockerfile.clone(),
        files: &[("app.txt", "cached app\n")],
        with_ca: true,
        password: PASSWORD,
        extra_script: &[],
        tag,
        privileged: false,
        cache: true,
        config_line: ConfigLine::Seed,
    };
    let first = run_job(env, &job("cache-first", "cache-1"))?;
    ensure!(first.success, "the first job failed:\n{}", first.output);
    ensure!(
        first.output.contains("cached-42") && first.output.contains("cache miss"),
        "the first job should run its RUN steps and say they missed:\n{}",
        first.output
    );
    let second = run_job(env, &job("cache-second", "cache-2"))?;
    ensure!(second.success, "the second job failed:\n{}", second.output);
    ensure!(
        !second.output.contains("cached-42") && !second.output.contains("second-42"),
        "the second job ran a RUN step despite the cache:\n{}",
        second.output
    );
    ensure!(
        second.output.matches("cache hit").count() == 2,
        "the second job should log two cache hits:\n{}",
        second.output
    );
    let a = verify::pull(&env.registry, "group/project:cache-1", (USER, PASSWORD))?;
    let b = verify::pull(&env.registry, "group/project:cache-2", (USER, PASSWORD))?;
    b.expect_file("app/layer.txt", "layer\n")?;
    b.expect_file("app/listing", "app.txt\nlayer.txt\nlisting\n")?;
    ensure!(
        a.expect_file("app/listing", "app.txt\nlayer.txt\nlisting\n")
            .is_ok(),
        "the first image lacks its RUN output"
    );
    Ok(())
}

/// The job's error line, for the scenario's own log.
fn case_no_config_line(env: &Env) -> Result<()> {
    let job = Job {
        name: "no-config-line",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "no boilerplate\n")],
        with_ca: true,
        password: PASSWORD,
        extra_script: &["test ! -e /kaniko/.docker/config.json"],
        tag: "no-config",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Absent,
    };
    let result = run_job(env, &job)?;
    ensure!(result.success, "the job failed:\n{}", result.output);
    ensure!(
        result
            .output
            .contains("source=$CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD"),
        "the log must say the credential came from the CI variables:\n{}",
        result.output
    );
    let image = verify::pull(&env.registry, "group/project:no-config", (USER, PASSWORD))?;
    image.expect_file("app/app.txt", "no boilerplate\n")
}

fn case_config_differs(env: &Env) -> Result<()> {
    let job = Job {
        name: "config-differs",
        dockerfile: simple_dockerfile(env),
        files: &[("app.txt", "config wins\n")],
        with_ca: true,
        // The CI variable is wrong; only the config's password is accepted.
        password: "wrong-password-123",
        extra_script: &[],
        tag: "config-wins",
        privileged: false,
        cache: false,
        config_line: ConfigLine::Literal(PASSWORD),
    };
    let result = run_job(env, &job)?;
    ensure!(
        result.success,
        "the config.json's credential must win over CI_REGISTRY_PASSWORD:\n{}",
        result.output
    );
    ensure!(
        result.output.contains("source=/kaniko/.docker/config.json"),
        "the log must name the config.json as the source:\n{}",
        result.output
    );
    let image = verify::pull(&env.registry, "group/project:config-wins", (USER, PASSWORD))?;
    image.expect_file("app/app.txt", "config wins\n")
}

fn error_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .find(|l| l.contains("ERROR") || l.contains("Error"))
        .unwrap_or("(no error line)")
        .trim()
}

/// Makes `path` a string for command lines.
fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Runs skopeo with the registry's CA and credentials.
fn skopeo(registry: &Registry, creds: (&str, &str), args: &[&str]) -> Result<std::process::Output> {
    let cert_dir = registry
        .tls()
        .context("the scenario registry uses TLS")?
        .cert_dir();
    crate::util::output(
        Command::new("skopeo")
            .args(args)
            .arg("--cert-dir")
            .arg(cert_dir)
            .arg("--creds")
            .arg(format!("{}:{}", creds.0, creds.1)),
    )
}
