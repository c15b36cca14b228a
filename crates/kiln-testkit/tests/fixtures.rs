//! The busybox fixture works (as a rootfs and as a tar), is deterministic, and can be
//! pushed into every registry mode with skopeo, which fails without credentials or CA.

use std::process::Command;
use std::sync::Arc;

use kiln_testkit::busybox::{self, BusyboxRootfs};
use kiln_testkit::{FixtureImage, Registry, RegistryTls, TestCa, TokenIssuer};

#[test]
fn busybox_tar_is_deterministic_and_complete() {
    let a = busybox::rootfs_tar();
    let b = busybox::rootfs_tar();
    assert_eq!(a, b, "same input, same bytes");
    let mut archive = tar::Archive::new(a.as_slice());
    let mut seen = std::collections::BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let header = entry.header();
        seen.insert(
            path,
            (
                header.entry_type(),
                header.mode().expect("mode"),
                header.uid().expect("uid"),
            ),
        );
    }
    assert_eq!(seen["tmp/"].1, 0o1777);
    assert_eq!(seen["home/user/"].2, 1000);
    assert_eq!(seen["bin/sh"].0, tar::EntryType::Symlink);
    assert_eq!(seen["bin/busybox"].0, tar::EntryType::Regular);
    assert!(seen.contains_key("etc/passwd") && seen.contains_key("etc/group"));
}

#[test]
fn busybox_rootfs_runs_in_a_chroot() {
    let rootfs = BusyboxRootfs::create();
    let out = Command::new("chroot")
        .arg(rootfs.path())
        .args([
            "/bin/sh",
            "-c",
            "id -un; stat -c %a /tmp; grep -c . /etc/group; stat -c %u:%g /home/user",
        ])
        .output()
        .expect("needs chroot (coreutils) and root");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "root");
    assert_eq!(lines[1], "1777");
    assert_eq!(lines[2], "3");
    assert_eq!(lines[3], "1000:1000");
}

fn inspect_digest(registry: &Registry, reference: &str, extra: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(extra)
        .arg(format!("docker://{}/{reference}", registry.host_port()))
        .output()
        .expect("running skopeo inspect");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kiln_testkit::image::sha256_digest(&out.stdout)
}

#[test]
fn busybox_image_pushes_to_plain_registry_with_preserved_digest() {
    let registry = Registry::start_plain();
    let image = FixtureImage::busybox();
    image
        .push(&registry, "library/busybox:latest", None)
        .expect("push");
    assert_eq!(
        inspect_digest(&registry, "library/busybox:latest", &["--tls-verify=false"]),
        image.manifest_digest()
    );
    assert_eq!(
        image.manifest_digest(),
        FixtureImage::busybox().manifest_digest(),
        "deterministic"
    );
}

#[test]
fn push_to_htpasswd_registry_needs_the_password() {
    let registry = Registry::builder().htpasswd("u", "p").start();
    let image = FixtureImage::busybox();
    let err = image
        .push(&registry, "a:1", Some(("u", "wrong")))
        .expect_err("wrong password must fail");
    assert!(
        err.stderr.contains("unauthorized") || err.stderr.contains("401"),
        "{err}"
    );
    image
        .push(&registry, "a:1", Some(("u", "p")))
        .expect("push with the right password");
}

/// GitLab's shape: registry over TLS, token issuer realm over TLS, one CA.
#[test]
fn skopeo_pushes_to_tls_token_registry_only_with_creds_and_ca() {
    let ca = Arc::new(TestCa::new("kiln gitlab-like CA"));
    let issuer = TokenIssuer::builder()
        .user("gitlab-ci-token", "job-token", "pull,push")
        .tls(RegistryTls::with_ca(ca.clone()))
        .start();
    assert!(issuer.realm().starts_with("https://"));
    let registry = Registry::builder()
        .tls(RegistryTls::with_ca(ca.clone()))
        .token(&issuer)
        .start();
    let image = FixtureImage::busybox();

    let err = image
        .push(&registry, "group/app:v1", None)
        .expect_err("anonymous push must fail");
    assert!(!err.stderr.is_empty());
    let err = image
        .push(&registry, "group/app:v1", Some(("gitlab-ci-token", "bad")))
        .expect_err("bad creds");
    assert!(!err.stderr.is_empty());

    // Right credentials, but no CA: x509 error.
    let layout = tempfile::tempdir().expect("tempdir");
    image.write_oci_layout(layout.path(), "t");
    let out = Command::new("skopeo")
        .args(["copy", "--dest-creds", "gitlab-ci-token:job-token"])
        .arg(format!("oci:{}:t", layout.path().display()))
        .arg(format!("docker://{}/group/app:v1", registry.host_port()))
        .output()
        .expect("skopeo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate signed by unknown authority"),
        "{stderr}"
    );

    image
        .push(
            &registry,
            "group/app:v1",
            Some(("gitlab-ci-token", "job-token")),
        )
        .expect("push with creds and CA");
    let cert_dir = registry
        .tls()
        .expect("tls")
        .cert_dir()
        .to_str()
        .expect("utf8")
        .to_owned();
    let digest = inspect_digest(
        &registry,
        "group/app:v1",
        &[
            "--cert-dir",
            &cert_dir,
            "--creds",
            "gitlab-ci-token:job-token",
        ],
    );
    assert_eq!(digest, image.manifest_digest());
    assert!(issuer.requests().iter().any(|r| {
        r.scopes
            .iter()
            .any(|s| s.contains("group/app") && s.contains("push"))
    }));
}

#[test]
fn gitlab_like_registry_accepts_its_ci_credentials() {
    let gitlab = kiln_testkit::GitLabLike::start();
    let image = FixtureImage::busybox();
    let (user, password) = gitlab.credentials();
    image
        .push(
            &gitlab.registry,
            "group/project/app:ci",
            Some((user, password)),
        )
        .expect("push as the CI job");
    let config: serde_json::Value =
        serde_json::from_str(&gitlab.docker_config_json()).expect("json");
    assert!(config["auths"][gitlab.ci_registry()]["auth"].is_string());
    // A layer made from custom entries is deterministic too.
    let mut entries = std::collections::BTreeMap::new();
    entries.insert(
        "app".to_owned(),
        busybox::Entry::Dir {
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    );
    entries.insert(
        "app/hello.txt".to_owned(),
        busybox::Entry::File {
            data: b"hello\n".to_vec(),
            mode: 0o644,
        },
    );
    assert_eq!(
        busybox::tar_from_entries(&entries),
        busybox::tar_from_entries(&entries)
    );
}
