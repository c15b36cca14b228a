//! The layer cache (`--cache`) against a real docker-registry: what reruns and
//! what hits after each kind of change, TTL expiry, `.dockerignore`d changes,
//! concurrent builds sharing one cache repository, a cache that cannot be
//! written, and the OCI-layout cache. Whether a RUN ran is read from its
//! output; what the image holds is read back from the registry with skopeo
//! and umoci.

mod support;

use std::path::Path;
use std::time::Duration;

use kiln_build::{BuildEvent, BuildOptions, BuildOutcome, SecretSource};
use support::{Fixture, Recorder, run_tokio, skopeo, umoci_unpack};

const DOCKERFILE: &str = r#"FROM BASE
ARG FLAVOR=plain
WORKDIR /app
COPY a.txt /app/a.txt
RUN echo "one $FLAVOR" > /app/r1 && echo ran-1
COPY b.txt /app/b.txt
RUN cat /app/b.txt > /app/r2 && echo ran-2
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /app/r3 && echo ran-3
ENV DONE=yes
"#;

struct Setup {
    registry: kiln_testkit::Registry,
    fx: Fixture,
    secret: tempfile::NamedTempFile,
}

fn setup(dockerfile: &str, files: &[(&str, &str)]) -> Setup {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "base/busybox:1", None)
        .expect("pushing the base image");
    let base = format!("{}/base/busybox:1", registry.host_port());
    let fx = Fixture::new(&dockerfile.replace("BASE", &base), files);
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cr3t").unwrap();
    Setup {
        registry,
        fx,
        secret,
    }
}

impl Setup {
    fn host(&self) -> String {
        self.registry.host_port()
    }

    /// A build as on a fresh CI runner: its own kiln dir, cache on, pushed to
    /// `app:TAG`, reproducible so identical inputs give identical digests.
    fn options(&self, tag: &str) -> (BuildOptions, tempfile::TempDir) {
        let runner = tempfile::tempdir().unwrap();
        let mut o = self.fx.options();
        o.kaniko_dir = runner.path().join("kiln");
        o.no_push = false;
        o.destinations = vec![format!("{}/app:{tag}", self.host())];
        o.registry.insecure = true;
        o.registry.insecure_pull = true;
        o.reproducible = true;
        o.cache.enabled = true;
        o.secrets.insert(
            "tok".into(),
            SecretSource::File(self.secret.path().to_path_buf()),
        );
        (o, runner)
    }

    fn build(&self, options: &BuildOptions) -> (BuildOutcome, Recorder) {
        let recorder = Recorder::default();
        let outcome = run_tokio(kiln_build::build(options, &recorder))
            .unwrap_or_else(|e| panic!("build failed: {e}"));
        (outcome, recorder)
    }

    /// Pulls `app:TAG` back with skopeo and unpacks it with umoci.
    fn pull(&self, tag: &str, into: &Path) -> std::path::PathBuf {
        let layout = into.join("layout");
        skopeo(|c| {
            c.args(["copy", "--src-tls-verify=false"])
                .arg(format!("docker://{}/app:{tag}", self.host()))
                .arg(format!("oci:{}:{tag}", layout.display()));
        });
        umoci_unpack(&layout, tag, into).join("rootfs")
    }
}

/// Which of the marked RUN steps ran (`ran-N` lines).
fn ran(recorder: &Recorder) -> Vec<String> {
    recorder
        .run_lines()
        .into_iter()
        .filter(|l| l.starts_with("ran-"))
        .collect()
}

/// (step text, hit) for every cache lookup.
fn lookups(recorder: &Recorder) -> Vec<(usize, bool)> {
    recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BuildEvent::CacheLookup { id, hit, .. } => Some((id.step, *hit)),
            _ => None,
        })
        .collect()
}

