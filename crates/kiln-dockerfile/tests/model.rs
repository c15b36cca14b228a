//! The build model: ARG scoping, build-arg precedence, predefined ARGs,
//! target pruning, and step-by-step expansion.

use std::collections::BTreeMap;

use kiln_dockerfile::instructions::{Command, CommandLine};
use kiln_dockerfile::{Base, Plan, PlanOptions, Platform, StageEnv, parse};

fn plan_with(src: &str, args: &[(&str, &str)], target: Option<&str>) -> Result<Plan, String> {
    let df = parse("Dockerfile", src.as_bytes()).map_err(|e| e.to_string())?;
    let opts = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(str::to_string),
        target_platform: Platform::parse("linux/arm/v7").unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
    };
    df.plan(&opts).map_err(|e| e.to_string())
}

fn plan(src: &str) -> Plan {
    plan_with(src, &[], None).unwrap()
}

/// Runs a stage's instructions through its env the way the engine does.
fn walk(stage: &kiln_dockerfile::PlannedStage) -> (StageEnv, Vec<kiln_dockerfile::Instruction>) {
    let mut env = stage.env.clone();
    let mut out = Vec::new();
    for ins in &stage.instructions {
        let e = env.expand(ins).unwrap();
        env.apply(&e);
        out.push(e);
    }
    (env, out)
}

const GLOBALS: &str =
    "ARG REG=docker.io\nARG TAG=3.19\nARG IMG=$REG/alpine:$TAG\nFROM $IMG AS base\nRUN true\n";

#[test]
fn global_args_expand_into_from_lines() {
    let p = plan(GLOBALS);
    assert_eq!(
        p.stages[0].base,
        Base::Image("docker.io/alpine:3.19".into())
    );
    let p = plan_with(GLOBALS, &[("TAG", "3.20")], None).unwrap();
    assert_eq!(
        p.stages[0].base,
        Base::Image("docker.io/alpine:3.20".into())
    );
    assert_eq!(
        p.global_args.get("IMG").map(String::as_str),
        Some("docker.io/alpine:3.20")
    );
    let p = plan_with(GLOBALS, &[("IMG", "busybox")], None).unwrap();
    assert_eq!(p.stages[0].base, Base::Image("busybox".into()));
}

#[test]
fn global_args_need_redeclaring_inside_a_stage() {
    let p = plan("ARG V=1\nARG W=2\nFROM scratch\nARG V\nENV X=$V Y=$W\n");
    let (env, _) = walk(&p.stages[0]);
    assert_eq!(
        env.env(),
        [("X".into(), "1".into()), ("Y".into(), String::new())]
    );
}

#[test]
fn build_arg_precedence() {
    let src = "ARG G=global\nFROM scratch\nARG G\nARG S=default\nARG U\nENV OUT=$G-$S-$U\n";
    let (env, _) = walk(&plan(src).stages[0]);
    assert_eq!(env.lookup("OUT"), Some("global-default-"));
    let p = plan_with(src, &[("G", "g"), ("S", "s"), ("U", "u")], None).unwrap();
    let (env, _) = walk(&p.stages[0]);
    assert_eq!(env.lookup("OUT"), Some("g-s-u"));
    assert!(p.unused_build_args.is_empty());
}

#[test]
fn env_wins_over_arg_and_args_reach_run() {
    let p = plan_with(
        "FROM scratch\nARG A=arg\nENV A=env\nARG B=b\n",
        &[("HTTP_PROXY", "http://p:3128"), ("UNUSED", "1")],
        None,
    )
    .unwrap();
    let (env, _) = walk(&p.stages[0]);
    assert_eq!(env.lookup("A"), Some("env"));
    assert_eq!(
        env.run_env(),
        [
            ("A".into(), "env".into()),
            ("B".into(), "b".into()),
            ("HTTP_PROXY".into(), "http://p:3128".into())
        ]
    );
    assert_eq!(p.unused_build_args, ["UNUSED"]);
}

