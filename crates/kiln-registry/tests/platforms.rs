//! Multi-platform images: an index pushed by skopeo (`copy --all` from an OCI layout) is
//! resolved by kiln to the requested platform, variant-aware; no match lists what exists.
//! Also registry remaps with fallback control.

mod common;

use std::path::Path;

use common::*;
use kiln_oci::{Descriptor, Index, MediaType, Platform};
use kiln_registry::{ErrorKind, ManifestRef, RepoRef};
use kiln_testkit::Registry;

/// Writes an OCI layout at `layout` holding an index of `images` (platform, image) tagged `tag`.
fn write_multi_arch_layout(layout: &Path, images: &[(Platform, &TestImage)], tag: &str) -> Vec<u8> {
    let blobs = layout.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = kiln_oci::Digest::sha256_of(data);
        fs_err::write(blobs.join(d.hex()), data).unwrap();
    };
    let mut entries = Vec::new();
    for (platform, img) in images {
        put(&img.config);
        for (_, path) in &img.layers {
            put(&fs_err::read(path).unwrap());
        }
        put(&img.image.manifest);
        let mut d = Descriptor::for_bytes(MediaType::OciManifest, &img.image.manifest);
        d.platform = Some(platform.clone());
        entries.push(d);
    }
    let (index_desc, index_bytes) = Index::new_oci(entries).to_blob().unwrap();
    put(&index_bytes);
    let mut top = index_desc;
    top.set_annotation("org.opencontainers.image.ref.name", tag);
    fs_err::write(
        layout.join("index.json"),
        serde_json::to_vec(&Index::new_oci(vec![top])).unwrap(),
    )
    .unwrap();
    fs_err::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    index_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushed_index_resolves_per_platform() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let amd = test_image(dir.path(), &[3000, 4000], 40, "amd64");
    let arm7 = test_image(dir.path(), &[5000], 41, "arm");
    let arm64 = test_image(dir.path(), &[6000], 42, "arm64");
    let layout = dir.path().join("layout");
    let index_bytes = write_multi_arch_layout(
        &layout,
        &[
            (Platform::new("linux", "amd64"), &amd),
            (Platform::new("linux", "arm").with_variant("v7"), &arm7),
            (Platform::new("linux", "arm64").with_variant("v8"), &arm64),
        ],
        "multi",
    );
    let status = std::process::Command::new(kiln_testkit::tools::skopeo())
        .args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{host}/multi/app:latest"))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy --all failed");

    let client = plain_client(&host);
    let repo = RepoRef::new(&host, "multi/app");
    let latest = ManifestRef::Tag("latest".into());
    let (_, doc) = client.get_manifest(&repo, &latest).await.unwrap();
    assert_eq!(&doc.bytes[..], &index_bytes[..]);
    assert!(doc.media_type.is_index());

    let pulled = client
        .pull_manifest(&repo, &latest, &Platform::new("linux", "arm64"))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, arm64.digest);
    assert_eq!(
        pulled.index.as_ref().map(|d| d.digest.clone()),
        Some(doc.digest.clone())
    );
    assert_eq!(&pulled.config[..], &arm64.config[..]);
    // Variants count: arm/v7 gets the v7 image, arm/v6 cannot run it (below).
    let arm = client
        .pull_manifest(
            &repo,
            &latest,
            &Platform::new("linux", "arm").with_variant("v7"),
        )
        .await
        .unwrap();
    assert_eq!(arm.descriptor.digest, arm7.digest);
    assert_pulls_back(&client, &repo, "latest", &amd, dir.path()).await;

    let err = client
        .pull_manifest(&repo, &latest, &Platform::new("linux", "s390x"))
        .await
        .unwrap_err();
    match err.kind() {
        ErrorKind::NoMatchingPlatform { wanted, available } => {
            assert_eq!(wanted, "linux/s390x");
            assert_eq!(
                available,
                &vec![
                    "linux/amd64".to_string(),
                    "linux/arm/v7".into(),
                    "linux/arm64/v8".into()
                ]
            );
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
    assert!(err.to_string().contains("linux/arm/v7"), "{err}");
    let err = client
        .pull_manifest(
            &repo,
            &latest,
            &Platform::new("linux", "arm").with_variant("v6"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::NoMatchingPlatform { .. }),
        "{err}"
    );

    // kiln pushes an index itself: children by digest, then the index under a tag.
    let again = RepoRef::new(&host, "multi/kiln");
    for img in [&amd, &arm7, &arm64] {
        client
            .push_image(
                &img.image,
                &[kiln_registry::PushTarget {
                    repo: again.clone(),
                    reference: ManifestRef::Digest(img.digest.clone()),
                }],
            )
            .await
            .unwrap();
    }
    let d = client
        .push_manifest(
            &again,
            &latest,
            &bytes::Bytes::from(index_bytes.clone()),
            &MediaType::OciIndex,
        )
        .await
        .unwrap();
    assert_eq!(d, doc.digest);
    let raw = skopeo_inspect(
        &format!("{host}/multi/kiln:latest"),
        false,
        &["--tls-verify=false"],
    );
    assert_eq!(raw, index_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_maps_are_tried_in_order_with_fallback_control() {
    let mirror = Registry::start_plain();
    let origin = Registry::start_plain();
    let (m, o) = (mirror.host_port(), origin.host_port());
    let dir = tempfile::tempdir().unwrap();
    let on_mirror = test_image(dir.path(), &[1000], 50, "amd64");
    let on_origin = test_image(dir.path(), &[2000], 51, "amd64");
    plain_client(&m)
        .push_image(&on_mirror.image, &[target(&m, "cache/lib/app", "v1")])
        .await
        .unwrap();
    plain_client(&o)
        .push_image(&on_origin.image, &[target(&o, "lib/app", "v1")])
        .await
        .unwrap();
    plain_client(&o)
        .push_image(&on_origin.image, &[target(&o, "lib/only-origin", "v1")])
        .await
        .unwrap();

    let mut opts = options(&o, true, None, None);
    opts.insecure_registries.insert(m.clone());
    opts.registry_maps
        .insert(o.clone(), vec![format!("{m}/cache")]);
    let client = kiln_registry::Client::new(opts.clone());
    let amd64 = Platform::new("linux", "amd64");
    let v1 = ManifestRef::Tag("v1".into());

    // Found on the mirror (under its path prefix).
    let p = client
        .pull_manifest(&RepoRef::new(&o, "lib/app"), &v1, &amd64)
        .await
        .unwrap();
    assert_eq!(p.source, RepoRef::new(&m, "cache/lib/app"));
    assert_eq!(p.descriptor.digest, on_mirror.digest);
    // Missing on the mirror: falls back to the origin.
    let p = client
        .pull_manifest(&RepoRef::new(&o, "lib/only-origin"), &v1, &amd64)
        .await
        .unwrap();
    assert_eq!(p.source, RepoRef::new(&o, "lib/only-origin"));
    assert_eq!(p.descriptor.digest, on_origin.digest);
    let blob = &on_origin.layers[0].0;
    client
        .fetch_blob(&p.source, blob, &dir.path().join("b"))
        .await
        .unwrap();

    // No fallback: the error says what every source answered.
    opts.skip_default_registry_fallback = true;
    let strict = kiln_registry::Client::new(opts);
    let err = strict
        .pull_manifest(&RepoRef::new(&o, "lib/only-origin"), &v1, &amd64)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(&m), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_v2s2_image_pushed_by_skopeo_is_pulled_byte_for_byte() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let fixture = kiln_testkit::FixtureImage::busybox();
    let layout = dir.path().join("busybox");
    fixture.write_oci_layout(&layout, "bb");
    let status = std::process::Command::new(kiln_testkit::tools::skopeo())
        .args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:bb", layout.display()))
        .arg(format!("docker://{host}/docker/busybox:1"))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy --format v2s2 failed");

    let client = plain_client(&host);
    let repo = RepoRef::new(&host, "docker/busybox");
    let pulled = client
        .pull_manifest(&repo, &ManifestRef::Tag("1".into()), &Platform::host())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.media_type, MediaType::DockerManifest);
    assert_eq!(pulled.manifest.config.media_type, MediaType::DockerConfig);
    let raw = skopeo_inspect(
        &format!("{host}/docker/busybox:1"),
        false,
        &["--tls-verify=false"],
    );
    assert_eq!(&pulled.manifest_bytes[..], &raw[..]);
    assert_eq!(pulled.manifest.layers.len(), 1);
    let layer = &pulled.manifest.layers[0];
    assert_eq!(layer.media_type, MediaType::DockerLayerGzip);
    let dest = dir.path().join("layer.tar.gz");
    client
        .fetch_blob(&pulled.source, layer, &dest)
        .await
        .unwrap();
    assert_eq!(
        fs_err::read(&dest).unwrap(),
        fixture.layers[0].blob,
        "the layer differs from the fixture"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_images_come_from_the_registry_mirror() {
    let mirror = Registry::start_plain();
    let m = mirror.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[1500], 52, "amd64");
    plain_client(&m)
        .push_image(&img.image, &[target(&m, "library/app", "3")])
        .await
        .unwrap();

    // --registry-mirror M --skip-default-registry-fallback: docker.io is never contacted
    // (this machine has no route to it), the mirror serves `app:3`.
    let mut opts = options(&m, true, None, None);
    opts.mirrors = vec![m.clone()];
    opts.skip_default_registry_fallback = true;
    let client = kiln_registry::Client::new(opts);
    let reference = kiln_oci::Reference::parse("app:3").unwrap();
    assert_eq!(reference.registry(), "docker.io");
    let pulled = client
        .pull_image(&reference, &Platform::new("linux", "amd64"))
        .await
        .unwrap();
    assert_eq!(pulled.source, RepoRef::new(&m, "library/app"));
    assert_eq!(pulled.descriptor.digest, img.digest);
    let missing = kiln_oci::Reference::parse("busybox:none").unwrap();
    let err = client
        .pull_image(&missing, &Platform::new("linux", "amd64"))
        .await
        .unwrap_err();
    assert!(err.is_not_found() && err.to_string().contains(&m), "{err}");
}