fn warnings(recorder: &Recorder) -> Vec<String> {
    recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Warning { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rebuild_with_no_change_runs_no_run() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (first_options, _r1) = s.options("first");
    let (first, rec) = s.build(&first_options);
    assert_eq!(ran(&rec), ["ran-1", "ran-2", "ran-3"]);
    // WORKDIR (step 3) and the three RUNs (5, 7, 8) are looked up; COPY is not
    // cached by default (kaniko's --cache-copy-layers=false).
    assert_eq!(
        lookups(&rec),
        [(3, false), (5, false), (7, false), (8, false)]
    );

    let (second_options, _r2) = s.options("second");
    let (second, rec) = s.build(&second_options);
    assert!(
        ran(&rec).is_empty(),
        "nothing may run: {:?}",
        rec.run_lines()
    );
    assert_eq!(lookups(&rec), [(3, true), (5, true), (7, true), (8, true)]);
    assert_eq!(second.digest, first.digest, "same inputs, same image");
    assert!(warnings(&rec).is_empty(), "{:?}", warnings(&rec));

    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("second", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("app/r1")).unwrap(),
        "one plain\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("app/r2")).unwrap(), "B\n");
    assert_eq!(
        std::fs::read_to_string(root.join("app/r3")).unwrap().trim(),
        "6"
    );
    assert!(!root.join("run/secrets/tok").exists());
}

#[test]
fn a_fully_cached_build_downloads_nothing() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (mut o, _r1) = s.options("first");
    o.cache.copy_layers = true;
    let (first, _) = s.build(&o);
    let (mut o, runner) = s.options("second");
    o.cache.copy_layers = true;
    let (second, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
    assert!(
        lookups(&rec).iter().all(|(_, hit)| *hit),
        "{:?}",
        lookups(&rec)
    );
    assert_eq!(second.digest, first.digest);
    // No layer (base or cached) reached the runner's store: the push mounted them.
    for layer in &second.layers {
        let (algorithm, hex) = layer.digest.split_once(':').unwrap();
        let blob = runner.path().join("kiln/blobs").join(algorithm).join(hex);
        assert!(!blob.exists(), "{} was downloaded", layer.digest);
    }
    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("second", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("app/a.txt")).unwrap(),
        "A\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("app/r2")).unwrap(), "B\n");
}

#[test]
fn copy_changes_rerun_exactly_the_steps_after_them() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (o, _r) = s.options("one");
    s.build(&o);
    std::fs::write(s.fx.path().join("b.txt"), "B changed\n").unwrap();
    let (o, _r) = s.options("two");
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-2", "ran-3"]);
    assert_eq!(
        lookups(&rec),
        [(3, true), (5, true), (7, false), (8, false)]
    );
    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("two", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("app/r2")).unwrap(),
        "B changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("app/r1")).unwrap(),
        "one plain\n"
    );
}

#[test]
fn a_build_arg_or_secret_change_misses() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (o, _r) = s.options("one");
    s.build(&o);

    let (mut o, _r) = s.options("flavoured");
    o.build_args.insert("FLAVOR".into(), "spicy".into());
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2", "ran-3"]);

    std::fs::write(s.secret.path(), "another secret").unwrap();
    let (o, _r) = s.options("new-secret");
    let (_, rec) = s.build(&o);
    assert_eq!(
        ran(&rec),
        ["ran-3"],
        "only the step mounting the secret reruns"
    );
    // The secret's value is nowhere in what was pushed to the cache.
    for event in rec.0.lock().unwrap().iter() {
        assert!(!format!("{event:?}").contains("another secret"));
    }
}

#[test]
fn a_different_platform_never_shares_a_layer() {
    let s = setup(
        "FROM scratch\nADD rootfs.tar /\nRUN echo made > /made && echo ran-1\n",
        &[],
    );
    let (o, _r) = s.options("native");
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1"]);
    let other = if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    // The RUN of a foreign platform's stage needs emulation available (the fixture's
    // busybox is the host's, so it runs natively under it anyway).
    let emulator = if cfg!(target_arch = "aarch64") {
        "x86_64"
    } else {
        "aarch64"
    };
    let (mut o, _r) = s.options("other");
    o.custom_platform = Some(other.into());
    o.emulators = vec![kiln_testkit::foreign::qemu_user_static(emulator)];
    let (_, rec) = s.build(&o);
    assert_eq!(
        ran(&rec),
        ["ran-1"],
        "a layer built for another platform must not be reused"
    );
    // And each platform hits its own entry afterwards.
    let (mut o, _r) = s.options("other-again");
    o.custom_platform = Some(other.into());
    o.emulators = vec![kiln_testkit::foreign::qemu_user_static(emulator)];
    let (_, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
}

#[test]
fn entries_older_than_the_ttl_miss() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (o, _r) = s.options("one");
    s.build(&o);
    std::thread::sleep(Duration::from_millis(2100));
    let (mut o, _r) = s.options("two");
    o.cache.ttl = Duration::from_secs(1);
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2", "ran-3"]);
    // A TTL the entries are within hits.
    let (mut o, _r) = s.options("three");
    o.cache.ttl = Duration::from_secs(3600);
    let (_, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
}

#[test]
fn changing_a_dockerignored_file_still_hits() {
    let s = setup(
        "FROM BASE\nCOPY . /ctx\nRUN ls /ctx > /listing && echo ran-1\n",
        &[
            (".dockerignore", "ignored.txt\nrootfs.tar\n"),
            ("kept.txt", "kept\n"),
            ("ignored.txt", "v1\n"),
        ],
    );
    let (mut o, _r) = s.options("one");
    o.cache.copy_layers = true;
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1"]);
    std::fs::write(s.fx.path().join("ignored.txt"), "v2, much longer\n").unwrap();
    let (mut o, _r) = s.options("two");
    o.cache.copy_layers = true;
    let (_, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
    assert_eq!(lookups(&rec), [(2, true), (3, true)]);
    // A change to a file that is copied does miss.
    std::fs::write(s.fx.path().join("kept.txt"), "changed\n").unwrap();
    let (mut o, _r) = s.options("three");
    o.cache.copy_layers = true;
    let (_, rec) = s.build(&o);
    assert_eq!(lookups(&rec), [(2, false), (3, false)]);
}

#[test]
fn concurrent_builds_sharing_one_cache_repo_are_both_correct() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (o1, _r1) = s.options("left");
    let (o2, _r2) = s.options("right");
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| s.build(&o1).0);
        let b = scope.spawn(|| s.build(&o2).0);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.digest, b.digest);
    for tag in ["left", "right"] {
        let unpacked = tempfile::tempdir().unwrap();
        let root = s.pull(tag, unpacked.path());
        assert_eq!(std::fs::read_to_string(root.join("app/r2")).unwrap(), "B\n");
    }
    let (o, _r) = s.options("after");
    let (c, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
    assert_eq!(c.digest, a.digest);
}

