//! Bad input gives one clear error naming what and where, pushes nothing and
//! leaves the user's files untouched.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_build::{BuildEvent, ContextSource};
use support::{Fixture, Recorder, run_tokio};

fn build_err(options: &kiln_build::BuildOptions) -> String {
    match run_tokio(kiln_build::build(options, &kiln_build::NoopObserver)) {
        Ok(o) => panic!("the build should fail, it made {}", o.digest),
        Err(e) => e.to_string(),
    }
}

/// Every file under `dir` with its content and mode, to prove nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs_err::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
                out.insert(p, (Vec::new(), m.mode()));
            } else {
                out.insert(p.clone(), (fs_err::read(&p).unwrap(), m.mode()));
            }
        }
    }
    out
}

#[test]
fn missing_context_and_missing_dockerfile() {
    let fx = Fixture::new("FROM scratch\n", &[]);
    let mut options = fx.options();
    options.context = ContextSource::Dir(fx.path().join("nope"));
    let err = build_err(&options);
    assert!(
        err.contains("nope") && err.contains("no such file"),
        "{err}"
    );

    let mut options = fx.options();
    options.dockerfile = kiln_build::DockerfileSource::Path("sub/Dockerfile.missing".into());
    let err = build_err(&options);
    assert!(
        err.contains("sub/Dockerfile.missing") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn parse_error_and_unknown_target_name_the_location() {
    let fx = Fixture::new("FROM scratch\nCOPY\n", &[]);
    let err = build_err(&fx.options());
    assert!(err.contains("Dockerfile:2"), "{err}");

    let fx = Fixture::new("FROM scratch AS one\n", &[]);
    let mut options = fx.options();
    options.target = Some("two".into());
    let err = build_err(&options);
    assert!(err.contains("\"two\" could not be found"), "{err}");
}

#[test]
fn failing_run_names_the_step_pushes_nothing_and_keeps_the_context() {
    let registry = kiln_testkit::Registry::start_plain();
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nRUN echo about to fail && exit 3\nRUN echo never\n",
        &[("keep.txt", "mine\n")],
    );
    let before = snapshot(fx.path());
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.destinations = vec![format!("{}/kiln/failing:1", registry.host_port())];
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[stage 1/1] STEP 3/4"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains('3'), "{err}");
    assert_eq!(recorder.run_lines(), vec!["about to fail".to_string()]);
    assert_eq!(before, snapshot(fx.path()), "the context was modified");
    let repos = registry
        .storage_dir()
        .join("docker/registry/v2/repositories");
    // The push pipeline may have uploaded the ADD layer; no manifest, no tag.
    assert!(
        !repos.join("kiln/failing/_manifests").exists(),
        "a manifest was pushed"
    );
}

#[test]
fn missing_copy_source_names_it_and_the_line() {
    let fx = Fixture::new(
        "FROM scratch\nCOPY present.txt /\nCOPY absent.txt /\n",
        &[("present.txt", "x")],
    );
    let err = build_err(&fx.options());
    assert!(
        err.contains("Dockerfile:3") && err.contains("absent.txt"),
        "{err}"
    );
}

#[test]
fn unset_required_build_arg_and_unused_build_arg() {
    let fx = Fixture::new("ARG BASE\nFROM ${BASE:?set_BASE_with_--build-arg}\n", &[]);
    let err = build_err(&fx.options());
    assert!(
        err.contains("set_BASE_with_--build-arg") && err.contains("Dockerfile:2"),
        "{err}"
    );

    let fx = Fixture::new("FROM scratch\nCOPY rootfs.tar /\n", &[]);
    let mut options = fx.options();
    options.build_args.insert("NOT_DECLARED".into(), "x".into());
    let recorder = Recorder::default();
    run_tokio(kiln_build::build(&options, &recorder)).unwrap();
    let warned =
        recorder.0.lock().unwrap().iter().any(
            |e| matches!(e, BuildEvent::Warning { message } if message.contains("NOT_DECLARED")),
        );
    assert!(warned, "an unused build arg is reported");
}

#[test]
fn unreachable_registry_names_it() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fx = Fixture::new(
        &format!("FROM 127.0.0.1:{port}/nothing/here:1\nRUN true\n"),
        &[],
    );
    let mut options = fx.options();
    options.registry.insecure_pull = true;
    let err = build_err(&options);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("Dockerfile:1"), "{err}");
}

#[test]
fn unreachable_destination_fails_before_building() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fx = Fixture::new("FROM scratch\nCOPY rootfs.tar /\n", &[]);
    let mut options = fx.options();
    options.no_push = false;
    options.registry.insecure = true;
    options.destinations = vec![format!("127.0.0.1:{port}/kiln/app:1")];
    let recorder = Recorder::default();
    let err = run_tokio(kiln_build::build(&options, &recorder))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}/kiln/app:1")),
        "{err}"
    );
    assert!(recorder.step_lines().is_empty(), "nothing was built");
}
