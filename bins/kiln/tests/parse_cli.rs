//! `kiln parse` through the real binary: output formats, exit codes and
//! `FILE:LINE:COL: message` errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("parse")
        .args(args)
        .output()
        .expect("running kiln")
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("KILN_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    };
    assert!(
        dir.join("buildkit").is_dir(),
        "needs the conformance data at {} (set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

#[test]
fn buildkit_dump_matches_the_golden_result() {
    let case = conformance_dir()
        .join("buildkit/frontend/dockerfile/parser/testfiles/lk4d4-the-edge-case-generator");
    let o = kiln(&[case.join("Dockerfile").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        std::fs::read_to_string(case.join("result")).unwrap()
    );
    let o = kiln(&[
        "--format",
        "buildkit",
        case.join("Dockerfile").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
}

/// Runs the default `kiln parse FILE` on `content` and checks that it fails
/// with exactly `expected` (`{f}` stands for the file's path) and no dump.
fn check_errors(content: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "Dockerfile", content);
    let o = kiln(&[&f]);
    let want: String = expected
        .iter()
        .map(|e| format!("{}\n", e.replace("{f}", &f)))
        .collect();
    assert_eq!(o.status.code(), Some(1), "{content:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), want, "{content:?}");
    assert!(stdout(&o).is_empty(), "{content:?}: dumped {}", stdout(&o));
}

#[test]
fn default_dump_reports_from_without_argument() {
    check_errors(
        "FROM\nRUN true\n",
        &["{f}:1:1: FROM requires either one or three arguments"],
    );
}

#[test]
fn default_dump_reports_unknown_instructions() {
    check_errors(
        "FROM alpine\nFOO bar\n",
        &["{f}:2:1: unknown instruction: FOO"],
    );
}

#[test]
fn default_dump_reports_unknown_flags() {
    check_errors(
        "FROM alpine\nCOPY --nope a b\n",
        &["{f}:2:1: unknown flag: --nope"],
    );
}

#[test]
fn default_dump_reports_invalid_flag_values() {
    check_errors(
        "FROM alpine\nRUN --network=bogus true\n",
        &["{f}:2:1: network mode \"bogus\" not supported"],
    );
    check_errors(
        "FROM alpine\nHEALTHCHECK --interval=abc CMD true\n",
        &["{f}:2:1: invalid --interval=abc: invalid duration \"abc\""],
    );
}

#[test]
fn default_dump_reports_instructions_before_the_first_from() {
    check_errors(
        "CMD [\"x\"]\n",
        &["{f}:1:1: no build stage in current context: CMD before the first FROM"],
    );
}

#[test]
fn default_dump_reports_what_the_plan_rejects() {
    check_errors(
        "ARG BASE\nFROM $BASE\n",
        &["{f}:2:1: base name ($BASE) should not be blank"],
    );
    check_errors(
        "FROM alpine AS a\nCOPY --from=a x y\n",
        &["{f}:2:1: --from=a refers to the current build stage"],
    );
}

#[test]
fn default_dump_reports_every_error_in_the_file_in_order() {
    check_errors(
        "FROM\nFROM alpine AS a\nFOO bar\nRUN --network=bogus true\nCOPY --nope --user=me x y\n",
        &[
            "{f}:1:1: FROM requires either one or three arguments",
            "{f}:3:1: unknown instruction: FOO",
            "{f}:4:1: network mode \"bogus\" not supported",
            "{f}:5:1: unknown flag: --nope",
            "{f}:5:1: unknown flag: --user",
        ],
    );
}

/// BuildKit's parser golden files: the valid ones dump exactly as BuildKit's
/// `result`; the ones a build would reject (unknown flags, CMD before any
/// FROM ...) now report the library's errors instead of a dump.
#[test]
fn golden_files_dump_identically_or_report_every_error() {
    let dir = conformance_dir().join("buildkit/frontend/dockerfile/parser/testfiles");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let (mut valid, mut invalid) = (0, 0);
    for case in &cases {
        let file = case.join("Dockerfile");
        let file = file.to_str().unwrap();
        let o = kiln(&[file]);
        let bytes = std::fs::read(file).unwrap();
        let checked = kiln_dockerfile::parse(file, &bytes).and_then(|df| {
            df.plan(&kiln_dockerfile::PlanOptions {
                build_args: Default::default(),
                target: None,
                target_platform: kiln_dockerfile::Platform::host(),
                build_platform: kiln_dockerfile::Platform::host(),
            })
        });
        match checked {
            Ok(_) => {
                valid += 1;
                assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
                let golden = std::fs::read_to_string(case.join("result")).unwrap();
                assert_eq!(stdout(&o), golden, "{file}");
            }
            Err(diags) => {
                invalid += 1;
                assert_eq!(o.status.code(), Some(1), "{file}");
                assert!(stdout(&o).is_empty(), "{file}");
                let want: String = diags.iter().map(|d| format!("{d}\n")).collect();
                assert_eq!(stderr(&o), want, "{file}");
            }
        }
    }
    eprintln!(
        "buildkit golden files through kiln parse: {valid} dumped identically, {invalid} reported as errors"
    );
    assert!(valid > 0 && invalid > 0, "{valid} valid, {invalid} invalid");
}

#[test]
fn json_ast_is_the_typed_model() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "Dockerfile",
        "FROM alpine AS build\nRUN --network=none echo hi\n",
    );
    let o = kiln(&["--format=json", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["stages"][0]["name"], "build");
    assert_eq!(v["stages"][0]["from"]["image"], "alpine");
    let run = &v["stages"][0]["instructions"][0];
    assert_eq!(run["command"]["instruction"], "RUN");
    assert_eq!(run["command"]["network"], "none");
    assert_eq!(run["span"]["start"]["line"], 2);
}

#[test]
fn every_error_is_printed_with_its_position_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "Dockerfile",
        "FROM alpine\nFOO bar\n  USER\nCOPY --nope a b\n",
    );
    let o = kiln(&["--format", "json", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{f}:2:1: unknown instruction: FOO\n{f}:3:3: USER requires exactly one argument\n{f}:4:1: unknown flag: --nope\n"
        )
    );
    assert!(stdout(&o).is_empty());
    let f = write(dir.path(), "Empty", "# nothing\n");
    let o = kiln(&[&f]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("{f}:1:1: file with no instructions\n"));
}

#[test]
fn reads_standard_input_for_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kiln");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM a\nRUN x \\\n  y\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "(from \"a\")\n(run \"x   y\")\n");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "Dockerfile", "FROM alpine\n");
    for args in [
        vec![],
        vec!["--bogus", f.as_str()],
        vec!["--format", "yaml", f.as_str()],
        vec!["--format"],
        vec![f.as_str(), f.as_str()],
        vec!["--target", "x", f.as_str()],
        vec!["--plan", "--platform", "linux", f.as_str()],
    ] {
        let o = kiln(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("usage: kiln parse"), "{args:?}");
    }
    let o = kiln(&[dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing"));
}

#[test]
fn plan_prints_stages_in_build_order_with_expanded_bases() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "Dockerfile",
        "ARG BASE=alpine\nARG TAG=3.19\nFROM $BASE:$TAG AS build\nFROM busybox AS unused\nFROM build AS test\nFROM scratch AS final\nCOPY --from=test / /\n",
    );
    let o = kiln(&["--plan", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let platform = "[linux/";
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("stage 0 (build): FROM alpine:3.19 ") && lines[0].contains(platform)
    );
    assert!(
        lines[1].starts_with("stage 2 (test): FROM stage 0 (build) ")
            && lines[1].ends_with("needs 0")
    );
    assert!(
        lines[2].starts_with("stage 3 (final): FROM scratch ") && lines[2].ends_with("needs 2")
    );

    let o = kiln(&[
        "--plan",
        "--build-arg",
        "TAG=edge",
        "--build-arg=UNUSED=1",
        "--target",
        "build",
        "--platform",
        "linux/arm64",
        &f,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "stage 0 (build): FROM alpine:edge [linux/arm64]\n"
    );
    assert!(stderr(&o).contains("\"UNUSED\" is not consumed"));

    let o = kiln(&["--plan", "--format", "json", "--target", "test", &f]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["stages"][1]["base"]["stage"], 0);
    assert_eq!(v["stages"][0]["base"]["image"], "alpine:3.19");

    let o = kiln(&["--plan", "--target", "nope", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("target stage \"nope\" could not be found"));
}
