//! The SBOM: an SPDX 2.3 JSON document describing the image (a package
//! named after its first destination, version = its manifest digest), the
//! base images it descends from (by digest) and the OS packages it contains
//! (name, version, source package, architecture in the PURL and comment).
//!
//! Deterministic: packages are sorted, identifiers numbered in that order,
//! the namespace is derived from the subject digest, `created` is the
//! image's creation time (`SOURCE_DATE_EPOCH` with `--reproducible`), and
//! the bytes come from `kiln_oci::canonical_json`.

use serde::Serialize;

use super::packages::{Ecosystem, Inventory, Package};
use super::{BuildFacts, purl};
use kiln_oci::Descriptor;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    spdx_version: &'static str,
    data_license: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<SpdxPackage>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    supplier: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    primary_package_purpose: &'static str,
    external_refs: Vec<ExternalRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// The SPDX document's bytes for the image whose manifest is `subject`.
pub fn document(
    subject: &Descriptor,
    facts: &BuildFacts,
    inventory: &Inventory,
) -> serde_json::Result<Vec<u8>> {
    let image_id = "SPDXRef-Image".to_string();
    let mut packages = vec![SpdxPackage {
        spdx_id: image_id.clone(),
        name: facts.image_name.clone(),
        version_info: subject.digest.to_string(),
        download_location: "NOASSERTION",
        files_analyzed: false,
        supplier: "NOASSERTION",
        source_info: None,
        comment: Some(format!(
            "the image built by kiln for {}; its manifest is {}",
            facts.platform, subject.digest
        )),
        primary_package_purpose: "CONTAINER",
        external_refs: vec![purl_ref(oci_purl(
            &facts.image_name,
            &subject.digest,
            &facts.platform,
        ))],
    }];
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: image_id.clone(),
    }];
    for (n, base) in facts.bases.iter().enumerate() {
        let id = format!("SPDXRef-BaseImage-{}", n + 1);
        let name = base_name(&base.reference);
        packages.push(SpdxPackage {
            spdx_id: id.clone(),
            name: base.reference.clone(),
            version_info: base.digest.to_string(),
            download_location: "NOASSERTION",
            files_analyzed: false,
            supplier: "NOASSERTION",
            source_info: None,
            comment: Some("a base image of the build (FROM or COPY --from)".into()),
            primary_package_purpose: "CONTAINER",
            external_refs: vec![purl_ref(oci_purl(&name, &base.digest, &facts.platform))],
        });
        relationships.push(Relationship {
            spdx_element_id: image_id.clone(),
            relationship_type: "DESCENDANT_OF",
            related_spdx_element: id,
        });
    }
    for (n, package) in inventory.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{}", n + 1, id_safe(&package.name));
        packages.push(os_package(id.clone(), package, inventory));
        relationships.push(Relationship {
            spdx_element_id: image_id.clone(),
            relationship_type: "CONTAINS",
            related_spdx_element: id,
        });
    }
    let document = Document {
        spdx_id: "SPDXRef-DOCUMENT",
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        name: format!("{}@{}", facts.image_name, subject.digest),
        document_namespace: format!(
            "{}/spdx/{}-{}",
            super::KILN_URI,
            subject.digest.algorithm().as_str(),
            subject.digest.hex()
        ),
        creation_info: CreationInfo {
            created: facts.created.clone(),
            creators: vec![format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
    };
    kiln_oci::canonical_json::to_vec(&document)
}

fn os_package(spdx_id: String, package: &Package, inventory: &Inventory) -> SpdxPackage {
    let manager = match package.ecosystem {
        Ecosystem::Deb => "dpkg",
        Ecosystem::Apk => "apk",
    };
    SpdxPackage {
        spdx_id,
        name: package.name.clone(),
        version_info: package.version.clone(),
        download_location: "NOASSERTION",
        files_analyzed: false,
        supplier: "NOASSERTION",
        source_info: package
            .source
            .as_ref()
            .map(|s| match &package.source_version {
                Some(v) => format!("built package from: {s} {v}"),
                None => format!("built package from: {s}"),
            }),
        comment: Some(format!(
            "architecture: {}; listed by {manager} in /{}",
            if package.architecture.is_empty() {
                "unknown"
            } else {
                &package.architecture
            },
            package.found_in
        )),
        primary_package_purpose: "LIBRARY",
        external_refs: vec![purl_ref(purl::for_package(package, &inventory.os))],
    }
}

fn purl_ref(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

/// `pkg:oci/NAME@DIGEST?platform=...&repository_url=...` for an image.
fn oci_purl(name: &str, digest: &kiln_oci::Digest, platform: &kiln_oci::Platform) -> String {
    let (repository, last) = match kiln_oci::Reference::parse(name) {
        Ok(r) => {
            let repo = r.name().to_string();
            let last = repo.rsplit('/').next().unwrap_or(&repo).to_string();
            (Some(repo), last)
        }
        Err(_) => (None, name.to_string()),
    };
    let mut qualifiers = vec![("platform", platform.to_string())];
    if let Some(repo) = repository {
        qualifiers.push(("repository_url", repo));
    }
    purl::build(
        "oci",
        None,
        &last.to_ascii_lowercase(),
        Some(&digest.to_string()),
        &qualifiers,
    )
}

/// A base reference without its tag or digest (the name part).
fn base_name(reference: &str) -> String {
    kiln_oci::Reference::parse(reference)
        .map(|r| r.name().to_string())
        .unwrap_or_else(|_| reference.to_string())
}

/// SPDX identifiers allow letters, digits, `.` and `-` only.
fn id_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
