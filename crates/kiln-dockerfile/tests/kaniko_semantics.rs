//! Parse-level golden checks on kaniko's corpus (the files its README marks
//! in bold): ENV/LABEL quoting, ARG scoping and FROM substitution, invalid
//! JSON as shell form. Expected values are what `docker build` produced.

mod common;

use std::collections::BTreeMap;

use kiln_dockerfile::instructions::{Command, CommandLine};
use kiln_dockerfile::{Base, Instruction, Plan, PlanOptions, PlannedStage, StageEnv, parse};

fn plan(name: &str, args: &[(&str, &str)], target: Option<&str>) -> Plan {
    let dir = common::conformance_dir().join("kaniko-dockerfiles/integration");
    let path = if name.starts_with("issue-") {
        dir.join("dockerfiles-with-context")
            .join(name)
            .join("Dockerfile")
    } else {
        dir.join("dockerfiles").join(name)
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let df = parse(name, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let opts = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(str::to_string),
        ..PlanOptions::default()
    };
    df.plan(&opts).unwrap_or_else(|e| panic!("{e}"))
}

/// Walks the plan like the engine: stage bases inherit their parent's final
/// scope; returns each stage's final env and expanded instructions.
fn walk(plan: &Plan) -> BTreeMap<usize, (StageEnv, Vec<Instruction>)> {
    let mut out: BTreeMap<usize, (StageEnv, Vec<Instruction>)> = BTreeMap::new();
    for s in &plan.stages {
        let mut env = s.env.clone();
        if let Base::Stage(p) = s.base {
            env.inherit(&out[&p].0);
        }
        let mut done = Vec::new();
        for ins in &s.instructions {
            let e = env.expand(ins).unwrap_or_else(|e| panic!("{e}"));
            env.apply(&e);
            done.push(e);
        }
        out.insert(s.index, (env, done));
    }
    out
}

fn bases(plan: &Plan) -> Vec<Base> {
    plan.stages
        .iter()
        .map(|s: &PlannedStage| s.base.clone())
        .collect()
}

fn image(s: &str) -> Base {
    Base::Image(s.to_string())
}

#[test]
fn env_forms_and_same_instruction_references() {
    let p = plan("Dockerfile_test_env", &[], None);
    let (env, _) = &walk(&p)[&0];
    let get = |k: &str| env.lookup(k).map(str::to_string);
    let expected = [
        ("hey", "hello"),
        ("PATH", "something"),
        (
            "testmultipleeq",
            "this=is a=test string=with a=lot of=equals",
        ),
        ("first", "foo"),
        ("second", "foo2"),
        ("third", "foo2:/third"),
        ("myName", "John Doe"),
        ("myDog", "Rex The Dog"),
        ("myCat", "fluffy"),
        ("test", "value value2"),
        ("test1", "a'b'c"),
        ("test2", "a\"b\"c"),
        ("test3", "a b"),
        ("name2", "b c"),
        ("test4", "a\"b"),
        ("test5", "a\\\"b"),
        ("test6", "a\\'b"),
        ("atomic", "two"),
        ("newatomic", "one"),
        ("newenv", "/newenv"),
    ];
    for (k, v) in expected {
        assert_eq!(get(k).as_deref(), Some(v), "{k}");
    }
}

#[test]
fn labels_expose_volume_workdir_expand() {
    let (_, ins) = walk(&plan("Dockerfile_test_label", &[], None))
        .remove(&0)
        .unwrap();
    let labels: Vec<(String, String)> = ins
        .iter()
        .filter_map(|i| match &i.command {
            Command::Label(kv) => Some(kv.pairs.iter().map(|p| (p.key.clone(), p.value.clone()))),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(labels[1], ("baz".into(), "bat".into()));
    assert_eq!(labels[2], ("label1".into(), "mylabel".into()));
    assert_eq!(labels.len(), 6);

    let (_, ins) = walk(&plan("Dockerfile_test_expose", &[], None))
        .remove(&0)
        .unwrap();
    let ports: Vec<String> = ins
        .iter()
        .filter_map(|i| match &i.command {
            Command::Expose(w) => Some(w.values.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(ports, ["80/tcp", "81/udp", "82/tcp", "83/udp", "83/tcp"]);

    let (_, ins) = walk(&plan("Dockerfile_test_volume", &[], None))
        .remove(&0)
        .unwrap();
    let vols: Vec<String> = ins
        .iter()
        .filter_map(|i| match &i.command {
            Command::Volume(w) => Some(w.values.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(vols, ["/foo/bar", "/tmp", "/qux/quux", "/baz/bat"]);

    let p = plan(
        "Dockerfile_test_workdir",
        &[("workdir", "/arg/workdir")],
        None,
    );
    let (_, ins) = walk(&p).remove(&0).unwrap();
    let dirs: Vec<String> = ins
        .iter()
        .filter_map(|i| match &i.command {
            Command::Workdir(w) => Some(w.value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        dirs,
        [
            "test",
            "workdir",
            "/new/dir",
            "/another/new/dir/newdir",
            "/another/new/dir/",
            "/",
            "/arg/workdir"
        ]
    );
}

#[test]
fn global_args_in_from_lines() {
    let p = plan("Dockerfile_test_meta_arg", &[], None);
    assert_eq!(
        bases(&p),
        [
            image("docker.io/debian:9.11"),
            image("docker.io/debian:9.11")
        ]
    );
    let w = walk(&p);
    let run = |i: &Instruction| match &i.command {
        Command::Run(r) => r.command.clone(),
        _ => panic!(),
    };
    assert_eq!(w[&0].0.lookup("WORD"), Some("hello"));
    assert_eq!(
        run(&w[&0].1[1]),
        CommandLine::Shell("touch /${WORD}".into())
    );
    assert_eq!(
        w[&1].0.lookup("WORD"),
        None,
        "not redeclared in the second stage"
    );

    assert_eq!(
        bases(&plan("Dockerfile_test_arg_two_level", &[], None)),
        [image("alpine:3.9")]
    );
    assert_eq!(
        bases(&plan("Dockerfile_test_arg_from_quotes", &[], None))[0],
        image("busybox:latest")
    );
    assert_eq!(
        bases(&plan("Dockerfile_test_arg_from_single_quotes", &[], None))[0],
        image("busybox:latest")
    );
    assert_eq!(
        bases(&plan("Dockerfile_test_arg_multi_empty_val", &[], None)),
        [image("busybox:1.31")]
    );
}

#[test]
fn scratch_from_build_arg_and_arg_name_expansion() {
    let p = plan(
        "Dockerfile_test_scratch",
        &[
            ("image", "scratch"),
            ("hello", "hello-value"),
            ("file", "context/foo"),
            ("file3", "context/b*"),
        ],
        None,
    );
    assert_eq!(bases(&p), [Base::Scratch]);
    let (env, ins) = walk(&p).remove(&0).unwrap();
    let copies: Vec<(Vec<String>, String)> = ins
        .iter()
        .filter_map(|i| match &i.command {
            Command::Copy(c) => Some((c.sources.clone(), c.dest.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(copies[0].0, ["context/foo"]);
    assert_eq!(copies[1].0, ["context/bar/bat"]);
    assert_eq!(
        copies[2].0,
        ["context/b*"],
        "the build arg beats ARG ${{src}}=..."
    );
    assert_eq!(copies[3].0, ["context/bar/bam/bat"], "ENV beats ARG");
    assert_eq!(env.lookup("file3"), Some("context/b*"));
}

#[test]
fn arg_scope_across_stage_inheritance_issue_1911() {
    let p = plan("Dockerfile_test_multistage_args_issue_1911", &[], None);
    assert_eq!(p.stages.len(), 4);
    let w = walk(&p);
    assert_eq!(w[&0].0.lookup("NAME"), Some("base"));
    assert_eq!(w[&1].0.lookup("NAME"), Some("base-dev"));
    assert_eq!(
        w[&2].0.lookup("NAME"),
        Some("base-dev"),
        "bare ARG keeps the inherited value"
    );
    assert_eq!(
        w[&2].0.lookup("OTHER"),
        None,
        "global ARG needs redeclaring"
    );
    assert_eq!(w[&3].0.lookup("OTHER"), Some("fix"));
}

#[test]
fn target_and_invalid_json_as_shell_form() {
    let p = plan("Dockerfile_test_target", &[], Some("second"));
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(order, [0, 1]);

    let p = plan("Dockerfile_test_cmd", &[], None);
    assert_eq!(p.target().base, Base::Stage(0));
    let Command::Entrypoint(e) = &p.target().instructions[0].command else {
        panic!()
    };
    assert_eq!(
        e,
        &CommandLine::Shell(
            "[\"myentrypoint\"] # This should clear out CMD in the config metadata".into()
        )
    );

    let p = plan("issue-2075", &[], None);
    let shell_runs = p
        .target()
        .instructions
        .iter()
        .filter(|i| matches!(&i.command, Command::Run(r) if matches!(&r.command, CommandLine::Shell(s) if s.starts_with("[ -u"))))
        .count();
    assert_eq!(shell_runs, 1, "`RUN [ -u ... ]` is not JSON, so shell form");
}