#[test]
fn platform_args() {
    let src = "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETARCH TARGETVARIANT\nENV T=$TARGETOS-$TARGETARCH-$TARGETVARIANT\nFROM alpine:$TARGETARCH\nARG TARGETPLATFORM\nENV P=$TARGETPLATFORM B=$BUILDARCH\n";
    let p = plan(src);
    assert_eq!(
        p.stages.len(),
        1,
        "target is the last stage, which needs nothing"
    );
    assert_eq!(p.stages[0].base, Base::Image("alpine:arm".into()));
    let (env, _) = walk(&p.stages[0]);
    assert_eq!(env.lookup("P"), Some("linux/arm/v7"));
    assert_eq!(
        env.lookup("B"),
        Some(""),
        "BUILDARCH was not declared in the stage"
    );
    let p = plan_with(src, &[], Some("BUILD")).unwrap();
    assert_eq!(p.stages[0].platform.to_string(), "linux/amd64");
    let (env, _) = walk(&p.stages[0]);
    assert_eq!(
        env.lookup("T"),
        Some("-arm-v7"),
        "TARGETOS was not declared"
    );
}

const MULTI: &str = "FROM alpine AS a\n\
FROM alpine AS unused\n\
FROM a AS c\n\
FROM busybox AS m\n\
FROM scratch AS d\n\
ARG SRC=c\n\
COPY --from=$SRC /x /x\n\
COPY --from=0 /y /y\n\
COPY --from=nginx:latest /z /z\n\
RUN --mount=type=bind,from=m,target=/m true\n";

#[test]
fn target_needs_exactly_its_stages_in_build_order() {
    let p = plan(MULTI);
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(order, [0, 2, 3, 4]);
    assert_eq!(p.target().name.as_deref(), Some("d"));
    assert_eq!(p.target().depends_on, [0, 2, 3]);
    assert_eq!(p.stage(2).unwrap().base, Base::Stage(0));
    assert_eq!(p.target().base, Base::Scratch);
    assert_eq!(p.resolve_stage_ref("C"), Some(2));
    assert_eq!(p.resolve_stage_ref("1"), Some(1));
    assert_eq!(p.resolve_stage_ref("nginx:latest"), None);

    let p = plan_with(MULTI, &[], Some("c")).unwrap();
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(order, [0, 2]);
    let p = plan_with(MULTI, &[("SRC", "unused")], None).unwrap();
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(order, [0, 1, 3, 4]);

    let forward = "FROM scratch AS a\nCOPY --from=b / /\nFROM busybox AS b\n";
    let p = plan_with(forward, &[], Some("a")).unwrap();
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(
        order,
        [1, 0],
        "a later stage named by COPY --from is built first"
    );
}

#[test]
fn plan_errors() {
    assert!(
        plan_with(MULTI, &[], Some("nope"))
            .unwrap_err()
            .contains("target stage \"nope\" could not be found")
    );
    let cyc = "FROM scratch AS x\nCOPY --from=y / /\nFROM scratch AS y\nCOPY --from=x / /\n";
    assert!(
        plan_with(cyc, &[], None)
            .unwrap_err()
            .contains("circular dependency")
    );
    assert!(
        plan_with("FROM scratch\nCOPY --from=0 a b\n", &[], None)
            .unwrap_err()
            .contains("current build stage")
    );
    assert!(
        plan_with("ARG I\nFROM $I\n", &[], None)
            .unwrap_err()
            .contains("base name ($I) should not be blank")
    );
    assert!(
        plan_with("FROM --platform=linux a\n", &[], None)
            .unwrap_err()
            .contains("invalid --platform")
    );
    assert!(
        plan_with("FROM --platform=$NONE a\n", &[], None)
            .unwrap_err()
            .contains("empty platform value")
    );
    assert!(
        plan_with(MULTI, &[], Some("0"))
            .unwrap_err()
            .contains("could not be found")
    );
    let p = plan_with("ARG A=1\nARG A\nFROM img:$A\n", &[], None).unwrap();
    assert_eq!(
        p.stages[0].base,
        Base::Image("img:1".into()),
        "a bare global ARG keeps its value"
    );
}

