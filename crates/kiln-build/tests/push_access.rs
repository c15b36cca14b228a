//! kaniko's push permission check against a real docker-registry behind the
//! testkit's proxy, whose request log shows what reached the registry when: the
//! check (a `HEAD` of the empty blob in the destination) is in flight together
//! with the base's manifest request instead of before it, in the sequential
//! stage loop and in the parallel scheduler; a failing check is the build's
//! error, no step runs and nothing is uploaded.

mod support;

use kiln_build::{BuildEvent, BuildOptions};
use kiln_testkit::proxy::ProxiedRequest;
use kiln_testkit::{FailRule, FaultProxy, Faults, Registry};
use support::*;

/// The hex of the empty blob's digest, which the check asks about.
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A registry holding busybox as `base/busybox:1`, behind a proxy with `faults`.
fn registry_with_base(faults: Faults) -> (Registry, FaultProxy) {
    let registry = Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "base/busybox:1", None)
        .unwrap();
    let proxy = FaultProxy::in_front_of(&registry, faults);
    (registry, proxy)
}

fn options(fx: &Fixture, destination: &str, jobs: usize) -> BuildOptions {
    let mut o = fx.options();
    o.no_push = false;
    o.destinations = vec![destination.to_string()];
    o.registry.insecure = true;
    o.registry.insecure_pull = true;
    o.jobs = jobs;
    o
}

fn the<'a>(
    log: &'a [ProxiedRequest],
    what: &str,
    is: impl Fn(&ProxiedRequest) -> bool,
) -> &'a ProxiedRequest {
    log.iter()
        .find(|r| is(r))
        .unwrap_or_else(|| panic!("no {what} in {log:#?}"))
}

/// Through a proxy adding 100 ms per request, the check's `HEAD` and the base's
/// manifest `GET` each arrive before the other is answered.
#[test]
fn the_check_runs_beside_the_base_pull() {
    for jobs in [1, 2] {
        let (_registry, proxy) =
            registry_with_base(Faults::none().shape(kiln_testkit::Shaping::new(1000, 100)));
        let via = proxy.host_port();
        let fx = Fixture::new(
            &format!("FROM {via}/base/busybox:1\nCOPY small.txt /small.txt\n"),
            &[("small.txt", "small\n")],
        );
        let outcome = run_tokio(kiln_build::build(
            &options(&fx, &format!("{via}/checked/app:1"), jobs),
            &kiln_build::NoopObserver,
        ))
        .unwrap();
        assert_eq!(outcome.pushed, vec![format!("{via}/checked/app:1")]);
        let log = proxy.requests();
        let check = the(&log, "check", |r| {
            r.method == "HEAD" && r.path.contains("/checked/app/") && r.path.contains(EMPTY)
        });
        let manifest = the(&log, "base manifest GET", |r| {
            r.method == "GET" && r.path.contains("/base/busybox/manifests/")
        });
        assert!(
            check.arrived < manifest.answered && manifest.arrived < check.answered,
            "--jobs {jobs}: the check and the pull took turns: {log:#?}"
        );
    }
}

/// A destination that refuses the check fails the build with the check's error,
/// whichever stage loop runs; no step runs and nothing is uploaded or tagged.
#[test]
fn a_refused_check_fails_the_build_before_any_step() {
    for jobs in [1, 2] {
        let refuse = FailRule::status(403, usize::MAX)
            .code("DENIED")
            .matching(Some("HEAD"), Some(EMPTY));
        let (_registry, proxy) = registry_with_base(Faults::none().fail(refuse));
        let via = proxy.host_port();
        let fx = Fixture::new(
            &format!("FROM {via}/base/busybox:1\nCOPY small.txt /small.txt\n"),
            &[("small.txt", "small\n")],
        );
        let destination = format!("{via}/denied/app:1");
        let recorder = Recorder::default();
        let err = run_tokio(kiln_build::build(
            &options(&fx, &destination, jobs),
            &recorder,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!(
                "checking push access to {destination} before building"
            )) && err.contains("--skip-push-permission-check"),
            "--jobs {jobs}: {err}"
        );
        let steps = recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, BuildEvent::StepStarted { .. }))
            .count();
        assert_eq!(steps, 0, "--jobs {jobs}: a step ran");
        let log = proxy.requests();
        assert!(
            !log.iter()
                .any(|r| matches!(r.method.as_str(), "POST" | "PATCH" | "PUT")),
            "--jobs {jobs}: something was pushed: {log:#?}"
        );
    }
}
