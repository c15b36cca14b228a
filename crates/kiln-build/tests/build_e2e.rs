//! End-to-end builds with real components: busybox rootfs, the chroot
//! sandbox, OCI layouts inspected with umoci, a real registry and skopeo.

mod support;

use serde_json::Value;
use support::{Fixture, Recorder, run_tokio, skopeo, umoci_unpack};

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
    let (mut options, layout) = fx.layout_options();
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
    let (mut options, layout) = fx.layout_options();
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

    let out = skopeo(|c| {
        c.args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{dest}"));
    });
    let served = kiln_oci::Digest::sha256_of(&out.stdout);
    assert_eq!(served.to_string(), outcome.digest);
    let out = skopeo(|c| {
        c.args(["inspect", "--tls-verify=false", "--config", "--raw"])
            .arg(format!("docker://{dest}"));
    });
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

#[test]
fn registry_base_image_is_pulled_unpacked_and_extended() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let fx = Fixture::new(
        &format!(
            "FROM {base}\nUSER user\nWORKDIR /home/user/work\nRUN id -u > uid && ls /bin/busybox\n"
        ),
        &[],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    options.oci_layout_path = Some(layout.clone());
    let recorder = Recorder::default();
    let outcome = run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    assert_eq!(recorder.run_lines(), vec!["/bin/busybox".to_string()]);
    // Base layer(s) carried over, plus WORKDIR (created /home/user/work) and RUN.
    let base_layers = 1;
    assert_eq!(
        outcome.layers.len(),
        base_layers + 2,
        "{:#?}",
        outcome.layers
    );
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    let uid_file = bundle.join("rootfs/home/user/work/uid");
    assert_eq!(fs_err::read_to_string(&uid_file).unwrap(), "1000\n");
    use std::os::unix::fs::MetadataExt;
    let work = fs_err::metadata(bundle.join("rootfs/home/user/work")).unwrap();
    assert_eq!(
        (work.uid(), work.gid()),
        (1000, 1000),
        "WORKDIR is created owned by USER"
    );
}

#[test]
fn secrets_are_usable_in_run_but_never_stored() {
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -c1-64 > /done\n",
        &[],
    );
    let secret = fx.work.path().join("token");
    fs_err::write(&secret, "s3cr3t-value").unwrap();
    let (mut options, layout) = fx.layout_options();
    options
        .secrets
        .insert("token".into(), kiln_build::SecretSource::File(secret));
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    // No blob of the image (layers are gzip: check the decompressed tars too) holds the value.
    for entry in fs_err::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = fs_err::read(entry.unwrap().path()).unwrap();
        let mut plain = Vec::new();
        let mut gz = flate2::read::GzDecoder::new(&bytes[..]);
        let text = if std::io::Read::read_to_end(&mut gz, &mut plain).is_ok() {
            plain
        } else {
            bytes
        };
        assert!(
            !text.windows(12).any(|w| w == b"s3cr3t-value"),
            "the secret leaked into a blob"
        );
    }
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    // The command saw the secret's content (its digest is in /done).
    let expected = kiln_oci::Digest::sha256_of(b"s3cr3t-value");
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/done")).unwrap(),
        format!("{}\n", expected.hex())
    );
    assert!(!bundle.join("rootfs/run/secrets/token").exists());
}

#[test]
fn tar_path_writes_a_docker_archive_skopeo_reads() {
    let fx = Fixture::new(
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
        &[("hello.txt", "hi\n")],
    );
    let tar = fx.work.path().join("image.tar");
    let mut options = fx.options();
    options.tar_path = Some(tar.clone());
    options.destinations = vec!["example.invalid/kiln/archive:v2".into()];
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let out = skopeo(|c| {
        c.args(["inspect", "--config", "--raw"])
            .arg(format!("docker-archive:{}", tar.display()));
    });
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        outcome.layers[0].diff_id
    );
    // And the content survives a copy into an OCI layout.
    let layout = fx.work.path().join("from-archive");
    skopeo(|c| {
        c.arg("copy")
            .arg(format!("docker-archive:{}", tar.display()))
            .arg(format!("oci:{}:copied", layout.display()));
    });
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "copied", unpacked.path());
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hi\n"
    );
}

