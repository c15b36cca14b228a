//! RUN --mount targets and cache mount sharing, checked in the layers kiln
//! writes.
//!
//! Mount targets missing from the stage root: BuildKit (since v0.11,
//! `executor/stubs.go`, `RemoveMountStubsRecursive` set by the Dockerfile
//! frontend) creates them for the run, then removes every stub it created
//! that is still empty, deepest first, restoring the parent's timestamps; a
//! stub the command put something in stays, with runc's mode 0755; an
//! existing target is never removed. kiln does the same (buildah 1.28 leaves
//! the stubs, which is its deviation).

mod support;

use std::collections::BTreeMap;

use support::{Fixture, run_tokio};

/// Serialises the tests of this file. kiln-sandbox's RUN supervisor is forked and
/// never execs, so it holds a copy of every descriptor the test process has open,
/// including another test's cache-mount lock, until that RUN ends: concurrent builds
/// in one process would see each other's caches as busy. (One build per process, as
/// the executor runs, is not affected.)
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One entry of a layer tar: (mode, uid, gid, kind).
type LayerEntry = (u32, u64, u64, char);

/// The entries of every layer of the layout's image, in manifest order.
fn layers(layout: &std::path::Path) -> Vec<BTreeMap<String, LayerEntry>> {
    let blob = |d: &str| support::layout_blob(layout, d);
    let (manifest, _) = support::layout_documents(layout);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let compressed = blob(layer["digest"].as_str().unwrap());
            support::gzip_layer_entries(&compressed, |path, h| {
                let kind = match h.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Regular => 'f',
                    tar::EntryType::Symlink => 'l',
                    _ => '?',
                };
                (
                    path,
                    (
                        h.mode().unwrap() & 0o7777,
                        h.uid().unwrap(),
                        h.gid().unwrap(),
                        kind,
                    ),
                )
            })
            .into_iter()
            .collect()
        })
        .collect()
}

/// Builds the fixture into an OCI layout and returns its layers' entries.
fn build_layers(
    fx: &Fixture,
    options: kiln_build::BuildOptions,
) -> Vec<BTreeMap<String, LayerEntry>> {
    let layout = fx.work.path().join("layout");
    let mut options = options;
    options.oci_layout_path = Some(layout.clone());
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    layers(&layout)
}

#[test]
fn missing_mount_targets_are_removed_unless_the_command_filled_them() {
    let _serial = serial();
    let fx = Fixture::new(
        concat!(
            "FROM scratch\n",
            "ADD rootfs.tar /\n",
            "RUN mkdir -p /test/qux /test/deep\n",
            "RUN --mount=type=tmpfs,target=/test/foo",
            " --mount=type=cache,target=/test/bar/x/y",
            " --mount=type=bind,source=in.txt,target=/test/baz/x",
            " --mount=type=secret,id=tok,target=/test/sec/tok",
            " --mount=type=tmpfs,target=/test/qux",
            " touch /test/baz/keep\n",
            "RUN --mount=type=bind,source=in.txt,target=/mnt/input.txt",
            " --mount=type=cache,target=/test/deep/cache",
            " cp /mnt/input.txt /copy.txt\n",
        ),
        &[("in.txt", "input\n"), ("tok.txt", "secret\n")],
    );
    let mut options = fx.options();
    options.secrets.insert(
        "tok".into(),
        kiln_build::SecretSource::File(fx.path().join("tok.txt")),
    );
    let layers = build_layers(&fx, options);
    // rootfs, mkdir, the two RUNs with mounts.
    assert_eq!(layers.len(), 4, "{layers:#?}");

    let under_test: BTreeMap<&str, LayerEntry> = layers[2]
        .iter()
        .filter(|(p, _)| p.starts_with("test/"))
        .map(|(p, e)| (p.as_str(), *e))
        .collect();
    // The stub the command filled stays, as runc made it (0755, root); its parent
    // changed because of it. Every other stub is gone, recursively (bar/x/y, sec/tok,
    // foo, baz/x); the existing /test/qux is not touched.
    assert_eq!(
        under_test,
        BTreeMap::from([
            ("test/", (0o755, 0, 0, 'd')),
            ("test/baz/", (0o755, 0, 0, 'd')),
            ("test/baz/keep", (0o644, 0, 0, 'f')),
        ]),
        "layer of the RUN with mounts: {:#?}",
        layers[2]
    );

    // Nested stubs under a missing /mnt and an existing dir: the layer has the
    // command's file only, neither /mnt nor /test/deep/cache.
    let paths: Vec<&str> = layers[3].keys().map(String::as_str).collect();
    assert_eq!(paths, vec!["copy.txt"], "{:#?}", layers[3]);
}

