//! The build dir is removed off the critical path and never accumulates: many builds
//! in a row with one kaniko dir leave only the blob store behind.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Fixture, run_tokio};

/// Every path below `dir` (files, dirs, links), counted.
fn count_entries(dir: &Path) -> usize {
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() {
                count_entries(&e.path())
            } else {
                0
            }
        })
        .sum()
}

fn top_level(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn twenty_builds_in_a_row_keep_the_kaniko_dir_bounded() {
    let files: Vec<(String, String)> = (0..300)
        .map(|i| (format!("many/f{i}.txt"), format!("file {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let fx = Fixture::new(
        "FROM scratch\nADD rootfs.tar /\nCOPY many /many\nRUN echo ran > /ran.txt\n",
        &refs,
    );
    let (mut options, _layout) = fx.layout_options();
    // The same image every time, so the shared blob store holds the same blobs and
    // anything else that grew would be left over by a build.
    options.reproducible = true;
    let kaniko = options.kaniko_dir.clone();
    let trash = kaniko.join("trash");

    let mut blobs_after_first = None;
    let mut most_pending = 0;
    for build in 0..20 {
        let outcome = run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver))
            .unwrap_or_else(|e| panic!("build {build}: {e}"));
        assert_eq!(outcome.layers.len(), 3, "build {build}");
        // The result is there; the build's own dir is no longer under its name.
        assert_eq!(
            top_level(&kaniko),
            vec!["blobs", "trash"],
            "after build {build}"
        );
        most_pending = most_pending.max(top_level(&trash).len());
        let blobs = count_entries(&kaniko.join("blobs"));
        assert_eq!(
            *blobs_after_first.get_or_insert(blobs),
            blobs,
            "build {build}"
        );
    }
    let start = Instant::now();
    while !top_level(&trash).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the trash still holds {:?}",
            top_level(&trash)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("at most {most_pending} build dir(s) were waiting for removal at a build's end");
    assert_eq!(top_level(&kaniko), vec!["blobs", "trash"]);
    assert_eq!(count_entries(&kaniko), 2 + blobs_after_first.unwrap());
}
