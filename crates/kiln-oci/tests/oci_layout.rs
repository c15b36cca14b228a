//! OCI image layout: written by kiln and checked with skopeo and umoci; written by
//! skopeo and read by kiln.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::{skopeo, test_image, tree};
use kiln_oci::{
    Digest, Index, LayoutError, MediaType, OciLayout, OciLayoutWriter, Platform, canonical_json,
};

fn write_test_layout(
    dir: &Path,
    ref_name: &str,
    label: &str,
) -> (kiln_oci::Descriptor, common::TestImage) {
    let image = test_image(label);
    let mut writer = OciLayoutWriter::create(dir).unwrap();
    writer.write_bytes(&image.config_bytes).unwrap();
    for layer in &image.layers {
        writer
            .write_blob_expecting(layer.blob.as_slice(), &layer.descriptor)
            .unwrap();
    }
    let descriptor = writer
        .add_image(&image.manifest, Some(ref_name), None)
        .unwrap();
    writer.finish().unwrap();
    (descriptor, image)
}

#[test]
fn skopeo_inspect_accepts_our_layout_and_reports_our_digest() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let (descriptor, image) = write_test_layout(&dir, "v1", "a");
    let target = format!("oci:{}:v1", dir.display());

    let inspect: serde_json::Value =
        serde_json::from_slice(&skopeo(work.path(), &["inspect", &target])).unwrap();
    assert_eq!(inspect["Digest"], descriptor.digest.to_string());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Labels"]["test.label"], "a");
    let layers: Vec<String> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let ours: Vec<String> = image
        .layers
        .iter()
        .map(|l| l.descriptor.digest.to_string())
        .collect();
    assert_eq!(layers, ours);

    let raw_manifest = skopeo(work.path(), &["inspect", "--raw", &target]);
    assert_eq!(Digest::sha256_of(&raw_manifest), descriptor.digest);
    let raw_config = skopeo(work.path(), &["inspect", "--config", "--raw", &target]);
    assert_eq!(raw_config, image.config_bytes);
}

#[test]
fn umoci_unpacks_our_layout_with_our_files() {
    if !Path::new("/usr/bin/umoci").exists() {
        panic!("needs umoci at /usr/bin/umoci: install with .ci/install-deps");
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    write_test_layout(&dir, "v1", "a");
    let bundle = work.path().join("bundle");
    let output = Command::new("/usr/bin/umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", dir.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("etc/hello.txt")).unwrap(),
        b"hello from kiln\n"
    );
    assert_eq!(
        std::fs::read(rootfs.join("srv/data/file.bin")).unwrap(),
        vec![7u8; 5000]
    );
}

#[test]
fn same_image_written_twice_is_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    let (first_descriptor, _) = write_test_layout(&work.path().join("one"), "v1", "same");
    let (second_descriptor, _) = write_test_layout(&work.path().join("two"), "v1", "same");
    assert_eq!(first_descriptor, second_descriptor);
    let first = tree(&work.path().join("one"));
    let second = tree(&work.path().join("two"));
    assert_eq!(
        first.len(),
        2 + 1 + 2 + 1,
        "oci-layout, index.json, config, 2 layers, manifest"
    );
    assert_eq!(first, second);
    // A different label is a different config, hence a different manifest.
    let (third_descriptor, _) = write_test_layout(&work.path().join("three"), "v1", "other");
    assert_ne!(first_descriptor.digest, third_descriptor.digest);
}

#[test]
fn reads_back_what_we_wrote_and_verifies_every_blob() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let (descriptor, image) = write_test_layout(&dir, "v1", "a");
    let layout = OciLayout::open(&dir).unwrap();
    assert_eq!(layout.ref_names(), ["v1"]);
    let resolved = layout.image(Some("v1"), None).unwrap();
    assert_eq!(resolved.descriptor, {
        let mut d = descriptor.clone();
        d.set_annotation(kiln_oci::ANNOTATION_REF_NAME, "v1");
        d
    });
    assert_eq!(resolved.config, image.config);
    assert_eq!(resolved.config_bytes, image.config_bytes);
    let total: u64 = image.layers.iter().map(|l| l.descriptor.size).sum();
    assert_eq!(layout.verify_layers(&resolved).unwrap(), total);
    let mut layer = Vec::new();
    layout
        .open_blob(&resolved.manifest.layers[0])
        .unwrap()
        .read_to_end(&mut layer)
        .unwrap();
    assert!(
        layer == image.layers[0].tar,
        "layer content read back differs"
    );
}

