//! End-to-end builds with real components: busybox rootfs, the chroot
//! sandbox, OCI layouts inspected with umoci, a real registry and skopeo.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{Fixture, Recorder, run_tokio, tool, umoci_unpack};

const SLICE: &str = r#"FROM scratch
ADD rootfs.tar /
ENV GREETING=hello
WORKDIR /app
COPY hello.txt .
RUN echo "$GREETING from run" > /app/run.txt && cat /app/hello.txt
LABEL org.example.kind=test
EXPOSE 8080
CMD ["cat", "/app/run.txt"]
"#;

#[test]
fn scratch_add_copy_run_to_oci_layout_unpacks_with_umoci() {
    let fx = Fixture::new(SLICE, &[("hello.txt", "hello from the context\n")]);
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.oci_layout_path = Some(layout.clone());
    options.destinations = vec!["example.invalid/kiln/slice:v1".into()];
    let recorder = Recorder::default();
    let outcome = run_tokio(kiln_build::build(&options, &recorder)).unwrap();

    // ADD, WORKDIR (created /app), COPY, RUN: four layers; ENV/LABEL/EXPOSE/CMD none.
    assert_eq!(outcome.layers.len(), 4, "{:#?}", outcome.layers);
    assert!(outcome.digest.starts_with("sha256:"));
    assert_eq!(
        recorder.run_lines(),
        vec!["hello from the context".to_string()]
    );
    let steps = recorder.step_lines();
    assert_eq!(steps[0], "[stage 1/1] STEP 1/9: FROM scratch");
    assert_eq!(
        steps[5],
        "[stage 1/1] STEP 6/9: RUN echo \"$GREETING from run\" > /app/run.txt && cat /app/hello.txt"
    );

    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "v1", unpacked.path());
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_to_string(rootfs.join("app/run.txt")).unwrap(),
        "hello from run\n"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("app/hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    let runtime: Value =
        serde_json::from_str(&fs_err::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["cat", "/app/run.txt"])
    );
    assert_eq!(runtime["process"]["cwd"], "/app");
    let env: Vec<&str> = runtime["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hello"), "{env:?}");

    // The image config and history, read from the layout itself.
    let index: Value =
        serde_json::from_str(&fs_err::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(manifest_digest, outcome.digest);
    let manifest: Value = serde_json::from_slice(&blob(&layout, manifest_digest)).unwrap();
    let config: Value = serde_json::from_slice(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(config["config"]["Labels"]["org.example.kind"], "test");
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    let history = config["history"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert!(created_by.contains(&"ENV GREETING=hello"), "{created_by:?}");
    assert!(
        created_by.contains(&"RUN /bin/sh -c echo \"$GREETING from run\" > /app/run.txt && cat /app/hello.txt # buildkit"),
        "{created_by:?}"
    );
    let empty = history.iter().filter(|h| h["empty_layer"] == true).count();
    assert_eq!(
        history.len() - empty,
        4,
        "one history entry with a layer per layer"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
}

fn blob(layout: &std::path::Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn reproducible_builds_are_byte_identical() {
    let dockerfile = "FROM scratch\nADD rootfs.tar /\nCOPY a.txt /a.txt\nRUN echo built > /b.txt\n";
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let fx = Fixture::new(dockerfile, &[("a.txt", "a\n")]);
            let mut options = fx.options();
            options.reproducible = true;
            run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
                .unwrap()
                .digest
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn multi_stage_copy_from_and_target() {
    let dockerfile = r#"FROM scratch AS base
ADD rootfs.tar /

FROM base AS builder
ARG WHO=world
RUN mkdir /out && echo "hello $WHO" > /out/greeting

FROM scratch AS unused
COPY nothing-here /

FROM scratch
COPY --from=builder /out/greeting /greeting
"#;
    let fx = Fixture::new(dockerfile, &[]);
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.oci_layout_path = Some(layout.clone());
    options.build_args.insert("WHO".into(), "kiln".into());
    let recorder = Recorder::default();
    let outcome = run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    assert_eq!(outcome.layers.len(), 1);
    // The unused stage (which would fail) was never run.
    assert!(
        recorder
            .step_lines()
            .iter()
            .all(|l| !l.contains("nothing-here"))
    );
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/greeting")).unwrap(),
        "hello kiln\n"
    );

    // --target builder: the image is the builder stage (base layer + RUN layer).
    let mut options = fx.options();
    options.target = Some("builder".into());
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(outcome.layers.len(), 2);
}

#[test]
fn push_to_a_real_registry_and_inspect_with_skopeo() {
    let registry = kiln_testkit::Registry::start_plain();
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nRUN echo pushed > /p.txt\nCMD [\"sh\"]\n",
        &[],
    );
    let mut options = fx.options();
    options.no_push = false;
    let dest = format!("{}/kiln/pushed:1.0", registry.host_port());
    options.destinations = vec![dest.clone()];
    options.registry.insecure = true;
    options.registry.insecure_pull = true;
    let digest_file = fx.work.path().join("digest");
    let name_file = fx.work.path().join("name-with-digest");
    options.digest_file = Some(digest_file.clone());
    options.image_name_tag_with_digest_file = Some(name_file.clone());
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(
        fs_err::read_to_string(&digest_file).unwrap(),
        outcome.digest
    );
    assert_eq!(
        fs_err::read_to_string(&name_file).unwrap(),
        format!("{dest}@{}\n", outcome.digest)
    );

    let out = Command::new(tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = kiln_oci::Digest::sha256_of(&out.stdout);
    assert_eq!(served.to_string(), outcome.digest);
    let out = Command::new(tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--config", "--raw"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}
