//! Fixture images (config + layers + OCI manifest) and pushing them into a test
//! registry with `skopeo copy oci:DIR:TAG docker://...`.
//!
//! JSON is serialised by serde_json with sorted keys, layers are gzipped with a fixed
//! header, so the same inputs give the same digests.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::registry::Registry;
use crate::tools;

/// OCI media types used by the fixtures.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Gzipped OCI layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Uncompressed OCI layer media type.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer blob and what the config says about it.
#[derive(Debug, Clone)]
pub struct FixtureLayer {
    /// Layer media type.
    pub media_type: String,
    /// The blob as stored in the registry (compressed or not).
    pub blob: Vec<u8>,
    /// The digest of the uncompressed tar.
    pub diff_id: String,
}

impl FixtureLayer {
    /// A layer from an uncompressed tar; gzipped (deterministically) when `gzip`.
    pub fn from_tar(tar: &[u8], gzip: bool) -> FixtureLayer {
        let diff_id = sha256_digest(tar);
        if !gzip {
            return FixtureLayer {
                media_type: OCI_LAYER_TAR.to_owned(),
                blob: tar.to_vec(),
                diff_id,
            };
        }
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        encoder.write_all(tar).expect("gzip in memory");
        let blob = encoder.finish().expect("gzip finish");
        FixtureLayer {
            media_type: OCI_LAYER_GZIP.to_owned(),
            blob,
            diff_id,
        }
    }

    /// The blob's digest.
    pub fn digest(&self) -> String {
        sha256_digest(&self.blob)
    }
}

/// An image: config blob, layers, OCI manifest.
#[derive(Debug, Clone)]
pub struct FixtureImage {
    /// The config JSON bytes.
    pub config: Vec<u8>,
    /// Layers, base first.
    pub layers: Vec<FixtureLayer>,
    /// The OCI manifest JSON bytes.
    pub manifest: Vec<u8>,
}

/// Failure of an external copy (skopeo), with its stderr.
#[derive(Debug)]
pub struct CopyError {
    /// The command line, without credentials.
    pub command: String,
    /// What the tool printed on stderr.
    pub stderr: String,
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.command, self.stderr)
    }
}

impl std::error::Error for CopyError {}

/// The host platform's OCI architecture name.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl FixtureImage {
    /// The busybox fixture as a one-layer image (gzipped layer), `Cmd ["sh"]`.
    pub fn busybox() -> FixtureImage {
        FixtureImage::from_layers(
            vec![FixtureLayer::from_tar(&crate::busybox::rootfs_tar(), true)],
            &["sh"],
        )
    }

    /// An image from layers, with a config for the host platform running `cmd`.
    pub fn from_layers(layers: Vec<FixtureLayer>, cmd: &[&str]) -> FixtureImage {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<serde_json::Value> = layers
            .iter()
            .map(|_| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": "kiln-testkit fixture"}))
            .collect();
        let config = serde_json::json!({
            "architecture": host_architecture(),
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": cmd,
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config = serde_json::to_vec(&config).expect("config JSON");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest(), "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("manifest JSON");
        FixtureImage {
            config,
            layers,
            manifest,
        }
    }

    /// `sha256:...` of the manifest.
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// Writes an OCI image layout at `dir` with the image tagged `tag`.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs").join("sha256");
        fs_err::create_dir_all(&blobs).expect("creating OCI layout blobs dir");
        let write_blob = |data: &[u8]| {
            let digest = sha256_digest(data);
            let hex = digest.trim_start_matches("sha256:");
            fs_err::write(blobs.join(hex), data).expect("writing blob");
        };
        write_blob(&self.config);
        for layer in &self.layers {
            write_blob(&layer.blob);
        }
        write_blob(&self.manifest);
        fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("writing oci-layout");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": self.manifest_digest(),
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        fs_err::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).expect("index JSON"),
        )
        .expect("writing index.json");
    }

    /// Pushes the image to `registry` as `repo_tag` (`name:tag`) with
    /// `skopeo copy --preserve-digests`, using the registry's CA and `credentials`.
    pub fn push(
        &self,
        registry: &Registry,
        repo_tag: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<(), CopyError> {
        let cert_dir = registry.tls().map(|t| t.cert_dir());
        self.push_to_host(&registry.host_port(), cert_dir, repo_tag, credentials)
    }

    /// Pushes to `host_port` (a registry or a [`crate::FaultProxy`]): HTTPS trusting
    /// the CA in `cert_dir` when given, else plain HTTP.
    pub fn push_to_host(
        &self,
        host_port: &str,
        cert_dir: Option<&Path>,
        repo_tag: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<(), CopyError> {
        let layout = tempfile::Builder::new()
            .prefix("kiln-fixture-oci-")
            .tempdir()
            .expect("creating OCI layout dir");
        self.write_oci_layout(layout.path(), "fixture");
        let source = format!("oci:{}:fixture", layout.path().display());
        let dest = format!("docker://{host_port}/{repo_tag}");
        let mut cmd = Command::new(tools::skopeo());
        cmd.args(["copy", "--quiet", "--preserve-digests"]);
        match cert_dir {
            Some(dir) => {
                cmd.arg("--dest-cert-dir").arg(dir);
            }
            None => {
                cmd.arg("--dest-tls-verify=false");
            }
        }
        if let Some((user, password)) = credentials {
            cmd.arg("--dest-creds").arg(format!("{user}:{password}"));
        }
        cmd.arg(&source).arg(&dest);
        let out = cmd.output().expect("running skopeo copy");
        if out.status.success() {
            Ok(())
        } else {
            Err(CopyError {
                command: format!("skopeo copy {source} {dest}"),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}