#[test]
fn expansion_follows_buildkit_rules() {
    let src = "FROM scratch\n\
ARG D=/dst P=\"80 443\" E\n\
ENV NAME=\"a b\" Q='$D'\n\
COPY --chown=$NAME --chmod=${M:-755} src-$NAME $D/\n\
EXPOSE $P 8080\n\
WORKDIR $D/w\n\
USER ${U:-nobody}\n\
RUN echo $NAME\n\
CMD echo $NAME\n\
COPY <<EOF <<'RAW' /x/\n$NAME \"q\"\nEOF\n$NAME\nRAW\n\
VOLUME $E\n";
    let p = plan(src);
    let mut env = p.stages[0].env.clone();
    let mut out = Vec::new();
    for ins in &p.stages[0].instructions {
        match env.expand(ins) {
            Ok(e) => {
                env.apply(&e);
                out.push(Ok(e.command));
            }
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    assert_eq!(env.lookup("NAME"), Some("a b"));
    assert_eq!(env.lookup("Q"), Some("$D"), "single quotes stop expansion");
    let Ok(Command::Copy(c)) = &out[2] else {
        panic!("{:?}", out[2])
    };
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("a b"), Some("755"))
    );
    assert_eq!(
        (c.sources[0].as_str(), c.dest.as_str()),
        ("src-a b", "/dst/")
    );
    let Ok(Command::Expose(e)) = &out[3] else {
        panic!()
    };
    assert_eq!(e.values, ["80/tcp", "443/tcp", "8080/tcp"]);
    let Ok(Command::Workdir(w)) = &out[4] else {
        panic!()
    };
    assert_eq!(w.value, "/dst/w");
    let Ok(Command::User(u)) = &out[5] else {
        panic!()
    };
    assert_eq!(u.value, "nobody");
    let Ok(Command::Run(r)) = &out[6] else {
        panic!()
    };
    assert_eq!(
        r.command,
        CommandLine::Shell("echo $NAME".into()),
        "RUN is not expanded"
    );
    let Ok(Command::Cmd(c)) = &out[7] else {
        panic!()
    };
    assert_eq!(c, &CommandLine::Shell("echo $NAME".into()));
    let Ok(Command::Copy(c)) = &out[8] else {
        panic!()
    };
    assert_eq!(
        c.inline[0].data, "a b \"q\"\n",
        "unquoted marker: expanded, quotes kept"
    );
    assert_eq!(c.inline[1].data, "$NAME\n", "quoted marker: not expanded");
    assert_eq!(
        out[9].as_ref().unwrap_err(),
        "Dockerfile:15:1: VOLUME specified can not be an empty string"
    );
}

#[test]
fn image_env_comes_first_and_is_replaced_in_place() {
    let p = plan("FROM alpine\nENV PATH=/x:$PATH LANG=C\n");
    let mut env = p.stages[0].env.clone();
    env.set_image_env(&["PATH=/usr/bin".into(), "HOME=/root".into()]);
    for ins in &p.stages[0].instructions {
        let e = env.expand(ins).unwrap();
        env.apply(&e);
    }
    assert_eq!(
        env.env(),
        [
            ("PATH".into(), "/x:/usr/bin".into()),
            ("HOME".into(), "/root".into()),
            ("LANG".into(), "C".into())
        ]
    );
}

#[test]
fn mount_options_are_expanded() {
    let p = plan(
        "FROM a AS src\nFROM scratch\nARG T=/cache U=1000\nRUN --mount=type=cache,target=$T,uid=$U,from=src true\n",
    );
    let (_, ins) = walk(p.target());
    let Command::Run(r) = &ins[1].command else {
        panic!()
    };
    assert_eq!(r.mounts[0].target.as_deref(), Some("/cache"));
    assert_eq!(r.mounts[0].uid, Some(1000));
    assert_eq!(p.target().depends_on, [0]);
}
