//! The plain-HTTP registry starts, answers `/v2/`, accepts a push, and dies on drop.

use std::process::Command;

use kiln_testkit::Registry;

fn curl_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("running curl");
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn plain_registry_answers_v2_and_is_killed_on_drop() {
    let registry = Registry::start_plain();
    assert!(registry.host_port().starts_with("127.0.0.1:"));
    assert_eq!(curl_status(&[&format!("{}/v2/", registry.url())]), "200");
    let pid = registry.pid();
    let storage = registry.storage_dir();
    assert!(storage.is_dir());
    assert!(registry.log_path().is_file());
    drop(registry);
    // We killed and reaped our child, so its /proc entry is gone.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry pid {pid} still alive"
    );
    assert!(!storage.exists(), "storage dir removed on drop");
}

#[test]
fn two_registries_get_different_ports() {
    let a = Registry::start_plain();
    let b = Registry::start_plain();
    assert_ne!(a.port(), b.port());
    assert_eq!(curl_status(&[&format!("{}/v2/", b.url())]), "200");
}
