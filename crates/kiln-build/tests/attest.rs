//! `--sbom` and `--provenance` against a real registry (distribution 2.8,
//! which has no referrers API: the referrers tag schema is used), checked
//! with independent tools: skopeo and umoci for the image, `dpkg-query` for
//! the package list, the SPDX project's `pyspdxtools` for the SBOM.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{run_tokio, skopeo, tool, umoci_unpack};

const SECRET: &str = "mount-s3cr3t-7f1c9a";
const TOKEN: &str = "npm-tok-2b8e44d1";
const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// A blob of the registry's own storage, by digest.
fn stored_blob(registry: &kiln_testkit::Registry, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    fs_err::read(
        registry
            .storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"),
    )
    .unwrap()
}

/// Every blob the registry stores, gzip-compressed ones decompressed.
fn every_stored_blob(registry: &kiln_testkit::Registry) -> Vec<Vec<u8>> {
    let root = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256");
    let mut out = Vec::new();
    for prefix in fs_err::read_dir(&root).unwrap() {
        for blob in fs_err::read_dir(prefix.unwrap().path()).unwrap() {
            let bytes = fs_err::read(blob.unwrap().path().join("data")).unwrap();
            let mut plain = Vec::new();
            let mut gz = flate2::read::MultiGzDecoder::new(&bytes[..]);
            if bytes.starts_with(&[0x1f, 0x8b]) {
                std::io::Read::read_to_end(&mut gz, &mut plain).unwrap();
                out.push(plain);
            } else {
                out.push(bytes);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn raw(reference: &str) -> Vec<u8> {
    skopeo(|c| {
        c.args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}"));
    })
    .stdout
}

/// The referrers tag schema's index of `subject` in `repo`, by artifact type.
fn referrers(repo: &str, subject: &str) -> Vec<(String, String)> {
    let tag = subject.replace(':', "-");
    let index: Value = serde_json::from_slice(&raw(&format!("{repo}:{tag}"))).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut out: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["artifactType"].as_str().unwrap().to_string(),
                d["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `pyspdxtools -i FILE` (the SPDX project's validator) accepts the document.
fn assert_valid_spdx(document: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbom.spdx.json");
    fs_err::write(&file, document).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(&file)
        .output()
        .expect("needs pyspdxtools: pip install spdx-tools (.ci/install-deps)");
    assert!(
        out.status.success(),
        "pyspdxtools rejects the SBOM:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (name, version, architecture) of every `pkg:deb` or `pkg:apk` package of an SBOM.
fn sbom_packages(sbom: &Value, purl_type: &str) -> BTreeSet<(String, String, String)> {
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .starts_with(purl_type)
        })
        .map(|p| {
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            let arch = purl
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap_or("")
                .to_string();
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
                arch,
            )
        })
        .collect()
}

#[test]
fn debian_image_attestations_are_pushed_before_the_tags_and_hold_no_secret() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    let debian = fs_err::read(
        kiln_testkit::debian::workspace_rootfs_tar()
            .expect("the Debian base image (needs debootstrap: .ci/install-deps)"),
    )
    .unwrap();
    let base_image = kiln_testkit::FixtureImage::from_layers(
        vec![kiln_testkit::FixtureLayer::from_tar(&debian, true)],
        &["bash"],
    );
    drop(debian);
    base_image
        .push(&registry, "base/debian:12", None)
        .expect("pushing the Debian base");
    let base_digest = base_image.manifest_digest();

    let context = tempfile::tempdir().unwrap();
    // The RUN removes a package (its config files stay: dpkg keeps it as
    // `config-files`), so the SBOM must follow the final layers, not the base.
    fs_err::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {host}/base/debian:12\n\
             ARG NPM_TOKEN\n\
             ARG VERSION\n\
             RUN --mount=type=secret,id=db_pass wc -c < /run/secrets/db_pass > /secret-len \
             && dpkg -r --force-depends apt > /dev/null && echo \"$VERSION\" > /version\n"
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("db_pass");
    fs_err::write(&secret, SECRET).unwrap();
    let mut options =
        kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(context.path().into()));
    options.kaniko_dir = work.path().join("kiln");
    let app = format!("{host}/team/app");
    let mirror = format!("{host}/team/mirror");
    options.destinations = vec![
        format!("{app}:1.0"),
        format!("{app}:latest"),
        format!("{mirror}:1.0"),
    ];
    options.registry.insecure = true;
    options.registry.insecure_pull = true;
    options.build_args.insert("NPM_TOKEN".into(), TOKEN.into());
    options.build_args.insert("VERSION".into(), "1.2.3".into());
    options
        .secrets
        .insert("db_pass".into(), kiln_build::SecretSource::File(secret));
    let layout = work.path().join("layout");
    options.oci_layout_path = Some(layout.clone());
    options.attest = kiln_build::AttestOptions {
        sbom: true,
        provenance: true,
        builder_id: Some("https://gitlab.example/group/app/-/jobs/42".into()),
        source_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        source_repository: Some("https://gitlab.example/group/app".into()),
    };
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    // Every tag names the image, and every repository has both attestations.
    for tagged in [
        format!("{app}:1.0"),
        format!("{app}:latest"),
        format!("{mirror}:1.0"),
    ] {
        assert_eq!(
            kiln_oci::Digest::sha256_of(&raw(&tagged)).to_string(),
            outcome.digest
        );
    }
    let attached = referrers(&app, &outcome.digest);
    assert_eq!(
        attached.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        [SPDX, IN_TOTO]
    );
    assert_eq!(attached, referrers(&mirror, &outcome.digest));
    let mut documents = Vec::new();
    for (artifact_type, digest) in &attached {
        let manifest_bytes = raw(&format!("{app}@{digest}"));
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(manifest["artifactType"], artifact_type.as_str());
        assert_eq!(manifest["subject"]["digest"], outcome.digest.as_str());
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], artifact_type.as_str());
        let document = stored_blob(&registry, layer["digest"].as_str().unwrap());
        assert!(
            !contains(&document, TOKEN),
            "{artifact_type} holds the token"
        );
        assert!(!contains(&manifest_bytes, TOKEN));
        documents.push(document);
    }
    let sbom: Value = serde_json::from_slice(&documents[0]).unwrap();
    let provenance: Value = serde_json::from_slice(&documents[1]).unwrap();

    // No blob pushed anywhere (layers decompressed) holds the secret's value.
    for blob in every_stored_blob(&registry) {
        assert!(!contains(&blob, SECRET), "the secret reached a pushed blob");
    }

    // The SBOM lists exactly what dpkg-query finds in the unpacked image.
    assert_valid_spdx(&documents[0]);
    let copied = tempfile::tempdir().unwrap();
    skopeo(|c| {
        c.args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{app}:1.0"))
            .arg(format!(
                "oci:{}:pushed",
                copied.path().join("oci").display()
            ));
    });
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = umoci_unpack(&copied.path().join("oci"), "pushed", unpacked.path());
    let admin = bundle.join("rootfs/var/lib/dpkg");
    let out = Command::new(tool("/usr/bin/dpkg-query"))
        .arg(format!("--admindir={}", admin.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut expected = BTreeSet::new();
    let mut config_files_only = 0;
    for line in listed.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        // Removed packages whose config files remain are not in the image.
        if f[0] == "config-files" {
            config_files_only += 1;
            continue;
        }
        expected.insert((f[1].to_string(), f[2].to_string(), f[3].to_string()));
    }
    assert_eq!(config_files_only, 1, "the RUN removed apt:\n{listed}");
    assert!(expected.len() > 50, "{listed}");
    assert_eq!(sbom_packages(&sbom, "pkg:deb/debian/"), expected);
    let purls: Vec<&str> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["externalRefs"][0]["referenceLocator"].as_str().unwrap())
        .collect();
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:deb/debian/libc6@")
            && p.contains("arch=amd64")
            && p.contains("distro=debian-12")
            && p.contains("upstream=glibc")),
        "{purls:?}"
    );
    assert!(
        sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["versionInfo"] == base_digest.as_str()),
        "the base image by digest"
    );

    // The provenance: an in-toto statement about the pushed manifest.
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        provenance["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(
        format!(
            "sha256:{}",
            provenance["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        outcome.digest
    );
    let predicate = &provenance["predicate"];
    assert_eq!(
        predicate["runDetails"]["builder"]["id"],
        "https://gitlab.example/group/app/-/jobs/42"
    );
    let external = &predicate["buildDefinition"]["externalParameters"];
    assert_eq!(external["buildArgs"]["VERSION"], "1.2.3");
    assert_ne!(external["buildArgs"]["NPM_TOKEN"], TOKEN);
    assert_eq!(external["dockerfile"]["path"], "Dockerfile");
    let dockerfile = fs_err::read(context.path().join("Dockerfile")).unwrap();
    assert_eq!(
        external["dockerfile"]["digest"]["sha256"],
        kiln_oci::Digest::sha256_of(&dockerfile).hex()
    );
    let resolved = predicate["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(
        resolved.contains(base_digest.trim_start_matches("sha256:")),
        "{resolved}"
    );
    assert!(
        resolved.contains("0123456789abcdef0123456789abcdef01234567"),
        "{resolved}"
    );
    assert!(
        !predicate.to_string().contains("db_pass"),
        "a secret id in provenance"
    );

    // The OCI layout holds both, listed in index.json with their artifact type.
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["artifactType"].as_str())
        .collect();
    types.sort();
    assert_eq!(types, [SPDX, IN_TOTO]);
}

