//! Options and instructions beyond the basic slice: single snapshot, zstd,
//! cache mounts kept across builds, heredocs, ONBUILD triggers, tmpfs and
//! network mounts, labels and annotations from options.

mod support;

use support::{Fixture, Recorder, layout_documents, run_tokio, umoci_unpack};

#[test]
fn single_snapshot_makes_one_layer_per_stage() {
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nCOPY a.txt /a.txt\nRUN echo b > /b.txt && rm /a.txt\n",
        &[("a.txt", "a\n")],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.single_snapshot = true;
    options.oci_layout_path = Some(layout.clone());
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(outcome.layers.len(), 1);
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/b.txt")).unwrap(),
        "b\n"
    );
    assert!(!bundle.join("rootfs/a.txt").exists());
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

/// BuildKit's empty image (dockerfile2llb `emptyImage`, checked against Docker
/// 20.10 by `cargo xtask conformance --reference docker`): a stage on scratch
/// starts with the default PATH and the working dir `/`; WORKDIR replaces it.
#[test]
fn scratch_starts_with_buildkit_default_path_and_working_dir() {
    for (dockerfile, working_dir) in [
        ("FROM scratch\nCOPY a.txt /a.txt\n", "/"),
        ("FROM scratch\nWORKDIR /srv\nCOPY a.txt a.txt\n", "/srv"),
    ] {
        let fx = Fixture::new(dockerfile, &[("a.txt", "a\n")]);
        let (options, layout) = fx.layout_options();
        run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
        let (_, config) = layout_documents(&layout);
        assert_eq!(config["config"]["WorkingDir"], working_dir, "{dockerfile}");
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ]),
            "{dockerfile}"
        );
    }
}

/// BuildKit (Docker 20.10 and current: moby/buildkit#5381 documents it) hands a
/// stage's ARG values to the stages built `FROM` it, as kaniko's corpus case
/// `Dockerfile_test_multistage_args_issue_1911` shows against Docker; a stage
/// not based on it sees none of them.
#[test]
fn arg_values_carry_over_to_stages_built_from_a_stage() {
    let fx = Fixture::new(
        concat!(
            "FROM scratch AS base\n",
            "ADD rootfs.tar /\n",
            "ARG NAME=base\n",
            "FROM scratch AS unrelated\n",
            "ADD rootfs.tar /\n",
            "RUN echo \"[$NAME]\" > /unrelated.txt\n",
            "FROM base AS dev\n",
            "ARG NAME=\"$NAME-dev\"\n",
            "RUN echo \"$NAME\" > /dev.txt\n",
            "FROM dev\n",
            "ARG OTHER\n",
            "RUN echo \"[$NAME][$OTHER]\" > /final.txt\n",
            "COPY --from=unrelated /unrelated.txt /unrelated.txt\n",
        ),
        &[],
    );
    let (options, _) = fx.layout_options();
    let image = fx.build_and_unpack(&options);
    let read = |name: &str| fs_err::read_to_string(image.bundle.join("rootfs").join(name)).unwrap();
    assert_eq!(read("dev.txt"), "base-dev\n");
    assert_eq!(read("final.txt"), "[base-dev][]\n");
    assert_eq!(read("unrelated.txt"), "[]\n");
}