/// Polls for `path` (written by a RUN in another thread), for at most two minutes.
fn wait_for(path: &std::path::Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The host directory of the one cache id the fixture's builds used (`data/`, the
/// cache every sharing mode starts from).
fn cache_data_dir(fx: &Fixture) -> std::path::PathBuf {
    let root = fx.work.path().join("kiln/cache-mounts");
    let ids: Vec<_> = fs_err::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].join("data")
}

/// Builds `dockerfile` (a file of the fixture's context) in a thread, into `layout`.
fn build_in_thread(
    fx: &Fixture,
    dockerfile: &str,
    layout: std::path::PathBuf,
) -> std::thread::JoinHandle<()> {
    let mut options = fx.options();
    options.dockerfile = kiln_build::DockerfileSource::Path(dockerfile.into());
    options.oci_layout_path = Some(layout);
    std::thread::spawn(move || {
        run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    })
}

/// A RUN holds the cache with `holder` sharing until the test releases it; meanwhile
/// another build's RUN lists the cache it gets with `other` sharing. Returns that list.
fn cache_seen_by_a_second_user(holder: &str, other: &str, other_waits: bool) -> String {
    let hold = format!(
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=cache,id=c,sharing={holder},target=/c sh -c 'touch /c/a-running; i=0; while [ ! -e /c/release ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; touch /c/a-done'\n"
    );
    let look = format!(
        "FROM scratch\nADD rootfs.tar /\nRUN --mount=type=cache,id=c,sharing={other},target=/c sh -c 'ls /c | tr \"\\n\" \" \" > /seen'\n"
    );
    let fx = Fixture::new(
        "",
        &[("hold.Dockerfile", &hold), ("look.Dockerfile", &look)],
    );
    let holder_build = build_in_thread(&fx, "hold.Dockerfile", fx.work.path().join("hold"));
    let data = cache_data_dir_when_running(&fx);
    let layout = fx.work.path().join("look");
    let other_build = build_in_thread(&fx, "look.Dockerfile", layout.clone());
    if other_waits {
        // Give a wrongly non-waiting RUN time to run before the holder is done.
        std::thread::sleep(std::time::Duration::from_secs(1));
        fs_err::write(data.join("release"), "").unwrap();
        other_build.join().unwrap();
    } else {
        other_build.join().unwrap();
        fs_err::write(data.join("release"), "").unwrap();
    }
    holder_build.join().unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = support::umoci_unpack(&layout, "latest", unpacked.path());
    fs_err::read_to_string(bundle.join("rootfs/seen")).unwrap()
}

/// Waits until the holder's RUN runs and returns its cache directory.
fn cache_data_dir_when_running(fx: &Fixture) -> std::path::PathBuf {
    let root = fx.work.path().join("kiln/cache-mounts");
    wait_for(&root);
    let start = std::time::Instant::now();
    loop {
        if fs_err::read_dir(&root).unwrap().next().is_some() {
            let data = cache_data_dir(fx);
            wait_for(&data.join("a-running"));
            return data;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(120));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn shared_cache_mounts_are_used_concurrently() {
    let _serial = serial();
    assert_eq!(
        cache_seen_by_a_second_user("shared", "shared", false),
        "a-running "
    );
}

#[test]
fn private_cache_mount_gets_a_fresh_cache_while_the_shared_one_is_in_use() {
    let _serial = serial();
    assert_eq!(cache_seen_by_a_second_user("private", "private", false), "");
}

#[test]
fn locked_cache_mount_waits_for_the_other_run() {
    let _serial = serial();
    assert_eq!(
        cache_seen_by_a_second_user("locked", "locked", true),
        "a-done a-running release "
    );
}

/// BuildKit never makes a shared user wait: while a locked RUN holds the cache,
/// a shared one gets another.
#[test]
fn shared_cache_mount_does_not_wait_for_a_locked_one() {
    let _serial = serial();
    assert_eq!(cache_seen_by_a_second_user("locked", "shared", false), "");
}

/// id names the cache whatever the target; a new cache gets the mount's uid, gid and
/// mode; a free private cache is reused.
#[test]
fn cache_mount_id_owner_and_mode() {
    let _serial = serial();
    let fx = Fixture::new(
        concat!(
            "FROM scratch\n",
            "ADD rootfs.tar /\n",
            "RUN --mount=type=cache,id=pkgs,target=/a,uid=1000,gid=1001,mode=0700",
            " sh -c 'stat -c \"%u %g %a\" /a > /a-stat; echo kept > /a/f'\n",
            "RUN --mount=type=cache,id=pkgs,target=/b,sharing=private cat /b/f > /b-f\n",
        ),
        &[],
    );
    let (options, layout) = fx.layout_options();
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = support::umoci_unpack(&layout, "latest", unpacked.path());
    let read = |p: &str| fs_err::read_to_string(bundle.join("rootfs").join(p)).unwrap();
    assert_eq!(read("a-stat"), "1000 1001 700\n");
    assert_eq!(read("b-f"), "kept\n");
}