/// Alpine's installed database, written from apk-tools' documented fields
/// (no Alpine image is reachable offline): `P` name, `V` version, `A`
/// architecture, `o` origin (source package), and lines the SBOM ignores.
const APK_INSTALLED: &str = "\
C:Q1fakechecksumAAAAAAAAAAAAAAAA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
F:lib
R:ld-musl-x86_64.so.1

C:Q1fakechecksumBBBBBBBBBBBBBBBB=
P:libcrypto3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
D:so:libc.musl-x86_64.so.1
F:usr/lib
R:libcrypto.so.3
";

/// A distroless-style dpkg entry (`status.d`, no `Status` field).
const STATUS_D_TZDATA: &str = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";

fn apk_fixture() -> support::Fixture {
    support::Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nCOPY installed /lib/apk/db/installed\n\
         COPY os-release /etc/os-release\nCOPY tzdata /var/lib/dpkg/status.d/tzdata\n\
         COPY tzdata.md5sums /var/lib/dpkg/status.d/tzdata.md5sums\n",
        &[
            ("installed", APK_INSTALLED),
            (
                "os-release",
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
            ),
            ("tzdata", STATUS_D_TZDATA),
            ("tzdata.md5sums", "0123  usr/share/zoneinfo/UTC\n"),
        ],
    )
}