#[test]
fn zstd_layers_labels_and_annotations_from_options() {
    let fx = Fixture::new(
        "FROM scratch\nCOPY a.txt /a.txt\nLABEL from=dockerfile over=dockerfile\n",
        &[("a.txt", "a\n")],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.compression = kiln_build::Compression::Zstd;
    options.compression_level = Some(9);
    options.labels.insert("over".into(), "option".into());
    options
        .annotations
        .insert("org.example.note".into(), "annotated".into());
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let (manifest, config) = layout_documents(&layout);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(manifest["annotations"]["org.example.note"], "annotated");
    assert_eq!(config["config"]["Labels"]["from"], "dockerfile");
    assert_eq!(config["config"]["Labels"]["over"], "option");
    // umoci 0.4 does not read zstd layers: decompress and list the tar here.
    let digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = fs_err::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let tar = zstd::decode_all(&blob[..]).unwrap();
    let diff_id = kiln_oci::Digest::sha256_of(&tar);
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        diff_id.to_string()
    );
    let mut archive = tar::Archive::new(&tar[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["a.txt".to_string()]);
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_layers() {
    let dockerfile = "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; wc -l < /cache/log > /count'\n";
    let fx = Fixture::new(dockerfile, &[]);
    let mut counts = Vec::new();
    for _ in 0..2 {
        let layout = fx.work.path().join(format!("layout-{}", counts.len()));
        let mut options = fx.options();
        options.oci_layout_path = Some(layout.clone());
        run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
        let unpacked = tempfile::tempdir().unwrap();
        let bundle = umoci_unpack(&layout, "latest", unpacked.path());
        counts.push(
            fs_err::read_to_string(bundle.join("rootfs/count"))
                .unwrap()
                .trim()
                .to_string(),
        );
        assert!(
            !bundle.join("rootfs/cache/log").exists(),
            "cache content leaked into the image"
        );
    }
    assert_eq!(counts, vec!["1", "2"]);
}

#[test]
fn heredocs_onbuild_tmpfs_and_network_none() {
    let registry = kiln_testkit::Registry::start_plain();
    // A base image with ONBUILD triggers, pushed, then used as a base.
    let base = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nONBUILD RUN echo triggered > /onbuild.txt\n",
        &[],
    );
    let base_ref = format!("{}/kiln/onbuild-base:1", registry.host_port());
    let mut options = base.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.destinations = vec![base_ref.clone()];
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    let fx = Fixture::new(
        &format!(
            r#"FROM {base_ref}
RUN <<EOF
echo from heredoc > /heredoc.txt
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /script.txt
EOF
COPY <<EOF /etc/app.conf
name=$NAME
EOF
RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/t && test -f /scratch/t
RUN --network=none sh -c 'tail -n +3 /proc/net/dev | wc -l > /links'
"#
        ),
        &[],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    options.oci_layout_path = Some(layout.clone());
    let recorder = Recorder::default();
    run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_to_string(rootfs.join("onbuild.txt")).unwrap(),
        "triggered\n"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("heredoc.txt")).unwrap(),
        "from heredoc\n"
    );
    assert!(
        fs_err::read_to_string(rootfs.join("script.txt"))
            .unwrap()
            .starts_with("script /")
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("etc/app.conf")).unwrap(),
        "name=\n"
    );
    assert!(!rootfs.join("scratch/t").exists());
    assert_eq!(
        fs_err::read_to_string(rootfs.join("links")).unwrap().trim(),
        "1",
        "only lo"
    );
    let (_, config) = layout_documents(&layout);
    assert!(
        config["config"]["OnBuild"].is_null(),
        "triggers are consumed"
    );
}

