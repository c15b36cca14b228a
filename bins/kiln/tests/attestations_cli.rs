//! `kiln build --sbom --provenance` in GitLab's environment and `kiln
//! attestations` reading them back, against a real docker-registry
//! (distribution 2.8: the referrers tag schema).

use std::process::Command;

mod common;
use common::{kiln, text};

#[test]
fn build_attaches_both_and_attestations_lists_and_prints_them() {
    let registry = kiln_testkit::Registry::start_plain();
    let host = registry.host_port();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {host}/fixtures/busybox:1\nCOPY installed /lib/apk/db/installed\n"),
    )
    .unwrap();
    std::fs::write(
        context.join("installed"),
        "P:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n",
    )
    .unwrap();
    let dest = format!("{host}/app/attested:1");
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let out = Command::new(kiln())
        .args([
            "build",
            "--insecure",
            "--insecure-pull",
            "--sbom",
            "--provenance",
        ])
        .arg(format!("--context=dir://{}", context.display()))
        .arg(format!(
            "--kaniko-dir={}",
            dir.path().join("kiln").display()
        ))
        .arg(format!("--destination={dest}"))
        .arg(format!(
            "--digest-file={}",
            dir.path().join("digest").display()
        ))
        .env_remove("RUST_LOG")
        .env("CI_JOB_URL", "https://gitlab.example/g/app/-/jobs/7")
        .env("CI_COMMIT_SHA", commit)
        .env("CI_PROJECT_URL", "https://gitlab.example/g/app")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let digest = std::fs::read_to_string(dir.path().join("digest")).unwrap();

    let list = Command::new(kiln())
        .args(["attestations", "--insecure-pull", &dest])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed.starts_with(&format!("# {host}/app/attested {digest} (TagSchema)")),
        "{listed}"
    );
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(rows[0][..2], ["sbom", "application/spdx+json"]);
    assert_eq!(rows[1][..2], ["provenance", "application/vnd.in-toto+json"]);

    let show = |what: &str| {
        let out = Command::new(kiln())
            .args(["attestations", "--insecure-pull", "--show", what, &dest])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let sbom = show("sbom");
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    assert!(
        sbom.to_string()
            .contains("pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64")
    );
    assert_eq!(show(rows[0][2]), sbom, "by manifest digest");
    let provenance = show("provenance");
    assert_eq!(
        format!(
            "sha256:{}",
            provenance["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        digest
    );
    let predicate = &provenance["predicate"];
    assert_eq!(
        predicate["runDetails"]["builder"]["id"],
        "https://gitlab.example/g/app/-/jobs/7"
    );
    let resolved = predicate["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(
        resolved.contains(commit) && resolved.contains("git+https://gitlab.example/g/app"),
        "{resolved}"
    );

    let missing = Command::new(kiln())
        .args([
            "attestations",
            "--insecure-pull",
            "--show",
            "sha256:00",
            &dest,
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        text(&missing).contains("--show sha256:00"),
        "{}",
        text(&missing)
    );
}