#[test]
fn add_url_downloads_verifies_checksums_and_reports_http_errors() {
    let tar = kiln_testkit::busybox::tar_from_entries(&Default::default());
    let base = support::serve_files(vec![
        ("/files/notes.txt", b"remote notes\n".to_vec()),
        ("/files/archive.tar", tar.clone()),
    ]);
    let sum = kiln_oci::Digest::sha256_of(b"remote notes\n");
    let fx = Fixture::new(
        &format!(
            "FROM scratch\nADD --checksum={sum} {base}/files/notes.txt /dl/\nADD {base}/files/archive.tar /dl/kept.tar\n"
        ),
        &[],
    );
    let (options, _) = fx.layout_options();
    let unpacked = fx.build_and_unpack(&options);
    let bundle = &unpacked.bundle;
    let notes = bundle.join("rootfs/dl/notes.txt");
    assert_eq!(fs_err::read_to_string(&notes).unwrap(), "remote notes\n");
    use std::os::unix::fs::MetadataExt;
    let meta = fs_err::metadata(&notes).unwrap();
    assert_eq!(
        meta.mode() & 0o7777,
        0o600,
        "ADD from a URL makes 0600 files"
    );
    assert_eq!(meta.mtime(), 784_111_777, "mtime from Last-Modified");
    // A remote archive is stored as is, not extracted.
    assert_eq!(
        fs_err::read(bundle.join("rootfs/dl/kept.tar")).unwrap(),
        tar
    );

    let wrong = kiln_oci::Digest::sha256_of(b"something else");
    let fx = Fixture::new(
        &format!("FROM scratch\nADD --checksum={wrong} {base}/files/notes.txt /n\n"),
        &[],
    );
    let err = run_tokio(kiln_build::build(&fx.options(), &kiln_build::NoopObserver))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("Dockerfile:2"),
        "{err}"
    );

    let fx = Fixture::new(&format!("FROM scratch\nADD {base}/missing.txt /m\n"), &[]);
    let err = run_tokio(kiln_build::build(&fx.options(), &kiln_build::NoopObserver))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/missing.txt") && err.contains("404"), "{err}");
}

#[test]
fn metadata_only_stage_carries_base_layers_without_downloading_them() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let fx = Fixture::new(
        &format!("FROM {base}\nENV MODE=carried\nCMD [\"sh\"]\n"),
        &[],
    );
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.registry.insecure_pull = true;
    let dest = format!("{}/kiln/carried:1", registry.host_port());
    options.destinations = vec![dest.clone()];
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(outcome.layers.len(), 1);
    let layer = outcome.layers[0]
        .digest
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    assert!(
        !options
            .kaniko_dir
            .join("blobs/sha256")
            .join(&layer)
            .exists(),
        "the base layer was downloaded although no step needed it"
    );
    // The pushed image is complete: skopeo can copy every blob out of it.
    let copy = fx.work.path().join("copied");
    skopeo(|c| {
        c.args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{dest}"))
            .arg(format!("oci:{}:x", copy.display()));
    });
    assert!(copy.join("blobs/sha256").join(&layer).is_file());

    // Another registry cannot mount from the first: the layer is fetched and uploaded.
    let other = kiln_testkit::Registry::start_plain();
    let dest = format!("{}/kiln/carried:2", other.host_port());
    options.destinations = vec![dest.clone()];
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let copy = fx.work.path().join("copied-2");
    skopeo(|c| {
        c.args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{dest}"))
            .arg(format!("oci:{}:x", copy.display()));
    });
}

#[test]
fn copy_from_an_image_reference() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let image = format!("{}/fixtures/busybox:1", registry.host_port());
    let fx = Fixture::new(
        &format!("FROM scratch\nCOPY --from={image} /etc/passwd /copied/passwd\n"),
        &[],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    let passwd = fs_err::read_to_string(bundle.join("rootfs/copied/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
}
