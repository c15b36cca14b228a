//! Both stores against real components: a docker-registry started by kiln-testkit
//! and an OCI layout on disk (read back by skopeo), with hits, absences, TTL
//! expiry, empty-layer steps and concurrent writers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_auth::tls::SystemRoots;
use kiln_auth::{MapEnvironment, TlsConfigs, TlsOptions};
use kiln_cache::{CachedStep, LayerCache, LayerSource, Lookup, StepToStore};
use kiln_oci::{Descriptor, Digest, MediaType, Platform};
use kiln_registry::{Anonymous, AuthTls, Client, RegistryOptions, RepoRef, StaticCredentials};
use kiln_testkit::Registry;

fn client(host: &str) -> Arc<Client> {
    let tls = TlsConfigs::new(
        TlsOptions {
            system_roots: SystemRoots::Empty,
            ..TlsOptions::default()
        },
        &MapEnvironment::new(),
    )
    .unwrap();
    let mut options = RegistryOptions::new(
        Arc::new(StaticCredentials {
            entries: Default::default(),
            fallback: Anonymous,
        }),
        Arc::new(AuthTls::new(tls)),
    );
    options.insecure_registries.insert(host.to_string());
    Arc::new(Client::new(options))
}

fn platform() -> Platform {
    "linux/amd64".parse().unwrap()
}

/// A gzip "layer" blob file (content does not matter to the cache) and its step.
fn layer_step(dir: &Path, name: &str, stored: SystemTime) -> StepToStore {
    let path = dir.join(name);
    std::fs::write(&path, format!("layer bytes of {name}")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let descriptor = Descriptor::new(
        MediaType::OciLayerGzip,
        Digest::sha256_of(&bytes),
        bytes.len() as u64,
    );
    StepToStore {
        key: Digest::sha256_of(name.as_bytes()),
        step: CachedStep {
            layer: Some((
                descriptor,
                Digest::sha256_of(format!("diff {name}").as_bytes()),
            )),
            created_by: format!("RUN make {name} # buildkit"),
            stored,
        },
        blob: Some(path),
    }
}

fn empty_step(name: &str) -> StepToStore {
    StepToStore {
        key: Digest::sha256_of(name.as_bytes()),
        step: CachedStep {
            layer: None,
            created_by: format!("RUN true {name} # buildkit"),
            stored: SystemTime::now(),
        },
        blob: None,
    }
}

async fn exercise(cache: &LayerCache, scratch: &Path) -> Vec<LayerSource> {
    let now = SystemTime::now();
    let fresh = layer_step(scratch, "fresh", now);
    let old = layer_step(scratch, "old", now - Duration::from_secs(3 * 3600));
    let nothing = empty_step("nothing");
    assert_eq!(cache.lookup(&fresh.key, now).await.unwrap(), Lookup::Absent);
    for s in [&fresh, &old, &nothing] {
        cache.store(s).await.unwrap();
    }
    let mut sources = Vec::new();
    match cache.lookup(&fresh.key, now).await.unwrap() {
        Lookup::Hit { step, source } => {
            // Stored times are kept to the second.
            assert_eq!(step.layer, fresh.step.layer);
            assert_eq!(step.created_by, fresh.step.created_by);
            sources.push(source);
        }
        other => panic!("expected a hit, got {other:?}"),
    }
    match cache.lookup(&old.key, now).await.unwrap() {
        Lookup::Expired { age } => assert!(age >= Duration::from_secs(3 * 3600 - 5), "{age:?}"),
        other => panic!("an entry older than the 1h TTL must be expired, got {other:?}"),
    }
    match cache.lookup(&nothing.key, now).await.unwrap() {
        Lookup::Hit { step, source } => {
            assert_eq!(step.layer, None);
            assert_eq!(source, LayerSource::Nothing);
        }
        other => panic!("expected a hit, got {other:?}"),
    }
    assert_eq!(
        cache
            .lookup(&Digest::sha256_of(b"never stored"), now)
            .await
            .unwrap(),
        Lookup::Absent
    );
    sources
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_store_hits_misses_and_expires() {
    let reg = Registry::start_plain();
    let host = reg.host_port();
    let scratch = tempfile::tempdir().unwrap();
    let repo = RepoRef::new(&host, "group/app/cache");
    let cache = LayerCache::in_registry(
        repo.clone(),
        client(&host),
        Duration::from_secs(3600),
        platform(),
    );
    let sources = exercise(&cache, scratch.path()).await;
    assert_eq!(sources, vec![LayerSource::Registry(repo)]);
    // The entry is an ordinary image to other tools.
    let tag = Digest::sha256_of(b"fresh").hex().to_string();
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/group/app/cache:{tag}"),
        ])
        .output()
        .expect("needs skopeo: install with .ci/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(kiln_cache::KEY_LABEL), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_store_hits_misses_and_expires() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("cache");
    let cache = LayerCache::in_layout(dir.clone(), Duration::from_secs(3600), platform());
    let sources = exercise(&cache, scratch.path()).await;
    let [LayerSource::File(path)] = sources.as_slice() else {
        panic!("expected a file source, got {sources:?}");
    };
    assert!(path.starts_with(&dir));
    assert_eq!(
        std::fs::read(path).unwrap(),
        b"layer bytes of fresh".to_vec()
    );
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            &format!(
                "oci:{}:{}",
                dir.display(),
                Digest::sha256_of(b"fresh").hex()
            ),
        ])
        .output()
        .expect("needs skopeo: install with .ci/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn concurrent_layout_writers_lose_no_entry() {
    let scratch = tempfile::tempdir().unwrap();
    let dir: PathBuf = scratch.path().join("cache");
    let steps: Vec<StepToStore> = (0..16)
        .map(|i| layer_step(scratch.path(), &format!("step-{i}"), SystemTime::now()))
        .collect();
    std::thread::scope(|s| {
        for chunk in steps.chunks(4) {
            let dir = dir.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let cache = LayerCache::in_layout(dir, Duration::from_secs(3600), platform());
                for step in chunk {
                    rt.block_on(cache.store(step)).unwrap();
                }
            });
        }
    });
    let cache = LayerCache::in_layout(dir, Duration::from_secs(3600), platform());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for step in &steps {
        let got = rt
            .block_on(cache.lookup(&step.key, SystemTime::now()))
            .unwrap();
        assert!(
            matches!(got, Lookup::Hit { .. }),
            "{} lost: {got:?}",
            step.key
        );
    }
}
