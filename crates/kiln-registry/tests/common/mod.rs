//! Shared helpers for the registry tests: clients for testkit registries, images made of
//! pseudo-random layers written to temp files, and checks.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kiln_auth::tls::SystemRoots;
use kiln_auth::{MapEnvironment, TlsConfigs, TlsOptions};
use kiln_oci::{Descriptor, Digest, Manifest, MediaType};
use kiln_registry::{
    Anonymous, AuthTls, BlobSource, BlobToPush, Client, Credential, CredentialProvider,
    ImageToPush, ManifestRef, PushTarget, RegistryOptions, RepoRef, RetryPolicy, StaticCredentials,
};

/// kiln-auth TLS for tests: no system roots, `ca` (a PEM file) trusted for `host`.
pub fn tls_for(host: &str, ca: Option<&Path>) -> AuthTls {
    let mut options = TlsOptions {
        system_roots: SystemRoots::Empty,
        ..TlsOptions::default()
    };
    if let Some(ca) = ca {
        options
            .registry_ca
            .insert(host.to_string(), ca.to_path_buf());
    }
    AuthTls::new(TlsConfigs::new(options, &MapEnvironment::new()).expect("TLS configs"))
}

/// Options for a testkit registry: plain HTTP allowed for `host` when `plain`, the CA
/// (PEM file) trusted when given, fast retries.
pub fn options(
    host: &str,
    plain: bool,
    ca: Option<&Path>,
    credential: Option<Credential>,
) -> RegistryOptions {
    let mut entries = std::collections::BTreeMap::new();
    if let Some(c) = credential {
        entries.insert(host.to_string(), c);
    }
    let credentials: Arc<dyn CredentialProvider> = Arc::new(StaticCredentials {
        entries,
        fallback: Anonymous,
    });
    let mut o = RegistryOptions::new(credentials, Arc::new(tls_for(host, ca)));
    if plain {
        o.insecure_registries.insert(host.to_string());
    }
    o.retry = RetryPolicy {
        max_attempts: 5,
        initial_backoff: std::time::Duration::from_millis(50),
        max_backoff: std::time::Duration::from_millis(400),
        max_retry_after: std::time::Duration::from_secs(2),
    };
    o
}

pub fn plain_client(host: &str) -> Client {
    Client::new(options(host, true, None, None))
}

/// An image whose layers are files in `dir`.
pub struct TestImage {
    pub image: ImageToPush,
    pub config: Vec<u8>,
    pub layers: Vec<(Descriptor, PathBuf)>,
    pub manifest: Manifest,
    pub digest: Digest,
}

/// Builds an image with layers of the given sizes (pseudo-random content) for
/// `architecture`, layers written to `dir`.
pub fn test_image(dir: &Path, sizes: &[usize], seed: u64, architecture: &str) -> TestImage {
    let mut layers = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = kiln_testkit::noise::bytes(*size, seed * 1000 + i as u64);
        let desc = Descriptor::for_bytes(MediaType::OciLayerGzip, &data);
        let path = dir.join(format!("layer-{seed}-{i}"));
        fs_err::write(&path, &data).unwrap();
        layers.push((desc, path));
    }
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.digest.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_desc = Descriptor::for_bytes(MediaType::OciConfig, &config);
    let manifest = Manifest::new_oci(
        config_desc.clone(),
        layers.iter().map(|(d, _)| d.clone()).collect(),
    );
    let (mdesc, mbytes) = manifest.to_blob().unwrap();
    let mut blobs = vec![BlobToPush {
        descriptor: config_desc,
        source: BlobSource::Bytes(Bytes::from(config.clone())),
        mount_from: None,
    }];
    blobs.extend(layers.iter().map(|(d, p)| BlobToPush {
        descriptor: d.clone(),
        source: BlobSource::File(p.clone()),
        mount_from: None,
    }));
    TestImage {
        image: ImageToPush {
            manifest: Bytes::from(mbytes),
            media_type: MediaType::OciManifest,
            blobs,
        },
        config,
        layers,
        manifest,
        digest: mdesc.digest,
    }
}

pub fn target(host: &str, repository: &str, tag: &str) -> PushTarget {
    PushTarget {
        repo: RepoRef::new(host, repository),
        reference: ManifestRef::Tag(tag.to_string()),
    }
}

/// Pulls `repo:tag` with `client` and checks manifest, config and every layer byte for
/// byte against `img`.
pub async fn assert_pulls_back(
    client: &Client,
    repo: &RepoRef,
    tag: &str,
    img: &TestImage,
    scratch: &Path,
) {
    let pulled = client
        .pull_manifest(
            repo,
            &ManifestRef::Tag(tag.to_string()),
            &kiln_oci::Platform::new("linux", "amd64"),
        )
        .await
        .unwrap_or_else(|e| panic!("pull {repo}:{tag}: {e}"));
    assert_eq!(&pulled.manifest_bytes[..], &img.image.manifest[..]);
    assert_eq!(pulled.descriptor.digest, img.digest);
    assert_eq!(&pulled.config[..], &img.config[..]);
    for (i, (desc, original)) in img.layers.iter().enumerate() {
        let dest = scratch.join(format!("pulled-{tag}-{i}"));
        client
            .fetch_blob(&pulled.source, desc, &dest)
            .await
            .unwrap_or_else(|e| panic!("fetch layer {i}: {e}"));
        assert_eq!(
            fs_err::read(&dest).unwrap(),
            fs_err::read(original).unwrap(),
            "layer {i} differs"
        );
    }
}

/// `skopeo inspect --raw` (or `--config --raw`) of `docker://REF`.
pub fn skopeo_inspect(reference: &str, config: bool, extra: &[&str]) -> Vec<u8> {
    let mut cmd = std::process::Command::new(kiln_testkit::tools::skopeo());
    cmd.arg("inspect").args(extra);
    if config {
        cmd.arg("--config");
    }
    cmd.arg("--raw").arg(format!("docker://{reference}"));
    let out = cmd.output().expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Polls the proxy log until `wanted` holds (at most 60 s, then the test fails).
pub fn wait_for_log(
    proxy: &kiln_testkit::FaultProxy,
    what: &str,
    wanted: impl Fn(&[kiln_testkit::proxy::ProxiedRequest]) -> bool,
) {
    let start = std::time::Instant::now();
    while !wanted(&proxy.requests()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "never saw {what}; log: {:#?}",
            proxy.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
