//! Round trips against a plain-HTTP docker-registry: monolithic and chunked uploads,
//! skipping existing blobs, several tags and repositories, cross-repository mounts,
//! and skopeo reading what kiln pushed.

mod common;

use common::*;
use kiln_registry::{BlobToPush, Client, ManifestRef, RepoRef};
use kiln_testkit::Registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_back_byte_for_byte_and_skopeo_reads_it() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[64 * 1024, 300 * 1024, 10], 1, "amd64");
    let client = plain_client(&host);

    let out = client
        .push_image(
            &img.image,
            &[
                target(&host, "kiln/app", "v1"),
                target(&host, "kiln/app", "latest"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.digest, img.digest);
    assert_eq!((out.uploaded, out.existing, out.mounted), (4, 0, 0));
    assert_eq!(
        out.pushed,
        vec![
            format!("{host}/kiln/app:v1"),
            format!("{host}/kiln/app:latest")
        ]
    );

    let repo = RepoRef::new(&host, "kiln/app");
    assert_pulls_back(&client, &repo, "v1", &img, dir.path()).await;
    assert_pulls_back(&client, &repo, "latest", &img, dir.path()).await;

    // An independent client reads exactly what kiln pushed.
    let raw = skopeo_inspect(
        &format!("{host}/kiln/app:v1"),
        false,
        &["--tls-verify=false"],
    );
    assert_eq!(raw, img.image.manifest.to_vec());
    let config = skopeo_inspect(
        &format!("{host}/kiln/app:latest"),
        true,
        &["--tls-verify=false"],
    );
    assert_eq!(config, img.config);

    // The same through image references, as the engine uses them.
    let reference = kiln_oci::Reference::parse(&format!("{host}/kiln/app:byref")).unwrap();
    client
        .push_image(&img.image, &[kiln_registry::PushTarget::from(&reference)])
        .await
        .unwrap();
    let by_digest = kiln_oci::Reference::parse(&format!("{host}/kiln/app@{}", img.digest)).unwrap();
    let pulled = client
        .pull_image(&by_digest, &kiln_oci::Platform::new("linux", "amd64"))
        .await
        .unwrap();
    assert_eq!(&pulled.manifest_bytes[..], &img.image.manifest[..]);

    // Pushing again uploads nothing.
    let again = client
        .push_image(&img.image, &[target(&host, "kiln/app", "v2")])
        .await
        .unwrap();
    assert_eq!((again.uploaded, again.existing, again.mounted), (0, 4, 0));
    let head = client
        .head_manifest(&repo, &ManifestRef::Tag("v2".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, img.digest);
    assert!(
        client
            .head_manifest(&repo, &ManifestRef::Tag("nope".into()))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_of_a_few_megabytes() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(
        dir.path(),
        &[3 * 1024 * 1024 + 12345, 1024 * 1024],
        2,
        "amd64",
    );
    let mut opts = options(&host, true, None, None);
    opts.chunk_size = Some(1024 * 1024);
    opts.max_parallel_uploads = 2;
    let client = Client::new(opts);
    let out = client
        .push_image(&img.image, &[target(&host, "chunked", "t")])
        .await
        .unwrap();
    assert_eq!(out.uploaded, 3);
    // Pull with a fresh client: nothing cached.
    assert_pulls_back(
        &plain_client(&host),
        &RepoRef::new(&host, "chunked"),
        "t",
        &img,
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mounts() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[2048, 4096], 3, "amd64");
    let client = plain_client(&host);

    // Two repositories in one push: the second mounts from the first.
    let out = client
        .push_image(
            &img.image,
            &[target(&host, "first", "a"), target(&host, "second", "b")],
        )
        .await
        .unwrap();
    assert_eq!((out.uploaded, out.mounted, out.existing), (3, 3, 0));

    // A blob hint from a base repository.
    let mut image = img.image.clone();
    image.blobs = image
        .blobs
        .into_iter()
        .map(|b| BlobToPush {
            mount_from: Some(RepoRef::new(&host, "first")),
            ..b
        })
        .collect();
    let out = client
        .push_image(&image, &[target(&host, "third", "c")])
        .await
        .unwrap();
    assert_eq!((out.uploaded, out.mounted), (0, 3));
    let layer = &img.layers[0].0.digest;
    assert!(
        client
            .blob_exists(&RepoRef::new(&host, "third"), layer)
            .await
            .unwrap()
    );
    assert!(
        !client
            .blob_exists(&RepoRef::new(&host, "fourth"), layer)
            .await
            .unwrap()
    );
    assert!(
        client
            .mount_blob(
                &RepoRef::new(&host, "fourth"),
                layer,
                &RepoRef::new(&host, "third")
            )
            .await
            .unwrap()
    );
    assert!(
        client
            .blob_exists(&RepoRef::new(&host, "fourth"), layer)
            .await
            .unwrap()
    );
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "third"),
        "c",
        &img,
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_status_code_and_context() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let client = plain_client(&host);
    let err = client
        .pull_manifest(
            &RepoRef::new(&host, "missing/repo"),
            &ManifestRef::Tag("x".into()),
            &kiln_oci::Platform::new("linux", "amd64"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.codes().contains(&"MANIFEST_UNKNOWN") || err.codes().contains(&"NAME_UNKNOWN"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("pulling manifest")
            && text.contains(&host)
            && text.contains("missing/repo")
            && text.contains("404"),
        "{text}"
    );

    // A manifest referencing a blob that is not there: MANIFEST_BLOB_UNKNOWN / BLOB_UNKNOWN.
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(dir.path(), &[100], 4, "amd64");
    let err = client
        .push_manifest(
            &RepoRef::new(&host, "broken"),
            &ManifestRef::Tag("t".into()),
            &img.image.manifest,
            &img.image.media_type,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.codes().iter().any(|c| c.contains("BLOB_UNKNOWN")),
        "{err}"
    );
}