#[test]
fn tampered_or_missing_blobs_and_unknown_names_are_reported() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let (_, image) = write_test_layout(&dir, "v1", "a");
    let layout = OciLayout::open(&dir).unwrap();

    let error = layout.image(Some("v2"), None).unwrap_err();
    assert!(matches!(error, LayoutError::RefNotFound { .. }));
    assert!(
        error.to_string().contains("names present: [\"v1\"]"),
        "{error}"
    );

    // Flip one byte of the gzip layer: same size, different digest.
    let victim = layout.blob_path(&image.layers[1].descriptor);
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let resolved = layout.image(Some("v1"), None).unwrap();
    let error = layout.verify_layers(&resolved).unwrap_err().to_string();
    assert!(error.contains("does not match its digest"), "{error}");

    std::fs::remove_file(layout.blob_path(&image.config_descriptor)).unwrap();
    let error = layout.image(Some("v1"), None).unwrap_err();
    assert!(matches!(error, LayoutError::MissingBlob { .. }), "{error}");

    let writer = OciLayoutWriter::create(work.path().join("other")).unwrap();
    let error = writer.write_manifest(&image.manifest).unwrap_err();
    assert!(
        error.to_string().contains("is not in the layout"),
        "{error}"
    );
    let error = writer
        .write_blob_expecting(&b"not the layer"[..], &image.layers[0].descriptor)
        .unwrap_err();
    assert!(
        error.to_string().contains("does not match its descriptor"),
        "{error}"
    );
    assert!(
        !writer
            .blob_path(&Digest::sha256_of(b"not the layer"))
            .exists()
    );

    let error = OciLayout::open(work.path()).unwrap_err().to_string();
    assert!(error.contains("is not an OCI image layout"), "{error}");
}

#[test]
fn names_move_to_the_newest_image_and_other_images_stay() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    write_test_layout(&dir, "v1", "a");
    write_test_layout(&dir, "v2", "b");
    let (newest, _) = write_test_layout(&dir, "v1", "c");
    let layout = OciLayout::open(&dir).unwrap();
    let mut names = layout.ref_names();
    names.sort();
    assert_eq!(names, ["v1", "v2"]);
    assert_eq!(layout.entry(Some("v1")).unwrap().digest, newest.digest);
    let error = layout.entry(None).unwrap_err().to_string();
    assert!(error.contains("holds 2 images"), "{error}");
}

#[test]
fn multi_platform_index_resolves_by_platform_and_skopeo_picks_the_same() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let mut writer = OciLayoutWriter::create(&dir).unwrap();
    let mut entries = Vec::new();
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let platform: Platform = platform.parse().unwrap();
        let image = test_image(&platform.to_string());
        let mut config = image.config.clone();
        config.architecture = platform.architecture.clone();
        config.variant = platform.variant.clone();
        let (config_descriptor, config_bytes) = config.to_blob(MediaType::OciConfig).unwrap();
        writer.write_bytes(&config_bytes).unwrap();
        for layer in &image.layers {
            writer.write_blob(layer.blob.as_slice()).unwrap();
        }
        let mut manifest = image.manifest.clone();
        manifest.config = config_descriptor;
        let mut descriptor = writer.write_manifest(&manifest).unwrap();
        descriptor.platform = Some(platform);
        entries.push(descriptor);
    }
    let index = Index::new_oci(entries.clone());
    let index_descriptor = writer.write_index(&index).unwrap();
    writer
        .add_to_index(index_descriptor.clone(), Some("multi"))
        .unwrap();
    writer.finish().unwrap();

    let layout = OciLayout::open(&dir).unwrap();
    let arm = layout
        .image(Some("multi"), Some(&"linux/aarch64".parse().unwrap()))
        .unwrap();
    assert_eq!(arm.descriptor.digest, entries[1].digest);
    assert_eq!(arm.config.architecture, "arm64");
    let error = layout.image(Some("multi"), None).unwrap_err().to_string();
    assert!(error.contains("linux/amd64, linux/arm64/v8"), "{error}");
    let error = layout
        .image(Some("multi"), Some(&"linux/s390x".parse().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no manifest for platform linux/s390x"),
        "{error}"
    );

    let target = format!("oci:{}:multi", dir.display());
    let inspect: serde_json::Value = serde_json::from_slice(&skopeo(
        work.path(),
        &["--override-arch", "arm64", "inspect", &target],
    ))
    .unwrap();
    // skopeo reports the digest of what the name points at (the index) and the
    // config of the platform it selected.
    assert_eq!(inspect["Digest"], index_descriptor.digest.to_string());
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(inspect["Labels"]["test.label"], "linux/arm64/v8");
}

#[test]
fn reads_a_layout_written_by_skopeo_copy() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let (_, image) = write_test_layout(&source, "v1", "copied");
    let copy = work.path().join("copy");
    skopeo(
        work.path(),
        &[
            "copy",
            &format!("oci:{}:v1", source.display()),
            &format!("oci:{}:from-skopeo", copy.display()),
        ],
    );
    let layout = OciLayout::open(&copy).unwrap();
    let resolved = layout.image(Some("from-skopeo"), None).unwrap();
    assert_eq!(
        resolved.config.rootfs.diff_ids,
        image.config.rootfs.diff_ids
    );
    assert_eq!(resolved.config, image.config);
    assert_eq!(resolved.manifest.layers.len(), 2);
    layout.verify_layers(&resolved).unwrap();
    kiln_oci::validate_image(&resolved.manifest, &resolved.config).unwrap();
    // Our canonical writer reproduces skopeo's manifest bytes exactly.
    let stored = std::fs::read(layout.blob_path(&resolved.descriptor)).unwrap();
    assert_eq!(canonical_json::to_vec(&resolved.manifest).unwrap(), stored);
}
