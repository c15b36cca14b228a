//! kiln against buildah (the reference builder on this test bed): the same
//! Dockerfile and context, both images unpacked with umoci, file trees and
//! configs compared. Only buildah's own artifacts (TESTBED.md) are filtered.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{
    Fixture, LinkGroups, assert_same_tree, file_tree, run_tokio, umoci_unpack,
    without_buildah_artifacts,
};

fn config_view(config: &Value) -> Value {
    let c = &config["config"];
    let mut labels = c["Labels"].clone();
    if let Some(map) = labels.as_object_mut() {
        map.remove("io.buildah.version");
        if map.is_empty() {
            labels = Value::Null;
        }
    }
    // Env as a set: BuildKit replaces an existing variable in place (kiln
    // does too), buildah moves it to the end: buildah's deviation from Docker.
    let mut env: Vec<String> = c["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    env.sort();
    serde_json::json!({
        "Env": env, "Cmd": c["Cmd"], "Entrypoint": c["Entrypoint"],
        "WorkingDir": c["WorkingDir"], "User": c["User"], "ExposedPorts": c["ExposedPorts"],
        "Volumes": c["Volumes"], "Labels": labels, "StopSignal": c["StopSignal"],
    })
}

fn layout_config(layout: &Path) -> Value {
    support::layout_documents(layout).1
}

fn compare(dockerfile_body: &str, files: &[(&str, &str)]) {
    compare_in(dockerfile_body, files, None);
}

/// Builds `dockerfile_body` (BASE_IMAGE replaced by the busybox fixture) with
/// both builders; the context is a fixture with `files`, or `context` as is.
fn compare_in(dockerfile_body: &str, files: &[(&str, &str)], context: Option<&Path>) {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let dockerfile = dockerfile_body.replace("BASE_IMAGE", &base);
    let fx = Fixture::new(&dockerfile, files);
    let dockerfile_path = fx.path().join("Dockerfile");
    let context_dir = context.map_or_else(|| fx.path().to_path_buf(), Path::to_path_buf);

    // kiln
    let kiln_layout = fx.work.path().join("kiln-layout");
    let mut options = fx.options();
    options.context = kiln_build::ContextSource::Dir(context_dir.clone());
    options.dockerfile = kiln_build::DockerfileSource::Path(dockerfile_path.clone());
    options.registry.insecure_pull = true;
    options.oci_layout_path = Some(kiln_layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    // buildah
    let root = fx.work.path().join("buildah");
    let buildah = |args: &[&str]| {
        support::buildah(&root, "vfs", args);
    };
    let context = context_dir.display().to_string();
    let dockerfile_arg = dockerfile_path.display().to_string();
    buildah(&[
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "--format",
        "oci",
        "--tls-verify=false",
        "-f",
        &dockerfile_arg,
        "-t",
        "localhost/compare:1",
        &context,
    ]);
    let buildah_layout = fx.work.path().join("buildah-layout");
    buildah(&[
        "push",
        "localhost/compare:1",
        &format!("oci:{}:latest", buildah_layout.display()),
    ]);

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // buildah's artifacts are empty directories/files; the same paths are
    // filtered on both sides (the busybox base has /dev, /proc and /sys too).
    let unpacked = |layout: &Path, into: &Path| {
        let rootfs = umoci_unpack(layout, "latest", into).join("rootfs");
        without_buildah_artifacts(file_tree(&rootfs, LinkGroups::Ignore))
    };
    let kiln_tree = unpacked(&kiln_layout, a.path());
    let buildah_tree = unpacked(&buildah_layout, b.path());
    assert_same_tree(&kiln_tree, &buildah_tree);
    assert_eq!(
        config_view(&layout_config(&kiln_layout)),
        config_view(&layout_config(&buildah_layout)),
        "configs differ"
    );
}

#[test]
fn same_tree_and_config_as_buildah_single_stage() {
    compare(
        r#"FROM BASE_IMAGE
ENV APP_HOME=/srv/app PATH=/srv/app/bin:/usr/bin:/bin
WORKDIR $APP_HOME
COPY conf/ ./conf/
COPY --chown=user:user notes.txt /home/user/
COPY --chmod=0755 tool.sh bin/tool
RUN mkdir -p data && echo built > data/out.txt && ln -s data/out.txt latest && chmod 0640 data/out.txt
RUN rm /bin/vi
EXPOSE 8080/udp 9090
VOLUME /srv/app/data
LABEL org.example.name="compare test"
USER user
STOPSIGNAL SIGINT
ENTRYPOINT ["/srv/app/bin/tool"]
CMD ["--help"]
"#,
        &[
            ("conf/a.conf", "a=1\n"),
            ("conf/sub/b.conf", "b=2\n"),
            ("notes.txt", "notes\n"),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
        ],
    );
}

#[test]
fn same_tree_and_config_as_buildah_multi_stage() {
    compare(
        r#"FROM BASE_IMAGE AS builder
ARG VERSION=1.2.3
RUN mkdir /out && echo "version $VERSION" > /out/version && touch /out/empty
COPY src /src

FROM BASE_IMAGE
COPY --from=builder /out/ /opt/app/
COPY --from=builder --chown=1000:1000 /src /opt/src
WORKDIR /opt/app
CMD cat version
"#,
        &[
            ("src/main.c", "int main(){}\n"),
            ("src/lib/util.h", "#pragma once\n"),
        ],
    );
}

/// kaniko corpus Dockerfiles with the corpus context (and its .dockerignore).
#[test]
fn same_tree_and_config_as_buildah_on_kaniko_corpus_files() {
    let corpus = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
        .join("kaniko-dockerfiles/integration");
    assert!(
        corpus.is_dir(),
        "needs the conformance data at {}",
        corpus.display()
    );
    // Not comparable: test_copy (buildah 1.28 cannot copy `arr[0].txt` through
    // globs); test_volume (buildah discards writes into a declared VOLUME like
    // Docker's legacy builder, BuildKit and kiln keep them, as the Dockerfile
    // reference documents); test_expose (buildah drops `EXPOSE $port/$protocol`
    // = 83/tcp after 83/udp; Docker, kaniko and kiln keep both).
    for name in [
        "Dockerfile_test_env",
        "Dockerfile_test_label",
        "Dockerfile_test_run_2",
        "Dockerfile_test_metadata",
    ] {
        let text = fs_err::read_to_string(corpus.join("dockerfiles").join(name)).unwrap();
        let body: String = text
            .lines()
            .map(|l| {
                if l.to_ascii_uppercase().starts_with("FROM ") {
                    "FROM BASE_IMAGE".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("comparing {name}");
        compare_in(&body, &[], Some(&corpus));
    }
}
