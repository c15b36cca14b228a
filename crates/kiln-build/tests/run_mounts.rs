//! RUN --mount targets and cache mount sharing, checked in the layers kiln
//! writes.
//!
//! Mount targets missing from the stage root: BuildKit (since v0.11,
//! `executor/stubs.go`, `RemoveMountStubsRecursive` set by the Dockerfile
//! frontend) creates them for the run, then removes every stub it created
//! that is still empty, deepest first, restoring the parent's timestamps; a
//! stub the command put something in stays, with runc's mode 0755; an
//! existing target is never removed. kiln does the same (buildah 1.28 leaves
//! the stubs, which is its deviation).

mod support;

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;
use support::{Fixture, run_tokio};

/// One entry of a layer tar: (mode, uid, gid, kind).
type LayerEntry = (u32, u64, u64, char);

/// The entries of every layer of the layout's image, in manifest order.
fn layers(layout: &std::path::Path) -> Vec<BTreeMap<String, LayerEntry>> {
    let blob = |d: &str| {
        fs_err::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let compressed = blob(layer["digest"].as_str().unwrap());
            let mut tar_bytes = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..])
                .read_to_end(&mut tar_bytes)
                .unwrap();
            let mut archive = tar::Archive::new(&tar_bytes[..]);
            archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    let kind = match h.entry_type() {
                        tar::EntryType::Directory => 'd',
                        tar::EntryType::Regular => 'f',
                        tar::EntryType::Symlink => 'l',
                        _ => '?',
                    };
                    (
                        e.path().unwrap().display().to_string(),
                        (
                            h.mode().unwrap() & 0o7777,
                            h.uid().unwrap(),
                            h.gid().unwrap(),
                            kind,
                        ),
                    )
                })
                .collect()
        })
        .collect()
}

/// Builds the fixture into an OCI layout and returns its layers' entries.
fn build_layers(
    fx: &Fixture,
    options: kiln_build::BuildOptions,
) -> Vec<BTreeMap<String, LayerEntry>> {
    let layout = fx.work.path().join("layout");
    let mut options = options;
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    layers(&layout)
}

#[test]
fn missing_mount_targets_are_removed_unless_the_command_filled_them() {
    let fx = Fixture::new(
        concat!(
            "FROM scratch\n",
            "ADD rootfs.tar /\n",
            "RUN mkdir -p /test/qux /test/deep\n",
            "RUN --mount=type=tmpfs,target=/test/foo",
            " --mount=type=cache,target=/test/bar/x/y",
            " --mount=type=bind,source=in.txt,target=/test/baz/x",
            " --mount=type=secret,id=tok,target=/test/sec/tok",
            " --mount=type=tmpfs,target=/test/qux",
            " touch /test/baz/keep\n",
            "RUN --mount=type=bind,source=in.txt,target=/mnt/input.txt",
            " --mount=type=cache,target=/test/deep/cache",
            " cp /mnt/input.txt /copy.txt\n",
        ),
        &[("in.txt", "input\n"), ("tok.txt", "secret\n")],
    );
    let mut options = fx.options();
    options.secrets.insert(
        "tok".into(),
        kiln_build::SecretSource::File(fx.path().join("tok.txt")),
    );
    let layers = build_layers(&fx, options);
    // rootfs, mkdir, the two RUNs with mounts.
    assert_eq!(layers.len(), 4, "{layers:#?}");

    let under_test: BTreeMap<&str, LayerEntry> = layers[2]
        .iter()
        .filter(|(p, _)| p.starts_with("test/"))
        .map(|(p, e)| (p.as_str(), *e))
        .collect();
    // The stub the command filled stays, as runc made it (0755, root); its parent
    // changed because of it. Every other stub is gone, recursively (bar/x/y, sec/tok,
    // foo, baz/x); the existing /test/qux is not touched.
    assert_eq!(
        under_test,
        BTreeMap::from([
            ("test/", (0o755, 0, 0, 'd')),
            ("test/baz/", (0o755, 0, 0, 'd')),
            ("test/baz/keep", (0o644, 0, 0, 'f')),
        ]),
        "layer of the RUN with mounts: {:#?}",
        layers[2]
    );

    // Nested stubs under a missing /mnt and an existing dir: the layer has the
    // command's file only, neither /mnt nor /test/deep/cache.
    let paths: Vec<&str> = layers[3].keys().map(String::as_str).collect();
    assert_eq!(paths, vec!["copy.txt"], "{:#?}", layers[3]);
}