#[test]
fn step_keys_are_deterministic_and_follow_their_inputs() {
    let dockerfile =
        "FROM scratch\nADD rootfs.tar /\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\nENV X=1\n";
    let keys = |content: &str, mtime: i64, build_arg: Option<&str>| -> Vec<String> {
        let fx = Fixture::new(dockerfile, &[("a.txt", content)]);
        let t = filetime::FileTime::from_unix_time(mtime, 0);
        filetime::set_file_mtime(fx.path().join("a.txt"), t).unwrap();
        let mut options = fx.options();
        if let Some(v) = build_arg {
            options.build_args.insert("UNUSED".into(), v.into());
        }
        let recorder = Recorder::default();
        run_tokio(kiln_build::build(&options, &recorder)).unwrap();
        let events = recorder.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                kiln_build::BuildEvent::StepKey { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    };
    let first = keys("a\n", 1_000, None);
    assert_eq!(first.len(), 4, "ADD, COPY, RUN, ENV each have a key");
    assert_eq!(first, keys("a\n", 2_000, None), "mtimes do not change keys");
    let changed = keys("changed\n", 1_000, None);
    assert_eq!(
        changed[0], first[0],
        "the ADD before the change keeps its key"
    );
    assert_ne!(
        changed[1], first[1],
        "the COPY of a changed file gets a new key"
    );
    assert_ne!(changed[2], first[2], "and every step after it");
}

#[test]
fn dockerfile_from_a_url() {
    let base = support::serve_files(vec![(
        "/ci/Dockerfile",
        b"FROM scratch\nCOPY a.txt /from-url.txt\n".to_vec(),
    )]);
    let fx = Fixture::new("FROM scratch\n", &[("a.txt", "a\n")]);
    let mut options = fx.options();
    options.dockerfile = kiln_build::DockerfileSource::Url(format!("{base}/ci/Dockerfile"));
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    assert_eq!(outcome.layers.len(), 1);

    options.dockerfile = kiln_build::DockerfileSource::Url(format!("{base}/nope"));
    let err = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nope") && err.contains("404"), "{err}");
}

#[test]
fn custom_platform_sets_the_config_and_target_args() {
    let fx = Fixture::new(
        "FROM scratch\nARG TARGETPLATFORM\nARG TARGETARCH\nLABEL built.for=$TARGETPLATFORM arch=$TARGETARCH\n",
        &[],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.custom_platform = Some("linux/arm64/v8".into());
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let (_, config) = layout_documents(&layout);
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Labels"]["arch"], "arm64");
    assert!(
        config["config"]["Labels"]["built.for"]
            .as_str()
            .unwrap()
            .starts_with("linux/arm64"),
        "{}",
        config["config"]["Labels"]
    );
}

#[test]
fn secret_content_changes_the_run_key_but_never_appears_in_events() {
    let dockerfile =
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok\n";
    let run_key = |value: &str| -> String {
        let fx = Fixture::new(dockerfile, &[]);
        let secret = fx.work.path().join("tok");
        fs_err::write(&secret, value).unwrap();
        let mut options = fx.options();
        options
            .secrets
            .insert("tok".into(), kiln_build::SecretSource::File(secret));
        let recorder = Recorder::default();
        run_tokio(kiln_build::build(&options, &recorder)).unwrap();
        let events = recorder.0.lock().unwrap();
        assert!(
            !format!("{events:?}").contains(value),
            "the secret value appeared in an event"
        );
        events
            .iter()
            .filter_map(|e| match e {
                kiln_build::BuildEvent::StepKey { id, key } if id.step == 3 => Some(key.clone()),
                _ => None,
            })
            .next_back()
            .unwrap()
    };
    assert_ne!(
        run_key("first-secret-value"),
        run_key("second-secret-value")
    );
}

#[test]
fn bind_mount_content_changes_the_run_key() {
    let dockerfile = "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=bind,source=src,target=/src cat /src/input > /out\n";
    let run_key = |content: &str| -> String {
        let fx = Fixture::new(dockerfile, &[("src/input", content)]);
        let recorder = Recorder::default();
        run_tokio(kiln_build::build(&fx.options(), &recorder)).unwrap();
        let events = recorder.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                kiln_build::BuildEvent::StepKey { id, key } if id.step == 3 => Some(key.clone()),
                _ => None,
            })
            .next_back()
            .unwrap()
    };
    let a = run_key("one\n");
    assert_eq!(a, run_key("one\n"));
    assert_ne!(a, run_key("two\n"));
}

/// Docker bind-mounts a single file too (found by the buildah conformance run).
#[test]
fn bind_mount_of_a_single_file_from_the_context() {
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=bind,source=input.txt,target=/in.txt cp /in.txt /out\n",
        &[("input.txt", "single file\n")],
    );
    let (options, _) = fx.layout_options();
    let unpacked = fx.build_and_unpack(&options);
    let bundle = &unpacked.bundle;
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/out")).unwrap(),
        "single file\n"
    );
    assert!(
        !bundle.join("rootfs/in.txt").exists(),
        "the mount target must not be left in the image"
    );
}

#[test]
fn secret_as_environment_variable_only_for_the_command() {
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=secret,id=tok,env=TOKEN sh -c 'printf %s \"$TOKEN\" | sha256sum | cut -c1-64 > /h'\nRUN env > /env-after\n",
        &[],
    );
    let secret = fx.work.path().join("tok");
    fs_err::write(&secret, "env-secret-value").unwrap();
    let (mut options, _) = fx.layout_options();
    options
        .secrets
        .insert("tok".into(), kiln_build::SecretSource::File(secret));
    let unpacked = fx.build_and_unpack(&options);
    let bundle = &unpacked.bundle;
    let expected = kiln_oci::Digest::sha256_of(b"env-secret-value");
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/h")).unwrap(),
        format!("{}\n", expected.hex())
    );
    let later = fs_err::read_to_string(bundle.join("rootfs/env-after")).unwrap();
    assert!(
        !later.contains("TOKEN"),
        "the variable outlived its RUN: {later}"
    );
}

#[test]
fn base_images_from_an_oci_layout_cache_dir_need_no_registry() {
    let cache = tempfile::tempdir().unwrap();
    kiln_testkit::FixtureImage::busybox().write_oci_layout(cache.path(), "example.invalid/base:1");
    let fx = Fixture::new(
        "FROM example.invalid/base:1\nRUN echo offline > /o.txt\n",
        &[],
    );
    let layout = fx.work.path().join("layout");
    let mut options = fx.options();
    options.cache.dir = Some(cache.path().to_path_buf());
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&layout, "latest", unpacked.path());
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/o.txt")).unwrap(),
        "offline\n"
    );
}

