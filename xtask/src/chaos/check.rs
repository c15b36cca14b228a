//! What must hold of the registry at every moment: every tag names a manifest
//! (or index) whose manifests, config and layers are all present, with the
//! sizes the manifest says. Read straight from the registry, not through kiln.

use super::http::{self, ACCEPT_MANIFESTS};
use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;

/// Every `repo:tag` in the registry and the digest of the manifest it names.
pub fn tags(host_port: &str) -> Result<BTreeMap<String, String>> {
    let catalog = http::get_ok(host_port, "/v2/_catalog?n=1000", &[])?;
    let catalog: serde_json::Value = serde_json::from_slice(&catalog.body)?;
    let mut tags = BTreeMap::new();
    for repo in catalog["repositories"].as_array().into_iter().flatten() {
        let repo = repo.as_str().context("catalog entry is not a string")?;
        let list = http::request("GET", host_port, &format!("/v2/{repo}/tags/list"), &[])?;
        if list.status == 404 {
            continue;
        }
        ensure!(list.status == 200, "tags of {repo}: status {}", list.status);
        let list: serde_json::Value = serde_json::from_slice(&list.body)?;
        for tag in list["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().context("tag is not a string")?;
            let manifest = http::get_ok(
                host_port,
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("Accept", ACCEPT_MANIFESTS)],
            )?;
            tags.insert(
                format!("{repo}:{tag}"),
                kiln_oci::Digest::sha256_of(&manifest.body).to_string(),
            );
        }
    }
    Ok(tags)
}

/// Checks every tag (see the module doc); `deep` also downloads every blob and
/// checks its digest. Returns how many tags were checked.
pub fn verify_all(host_port: &str, deep: bool) -> Result<usize> {
    let tags = tags(host_port)?;
    for (repo_tag, digest) in &tags {
        let (repo, _) = repo_tag.rsplit_once(':').context("repo:tag")?;
        verify_manifest(host_port, repo, digest, deep)
            .with_context(|| format!("tag {repo_tag} ({digest})"))?;
    }
    Ok(tags.len())
}

fn verify_manifest(host_port: &str, repo: &str, digest: &str, deep: bool) -> Result<()> {
    let response = http::get_ok(
        host_port,
        &format!("/v2/{repo}/manifests/{digest}"),
        &[("Accept", ACCEPT_MANIFESTS)],
    )?;
    let actual = kiln_oci::Digest::sha256_of(&response.body).to_string();
    ensure!(actual == digest, "manifest {digest} has bytes of {actual}");
    let manifest: serde_json::Value = serde_json::from_slice(&response.body)
        .with_context(|| format!("manifest {digest} is not JSON"))?;
    if let Some(children) = manifest["manifests"].as_array() {
        for child in children {
            let child = child["digest"]
                .as_str()
                .context("index entry without digest")?;
            verify_manifest(host_port, repo, child, deep)?;
        }
        return Ok(());
    }
    let blobs = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().into_iter().flatten());
    for blob in blobs {
        let blob_digest = blob["digest"]
            .as_str()
            .context("descriptor without digest")?;
        let size = blob["size"].as_u64().context("descriptor without size")?;
        let path = format!("/v2/{repo}/blobs/{blob_digest}");
        if deep {
            let body = http::get_ok(host_port, &path, &[])?.body;
            let actual = kiln_oci::Digest::sha256_of(&body).to_string();
            ensure!(
                actual == blob_digest && body.len() as u64 == size,
                "blob {blob_digest} ({size} bytes) has {} bytes with digest {actual}",
                body.len()
            );
        } else {
            let head = http::request("HEAD", host_port, &path, &[])?;
            if head.status != 200 {
                bail!("blob {blob_digest} is missing (HEAD: {})", head.status);
            }
            let length = head
                .header("content-length")
                .and_then(|l| l.parse::<u64>().ok());
            ensure!(
                length == Some(size),
                "blob {blob_digest}: the manifest says {size} bytes, the registry {length:?}"
            );
        }
    }
    Ok(())
}
