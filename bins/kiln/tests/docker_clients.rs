//! Docker as a real client of what kiln produces: a private dockerd (Debian's
//! docker.io 20.10, kiln-testkit's `Dockerd`) pulls the image kiln pushed to a
//! local registry and runs it, and `docker load`s kiln's `--tar-path` archive and
//! runs that. Both must print what the multi-stage build put in the image, under
//! the config kiln wrote (user, working dir, environment), and Docker must see
//! the same image (same image ID, which is the config digest) either way.

use std::path::Path;

use kiln_testkit::{Dockerd, FixtureImage, Registry};

mod common;
use common::{kiln, run, text};

/// What the final stage's command prints: a file made by a RUN in the first
/// stage, copied over with its owner, plus the runtime user, dir and variable.
const EXPECTED: &str = "made in stage one\nuid=1000 cwd=/srv/app greeting=hello from kiln\n";

#[test]
fn docker_pulls_and_runs_the_pushed_image_and_loads_and_runs_the_tar() {
    let registry = Registry::start_plain();
    FixtureImage::busybox()
        .push(&registry, "base/busybox:1", None)
        .expect("pushing the busybox base");
    let host = registry.host_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("context dir");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {host}/base/busybox:1 AS stage-one\n\
             RUN mkdir /out && echo 'made in stage one' > /out/made.txt\n\
             FROM {host}/base/busybox:1\n\
             COPY --from=stage-one --chown=1000:1000 /out/made.txt /srv/app/made.txt\n\
             ENV GREETING=\"hello from kiln\"\n\
             WORKDIR /srv/app\n\
             USER 1000\n\
             CMD [\"sh\", \"-c\", \"cat made.txt && echo uid=$(id -u) cwd=$(pwd) greeting=$GREETING\"]\n"
        ),
    )
    .expect("writing the Dockerfile");
    let destination = format!("{host}/built/by-kiln:v1");
    let tar = dir.path().join("image.tar");
    let out = run(
        Path::new(kiln()),
        &[
            "build",
            "--context",
            ctx.to_str().expect("utf-8 path"),
            "--destination",
            &destination,
            "--tar-path",
            tar.to_str().expect("utf-8 path"),
            "--insecure",
            "--insecure-pull",
            "--kaniko-dir",
            dir.path().join("kaniko").to_str().expect("utf-8 path"),
        ],
    );
    assert!(out.status.success(), "kiln build failed:\n{}", text(&out));

    let engine = Dockerd::start();
    engine.run_ok(&["pull", &destination]);
    let pulled_id = engine.run_ok(&["image", "inspect", "--format", "{{.Id}}", &destination]);
    let ran = engine.run_ok(&["run", "--rm", "--network", "none", &destination]);
    assert_eq!(ran, EXPECTED, "docker run of the pulled image");
    let owner = engine.run_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &destination,
        "stat",
        "-c",
        "%u:%g %a",
        "made.txt",
    ]);
    assert_eq!(owner, "1000:1000 644\n", "COPY --chown as Docker sees it");

    // The archive, loaded into an engine that no longer has the image.
    engine.run_ok(&["rmi", &destination]);
    let loaded = engine.run_ok(&["load", "--input", tar.to_str().expect("utf-8 path")]);
    assert!(
        loaded.contains(&format!("Loaded image: {destination}")),
        "docker load named the image: {loaded}"
    );
    let loaded_id = engine.run_ok(&["image", "inspect", "--format", "{{.Id}}", &destination]);
    assert_eq!(
        loaded_id, pulled_id,
        "the archive and the pushed image are one image (same config digest)"
    );
    let ran = engine.run_ok(&["run", "--rm", "--network", "none", &destination]);
    assert_eq!(ran, EXPECTED, "docker run of the loaded archive");
}