#[test]
fn a_cache_that_cannot_be_reached_only_warns() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (mut o, _r) = s.options("one");
    // A port nothing listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    o.cache.repo = Some(format!("127.0.0.1:{port}/cache"));
    o.registry
        .insecure_registries
        .push(format!("127.0.0.1:{port}"));
    let (outcome, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2", "ran-3"]);
    let warned = warnings(&rec);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("pushing to the layer cache failed")),
        "{warned:?}"
    );
    assert!(
        warned
            .iter()
            .any(|w| w.contains(&format!("127.0.0.1:{port}/cache"))),
        "{warned:?}"
    );
    assert!(
        !outcome.pushed.is_empty(),
        "the image itself is still pushed"
    );
}

#[test]
fn an_oci_layout_cache_serves_a_second_build() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let cache = tempfile::tempdir().unwrap();
    let repo = format!("oci:{}", cache.path().join("layers").display());
    let (mut o, _r) = s.options("one");
    o.cache.repo = Some(repo.clone());
    let (first, _) = s.build(&o);
    let (mut o, _r) = s.options("two");
    o.cache.repo = Some(repo);
    let (second, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
    assert_eq!(first.digest, second.digest);
    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("two", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("app/r1")).unwrap(),
        "one plain\n"
    );
}

#[test]
fn a_bind_mount_content_change_misses() {
    let s = setup(
        "FROM BASE\nRUN --mount=type=bind,source=input.txt,target=/in cat /in > /out && echo ran-1\nRUN echo later && echo ran-2\n",
        &[("input.txt", "first\n")],
    );
    let (o, _r) = s.options("one");
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2"]);
    let (o, _r) = s.options("same");
    let (_, rec) = s.build(&o);
    assert!(ran(&rec).is_empty());
    std::fs::write(s.fx.path().join("input.txt"), "second\n").unwrap();
    let (o, _r) = s.options("two");
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2"]);
    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("two", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("out")).unwrap(),
        "second\n"
    );
}

#[test]
fn lookups_go_on_after_a_miss() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("layers");
    let (mut o, _r) = s.options("one");
    o.cache.repo = Some(format!("oci:{}", dir.display()));
    let (_, rec) = s.build(&o);
    // Forget the entry of the first RUN (step 5) only.
    let key = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            BuildEvent::CacheLookup { id, key, .. } if id.step == 5 => Some(key.clone()),
            _ => None,
        })
        .unwrap();
    let hex = key.strip_prefix("sha256:").unwrap();
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    let before = manifests.len();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != hex);
    assert_eq!(manifests.len(), before - 1);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let (mut o, _r) = s.options("two");
    o.cache.repo = Some(format!("oci:{}", dir.display()));
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1"], "only the forgotten step runs");
    assert_eq!(lookups(&rec), [(3, true), (5, false), (7, true), (8, true)]);
    let unpacked = tempfile::tempdir().unwrap();
    let root = s.pull("two", unpacked.path());
    assert_eq!(
        std::fs::read_to_string(root.join("app/r1")).unwrap(),
        "one plain\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("app/r2")).unwrap(), "B\n");
}

#[test]
fn no_push_cache_looks_up_but_never_stores() {
    let s = setup(DOCKERFILE, &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let (mut o, _r) = s.options("one");
    o.cache.no_push = true;
    s.build(&o);
    let (o, _r) = s.options("two");
    let (_, rec) = s.build(&o);
    assert_eq!(ran(&rec), ["ran-1", "ran-2", "ran-3"]);
}

#[test]
fn a_cache_with_nowhere_to_live_is_a_warning() {
    let fx = Fixture::new("FROM scratch\nADD rootfs.tar /\nRUN echo ran-1\n", &[]);
    let mut o = fx.options();
    o.cache.enabled = true;
    let recorder = Recorder::default();
    run_tokio(kiln_build::build(&o, &recorder)).unwrap();
    assert_eq!(ran(&recorder), ["ran-1"]);
    let warned = warnings(&recorder);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("building without the layer cache")),
        "{warned:?}"
    );
}