#[test]
fn a_base_warmed_for_another_platform_is_not_used() {
    let cache = tempfile::tempdir().unwrap();
    // A registry that refuses connections: the base must be pulled from it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("127.0.0.1:{port}/base:1");
    kiln_testkit::FixtureImage::busybox().write_oci_layout(cache.path(), &name);
    let fx = Fixture::new(&format!("FROM {name}\nRUN true\n"), &[]);
    let mut options = fx.options();
    options.cache.dir = Some(cache.path().to_path_buf());
    options.registry.insecure_pull = true;
    let other = if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    options.custom_platform = Some(other.into());
    let err = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[test]
fn owners_of_copied_files_and_workdirs_follow_buildkit() {
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\n\
         RUN echo 'app:x:1000:100::/home/app:/bin/sh' >> /etc/passwd\n\
         COPY --chown=1000 a.txt /a.txt\n\
         COPY --chown=app a.txt /b.txt\n\
         USER 9999\nWORKDIR /w\n\
         USER app\nWORKDIR /x\n\
         USER ghost\nWORKDIR /y\nUSER root\n",
        &[("a.txt", "a\n")],
    );
    let (options, layout) = fx.layout_options();
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let rootfs = umoci_unpack(&layout, "latest", unpacked.path()).join("rootfs");
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &str| {
        let m = fs_err::symlink_metadata(rootfs.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("a.txt"), (1000, 1000), "a bare uid is also the gid");
    assert_eq!(owner("b.txt"), (1000, 100), "a name takes its passwd group");
    assert_eq!(owner("w"), (9999, 9999));
    assert_eq!(owner("x"), (1000, 100));
    assert_eq!(
        owner("y"),
        (0, 0),
        "a user not in /etc/passwd: root, as BuildKit"
    );
}

#[test]
fn copy_from_keeps_hard_links() {
    let fx = Fixture::new(
        "FROM scratch AS b\nADD rootfs.tar /\nRUN mkdir /d && echo x > /d/a && ln /d/a /d/b\n\nFROM scratch\nCOPY --from=b /d /d\n",
        &[],
    );
    let (options, _) = fx.layout_options();
    let unpacked = fx.build_and_unpack(&options);
    let bundle = &unpacked.bundle;
    use std::os::unix::fs::MetadataExt;
    let a = fs_err::metadata(bundle.join("rootfs/d/a")).unwrap();
    let b = fs_err::metadata(bundle.join("rootfs/d/b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "d/a and d/b are one file");
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/d/b")).unwrap(),
        "x\n"
    );
}

#[test]
fn docker_format_base_healthcheck_shell_and_name_digest_file() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:oci", None)
        .unwrap();
    let host = registry.host_port();
    // The same image in Docker schema 2, converted by skopeo.
    let out = std::process::Command::new(support::tool("/usr/bin/skopeo"))
        .args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{host}/fixtures/busybox:oci"))
        .arg(format!("docker://{host}/fixtures/busybox:docker"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fx = Fixture::new(
        &format!(
            "FROM {host}/fixtures/busybox:docker\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nSTOPSIGNAL SIGTERM\n"
        ),
        &[],
    );
    let layout = fx.work.path().join("layout");
    let names = fx.work.path().join("names");
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.registry.insecure_pull = true;
    options.destinations = vec![format!("{host}/kiln/hc:1"), format!("{host}/kiln/hc:2")];
    options.image_name_with_digest_file = Some(names.clone());
    options.oci_layout_path = Some(layout.clone());
    let recorder = Recorder::default();
    let outcome = run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    assert_eq!(
        recorder.run_lines(),
        vec!["/bin/sh".to_string()],
        "RUN used SHELL"
    );
    assert_eq!(
        outcome.media_type, "application/vnd.docker.distribution.manifest.v2+json",
        "the manifest format follows the base"
    );
    assert!(
        outcome
            .layers
            .iter()
            .all(|l| l.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip")
    );
    assert_eq!(
        fs_err::read_to_string(&names).unwrap(),
        format!("{host}/kiln/hc@{0}\n{host}/kiln/hc@{0}\n", outcome.digest)
    );
    let (_, config) = layout_documents(&layout);
    let c = &config["config"];
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["StopSignal"], "SIGTERM");
}
