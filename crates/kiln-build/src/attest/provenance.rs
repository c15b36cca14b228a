//! The provenance: a SLSA provenance v1 predicate in an in-toto v1 statement
//! whose subject is the image manifest.
//!
//! External parameters are what the user chose: the Dockerfile (path and
//! digest), target, platform, build args and destinations. Secrets never
//! appear, neither their values nor their ids or sources; a build arg whose
//! name looks like a secret's ([`looks_secret`]) is listed with its value
//! replaced by [`REDACTED`] (BuildKit warns about such args; kiln keeps them
//! out of what it publishes). Resolved dependencies are the base images by
//! digest and, in GitLab CI, the project's commit (`CI_COMMIT_SHA`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::BuildFacts;
use kiln_oci::Descriptor;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a redacted build-arg value reads.
pub const REDACTED: &str = "<redacted: the name looks like a secret's>";

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Predicate<'a>,
}

#[derive(Serialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate<'a> {
    build_definition: BuildDefinition<'a>,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition<'a> {
    build_type: String,
    external_parameters: ExternalParameters<'a>,
    internal_parameters: InternalParameters,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalParameters<'a> {
    dockerfile: Dockerfile<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    platform: String,
    build_args: BTreeMap<&'a str, &'a str>,
    destinations: &'a [String],
}

#[derive(Serialize)]
struct Dockerfile<'a> {
    path: &'a str,
    digest: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InternalParameters {
    reproducible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_date_epoch: Option<i64>,
}

#[derive(Serialize)]
struct ResourceDescriptor {
    uri: String,
    digest: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunDetails {
    builder: Builder,
    metadata: Metadata,
}

#[derive(Serialize)]
struct Builder {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    started_on: String,
    finished_on: String,
}

/// Whether a build arg's name suggests its value is a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "APIKEY",
        "API_KEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "AUTH",
    ]
    .iter()
    .any(|word| upper.contains(word))
}

/// The statement's bytes for the image whose manifest is `subject`;
/// `finished` is the RFC 3339 time the build finished.
pub fn statement(
    subject: &Descriptor,
    facts: &BuildFacts,
    finished: &str,
) -> serde_json::Result<Vec<u8>> {
    let mut resolved: Vec<ResourceDescriptor> = facts
        .bases
        .iter()
        .map(|b| ResourceDescriptor {
            uri: docker_purl(&b.reference, &facts.platform),
            digest: digest_map(&b.digest),
        })
        .collect();
    if let Some(commit) = &facts.attest.source_commit {
        let uri = match &facts.attest.source_repository {
            Some(repo) => format!("git+{repo}"),
            None => "git+context".to_string(),
        };
        resolved.push(ResourceDescriptor {
            uri,
            digest: BTreeMap::from([("gitCommit".to_string(), commit.clone())]),
        });
    }
    let build_args = facts
        .build_args
        .iter()
        .map(|(k, v)| {
            let value = if looks_secret(k) {
                REDACTED
            } else {
                v.as_str()
            };
            (k.as_str(), value)
        })
        .collect();
    let statement = Statement {
        kind: STATEMENT_TYPE,
        subject: vec![Subject {
            name: facts.image_name.clone(),
            digest: digest_map(&subject.digest),
        }],
        predicate_type: PREDICATE_TYPE,
        predicate: Predicate {
            build_definition: BuildDefinition {
                build_type: format!("{}/build-types/dockerfile/v1", super::KILN_URI),
                external_parameters: ExternalParameters {
                    dockerfile: Dockerfile {
                        path: &facts.dockerfile,
                        digest: digest_map(&facts.dockerfile_digest),
                    },
                    target: facts.target.as_deref(),
                    platform: facts.platform.to_string(),
                    build_args,
                    destinations: &facts.destinations,
                },
                internal_parameters: InternalParameters {
                    reproducible: facts.reproducible_epoch.is_some(),
                    source_date_epoch: facts.reproducible_epoch,
                },
                resolved_dependencies: resolved,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: facts.attest.builder_id.clone().unwrap_or_else(|| {
                        format!("{}/builder@v{}", super::KILN_URI, env!("CARGO_PKG_VERSION"))
                    }),
                },
                metadata: Metadata {
                    started_on: facts.started.clone(),
                    finished_on: finished.to_string(),
                },
            },
        },
    };
    kiln_oci::canonical_json::to_vec(&statement)
}

fn digest_map(digest: &kiln_oci::Digest) -> BTreeMap<String, String> {
    BTreeMap::from([(
        digest.algorithm().as_str().to_string(),
        digest.hex().to_string(),
    )])
}

/// `pkg:docker/NAME@TAG?platform=...` for a base image reference.
fn docker_purl(reference: &str, platform: &kiln_oci::Platform) -> String {
    let qualifiers = [("platform", platform.to_string())];
    match kiln_oci::Reference::parse(reference) {
        Ok(r) => {
            let name = r.name().to_string();
            let (namespace, last) = match name.rsplit_once('/') {
                Some((ns, last)) => (Some(ns.to_string()), last.to_string()),
                None => (None, name.clone()),
            };
            super::purl::build("docker", namespace.as_deref(), &last, r.tag(), &qualifiers)
        }
        Err(_) => super::purl::build("docker", None, reference, None, &qualifiers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names() {
        for name in [
            "NPM_TOKEN",
            "db_password",
            "AWS_SECRET_ACCESS_KEY",
            "GH_AUTH",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["VERSION", "HTTP_PROXY", "DEBIAN_FRONTEND"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