fn reproducible_attesting(options: &mut kiln_build::BuildOptions, destination: &str) {
    options.destinations = vec![destination.to_string()];
    options.reproducible = true;
    options.source_date_epoch = Some(1_700_000_000);
    options.registry.insecure = true;
    options.attest.sbom = true;
    options.attest.provenance = true;
}

/// The artifacts in an OCI layout: (artifact type, manifest digest, document).
fn layout_artifacts(layout: &Path) -> Vec<(String, String, Value)> {
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for d in index["manifests"].as_array().unwrap() {
        let Some(artifact_type) = d["artifactType"].as_str() else {
            continue;
        };
        let digest = d["digest"].as_str().unwrap();
        let manifest: Value =
            serde_json::from_slice(&support::layout_blob(layout, digest)).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let document = serde_json::from_slice(&support::layout_blob(layout, layer)).unwrap();
        out.push((artifact_type.to_string(), digest.to_string(), document));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A TCP forwarder on a port known before its target is: attestations
/// name their destination, so the fault proxy's rule (which needs the
/// artifact's digest) can only be made after the destination is fixed.
fn forwarder() -> (String, std::sync::Arc<std::sync::Mutex<Option<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let target = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let shared = target.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Some(to) = shared.lock().unwrap().clone() else {
                continue; // not wired yet: the connection is dropped
            };
            let Ok(upstream) = std::net::TcpStream::connect(to) else {
                continue;
            };
            let (mut c1, mut u1) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c2, mut u2) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (address, target)
}

#[test]
fn apk_and_status_d_packages_and_a_failed_attestation_push_moves_no_tag() {
    let registry = kiln_testkit::Registry::start_plain();
    let (front, target) = forwarder();
    let destination = format!("{front}/apk/app:v1");

    // 1. No push: the OCI layout holds the image and its attestations.
    let fx = apk_fixture();
    let (mut options, layout) = fx.layout_options();
    reproducible_attesting(&mut options, &destination);
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let artifacts = layout_artifacts(&layout);
    assert_eq!(
        artifacts.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        [SPDX, IN_TOTO]
    );
    let sbom = &artifacts[0].2;
    assert_valid_spdx(&kiln_oci::canonical_json::to_vec(sbom).unwrap());
    assert_eq!(
        sbom_packages(sbom, "pkg:apk/alpine/"),
        BTreeSet::from([
            ("libcrypto3".into(), "3.1.4-r5".into(), "x86_64".into()),
            (
                "musl".into(),
                "1.2.4_git20230717-r4".into(),
                "x86_64".into()
            ),
        ])
    );
    assert_eq!(
        sbom_packages(sbom, "pkg:deb/"),
        BTreeSet::from([("tzdata".into(), "2024a-0+deb12u1".into(), "all".into())])
    );
    let text = sbom.to_string();
    assert!(
        text.contains(
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"
        ),
        "{text}"
    );
    assert_eq!(sbom["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let metadata = &artifacts[1].2["predicate"]["runDetails"]["metadata"];
    assert_eq!(metadata["startedOn"], "2023-11-14T22:13:20Z");
    assert_eq!(metadata["finishedOn"], "2023-11-14T22:13:20Z");
    let provenance_manifest = artifacts[1].1.clone();

    // 2. The same build pushed through a proxy that refuses the provenance
    //    artifact's manifest: the build fails, and the tag never appears.
    let proxy = kiln_testkit::FaultProxy::in_front_of(
        &registry,
        kiln_testkit::Faults::none().fail(kiln_testkit::FailRule::status(400, 100).matching(
            Some("PUT"),
            Some(&format!("/manifests/{provenance_manifest}")),
        )),
    );
    *target.lock().unwrap() = Some(proxy.host_port());
    let fx = apk_fixture();
    let mut options = fx.options();
    options.no_push = false;
    reproducible_attesting(&mut options, &destination);
    let error = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
        .expect_err("the attestation push fails the build")
        .to_string();
    assert!(error.contains(&provenance_manifest), "{error}");
    let refused: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.fault == Some("fail"))
        .collect();
    assert!(!refused.is_empty(), "the fault was never hit");
    let image_digest = kiln_oci::Digest::sha256_of(&support::layout_blob(&layout, &{
        let index: Value =
            serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["artifactType"].is_null())
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }));
    let direct = format!("{}/apk/app", registry.host_port());
    // The image itself went first, by digest; the tag was never PUT.
    raw(&format!("{direct}@{image_digest}"));
    let tag = Command::new(tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{direct}:v1"))
        .output()
        .unwrap();
    assert!(
        !tag.status.success(),
        "the tag was moved despite the failure"
    );
    assert!(
        !proxy
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/manifests/v1")),
        "a tag PUT was sent"
    );
}

/// The referrers API form: no registry here offers it, so kiln-testkit's
/// `ReferrersFront` adds it in front of the real distribution 2.8 (which
/// stores everything). kiln must use the API and make no referrers tag.
#[test]
fn with_the_referrers_api_no_referrers_tag_is_made() {
    let registry = kiln_testkit::Registry::start_plain();
    let front = kiln_testkit::ReferrersFront::in_front_of(&registry);
    let fx = apk_fixture();
    let mut options = fx.options();
    options.no_push = false;
    reproducible_attesting(&mut options, &format!("{}/api/app:v1", front.host_port()));
    options.registry.insecure_pull = true;
    let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    let recorded = front.referrers("api/app", &outcome.digest);
    let mut types: Vec<&str> = recorded
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, [SPDX, IN_TOTO]);
    let direct = format!("{}/api/app", registry.host_port());
    let tag = Command::new(tool("/usr/bin/skopeo"))
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{direct}:{}",
            outcome.digest.replace(':', "-")
        ))
        .output()
        .unwrap();
    assert!(
        !tag.status.success(),
        "a referrers tag was made although the API exists"
    );
    assert_eq!(
        kiln_oci::Digest::sha256_of(&raw(&format!("{direct}:v1"))).to_string(),
        outcome.digest
    );

    let listing = run_tokio(kiln_build::attest::listing::list(
        &options,
        &format!("{}/api/app:v1", front.host_port()),
    ))
    .unwrap();
    assert_eq!(listing.form, kiln_registry::ReferrersForm::Api);
    assert_eq!(listing.referrers.len(), 2);
    let provenance = listing
        .referrers
        .iter()
        .find(|r| r.kind == Some(kiln_build::attest::Kind::Provenance))
        .unwrap();
    let (_, document) = run_tokio(kiln_build::attest::listing::document(
        &options,
        &listing.repo,
        &listing.subject.digest,
        &provenance.manifest,
    ))
    .unwrap();
    let statement: Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        outcome.digest
    );

    // A metadata-only build on that image has no root filesystem: its SBOM
    // comes from the layer blobs, and lists the same packages.
    let sbom_of = |listing: &kiln_build::attest::listing::Listing, options| {
        let sbom = listing
            .referrers
            .iter()
            .find(|r| r.kind == Some(kiln_build::attest::Kind::Sbom))
            .unwrap();
        let (_, document) = run_tokio(kiln_build::attest::listing::document(
            options,
            &listing.repo,
            &listing.subject.digest,
            &sbom.manifest,
        ))
        .unwrap();
        serde_json::from_slice::<Value>(&document).unwrap()
    };
    let from_rootfs = sbom_of(&listing, &options);
    let labelled = support::Fixture::new(
        &format!(
            "FROM {}/api/app:v1\nLABEL stage=metadata-only\n",
            front.host_port()
        ),
        &[],
    );
    let mut options = labelled.options();
    options.no_push = false;
    reproducible_attesting(
        &mut options,
        &format!("{}/api/labelled:v1", front.host_port()),
    );
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let listing = run_tokio(kiln_build::attest::listing::list(
        &options,
        &format!("{}/api/labelled:v1", front.host_port()),
    ))
    .unwrap();
    let from_layers = sbom_of(&listing, &options);
    for purl_type in ["pkg:apk/alpine/", "pkg:deb/"] {
        assert_eq!(
            sbom_packages(&from_layers, purl_type),
            sbom_packages(&from_rootfs, purl_type)
        );
    }
    assert_eq!(sbom_packages(&from_layers, "pkg:apk/alpine/").len(), 2);
}
