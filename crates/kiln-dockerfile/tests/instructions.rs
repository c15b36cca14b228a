//! Instruction-level checks (BuildKit's instructions/parse_test.go and
//! bflag_test.go behaviour) and the typed form of every instruction.

use std::time::Duration;

use kiln_dockerfile::instructions::{
    CacheSharing, Command, CommandLine, Healthcheck, MountKind, NetworkMode, SecurityMode,
};
use kiln_dockerfile::{Instruction, parse};

fn one(line: &str) -> Result<Instruction, String> {
    let src = format!("FROM scratch\n{line}\n");
    match parse("Dockerfile", src.as_bytes()) {
        Ok(df) => Ok(df.stages[0].instructions[0].clone()),
        Err(e) => Err(e.to_string()),
    }
}

fn err(line: &str) -> String {
    one(line).expect_err(line)
}

#[test]
fn argument_count_errors() {
    for kw in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
        assert_eq!(
            err(kw),
            format!("Dockerfile:2:1: {kw} requires exactly one argument")
        );
    }
    for kw in ["ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME"] {
        assert_eq!(
            err(kw),
            format!("Dockerfile:2:1: {kw} requires at least one argument")
        );
    }
    for kw in ["ADD", "COPY"] {
        assert_eq!(
            err(&format!("{kw} arg1")),
            format!(
                "Dockerfile:2:1: {kw} requires at least two arguments, but only one was provided. Destination could not be determined"
            )
        );
    }
    assert!(
        err("COPY \\\n  \\\n").starts_with("Dockerfile:2:1: COPY requires at least two arguments")
    );
    assert!(err("ENV =arg2").contains("ENV names can not be blank"));
    assert!(err("ENV PATH").contains("ENV must have two arguments"));
}

#[test]
fn error_cases() {
    assert!(err("ONBUILD FROM scratch").ends_with("FROM isn't allowed as an ONBUILD trigger"));
    assert!(
        err("ONBUILD MAINTAINER me").ends_with("MAINTAINER isn't allowed as an ONBUILD trigger")
    );
    assert!(
        err("ONBUILD ONBUILD RUN x")
            .ends_with("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    );
    assert!(err("MAINTAINER --boo joe@example.com").ends_with("unknown flag: --boo"));
    assert!(err("FOO bar").ends_with("unknown instruction: FOO"));
    assert!(err("foo bar").ends_with("unknown instruction: foo"));
    assert!(err("CMD --doit [\"a\"]").ends_with("unknown flag: --doit"));
    assert!(err("COPY --from a b").ends_with("missing a value on flag: --from"));
    assert!(err("COPY --from=a --from=b x y").ends_with("duplicate flag specified: --from"));
    assert!(err("COPY --link=maybe x y").contains("expecting boolean value for flag --link"));
    assert!(err("ADD --parents a b").ends_with("unknown flag: --parents"));
    assert!(err("COPY --checksum=sha256:x a b").ends_with("unknown flag: --checksum"));
    assert!(err("RUN --network=bridge x").contains("network mode \"bridge\" not supported"));
    assert!(err("RUN --security=weird x").contains("security mode \"weird\" not supported"));
    assert!(err("RUN --mount=type=nfs,target=/x x").contains("unsupported mount type"));
    assert!(err("SHELL /bin/sh -c").ends_with("SHELL requires the arguments to be in JSON form"));
    assert!(err("COPY --chmod=9z9 a b").contains("invalid chmod value"));
    assert!(err("CMD [\"a\", 1]").ends_with("arrays must be comprised of strings only"));
    assert!(err("HEALTHCHECK NONE x").ends_with("HEALTHCHECK NONE takes no arguments"));
    assert!(err("HEALTHCHECK CMD").ends_with("Missing command after HEALTHCHECK CMD"));
    assert!(
        err("HEALTHCHECK CONNECT TCP 7000").contains("Unknown type \"CONNECT\" in HEALTHCHECK")
    );
    assert!(err("HEALTHCHECK --interval=50ns CMD x").contains("cannot be less than 1ms"));
    assert!(err("HEALTHCHECK --retries=-1 CMD x").contains("--retries cannot be negative"));
}

#[test]
fn every_error_in_a_file_is_reported_with_its_position() {
    let src = "ARG A\nRUN before-from\nFROM scratch AS 1bad\nFOO x\n  USER\nCOPY --nope a b\nENV\nFROM x AS dup\nFROM y AS dup\n";
    let e = parse("Dockerfile", src.as_bytes()).unwrap_err();
    let lines: Vec<String> = e.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            "Dockerfile:2:1: no build stage in current context: RUN before the first FROM",
            "Dockerfile:3:1: invalid name for build stage: \"1bad\", name can't start with a number or contain symbols",
            "Dockerfile:4:1: unknown instruction: FOO",
            "Dockerfile:5:3: USER requires exactly one argument",
            "Dockerfile:6:1: unknown flag: --nope",
            "Dockerfile:7:1: ENV requires at least one argument",
            "Dockerfile:9:1: duplicate stage name \"dup\"",
        ]
    );
}

#[test]
fn healthcheck_forms() {
    let Command::Healthcheck(Healthcheck::Cmd(h)) =
        one("HEALTHCHECK CMD hello world").unwrap().command
    else {
        panic!()
    };
    assert_eq!(h.test, ["CMD-SHELL", "hello world"]);
    let Command::Healthcheck(Healthcheck::Cmd(h)) = one(
        "HEALTHCHECK --interval=5s --timeout=0ms --start-period=1ms --start-interval=1m --retries=3 CMD [\"a\", \"b\"]",
    )
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(h.test, ["CMD", "a", "b"]);
    assert_eq!(h.interval, Some(Duration::from_secs(5)));
    assert_eq!(h.timeout, Some(Duration::ZERO));
    assert_eq!(h.start_period, Some(Duration::from_millis(1)));
    assert_eq!(h.start_interval, Some(Duration::from_secs(60)));
    assert_eq!(h.retries, Some(3));
    assert_eq!(
        one("HEALTHCHECK none").unwrap().command,
        Command::Healthcheck(Healthcheck::None)
    );
}

#[test]
fn run_flags() {
    let Command::Run(r) = one(
        "RUN --mount=type=tmpfs,target=/foo/ --mount=type=cache,target=/c,sharing=private,id=x,from=build,source=/s --mount=type=secret,id=s --mount=type=ssh --network=none --security=insecure echo hello",
    )
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(r.command, CommandLine::Shell("echo hello".into()));
    let kinds: Vec<MountKind> = r.mounts.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MountKind::Tmpfs,
            MountKind::Cache,
            MountKind::Secret,
            MountKind::Ssh
        ]
    );
    assert_eq!(r.mounts[1].sharing, CacheSharing::Private);
    assert_eq!(r.mounts[1].from.as_deref(), Some("build"));
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(SecurityMode::Insecure));
    assert_eq!(r.mount_flags.len(), 4);
    let Command::Run(r) = one("RUN [\"echo\", \"a b\"]").unwrap().command else {
        panic!()
    };
    assert_eq!(
        r.command,
        CommandLine::Exec(vec!["echo".into(), "a b".into()])
    );
}

#[test]
fn copy_and_add_flags() {
    let Command::Copy(c) = one(
        "COPY --from=build --chown=1:2 --chmod=u=rwx,go=rx --link --parents --exclude=*.md --exclude=tmp a b /dst/",
    )
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1:2"));
    assert_eq!(c.chmod.as_deref(), Some("u=rwx,go=rx"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "tmp"]);
    assert_eq!(
        (c.sources.clone(), c.dest.as_str()),
        (vec!["a".to_string(), "b".to_string()], "/dst/")
    );
    let Command::Add(a) = one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chmod=0755 https://x/y.tgz /",
    )
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!((a.keep_git_dir, a.unpack), (Some(true), Some(false)));
    let Command::Copy(c) = one("COPY [\"a b\", \"/c d\"]").unwrap().command else {
        panic!()
    };
    assert!(c.json);
    assert_eq!(
        (c.sources, c.dest),
        (vec!["a b".to_string()], "/c d".to_string())
    );
}

#[test]
fn key_value_and_arg_forms() {
    let Command::Env(e) = one("ENV a=b c=\"d e\"").unwrap().command else {
        panic!()
    };
    let pairs: Vec<(String, String)> = e.pairs.into_iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(
        pairs,
        [("a".into(), "b".into()), ("c".into(), "\"d e\"".into())]
    );
    let Command::Label(l) = one("LABEL maintainer James Turnbull").unwrap().command else {
        panic!()
    };
    assert_eq!(l.pairs[0].value, "James Turnbull");
    let Command::Arg(a) = one("ARG foo bar=baz empty=").unwrap().command else {
        panic!()
    };
    let decls: Vec<(String, Option<String>)> =
        a.args.into_iter().map(|d| (d.name, d.default)).collect();
    assert_eq!(
        decls,
        [
            ("foo".into(), None),
            ("bar".into(), Some("baz".into())),
            ("empty".into(), Some(String::new()))
        ]
    );
}

#[test]
fn arg_doc_comments() {
    let src = "# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\nARG bar baz=123\n# base defines first stage\nFROM scratch AS base\n";
    let df = parse("D", src.as_bytes()).unwrap();
    let docs: Vec<Option<String>> = df.global_args.iter().map(|g| g.decl.doc.clone()).collect();
    assert_eq!(
        docs,
        [
            None,
            Some("defines bar".into()),
            Some("is something else".into())
        ]
    );
}

#[test]
fn onbuild_keeps_its_trigger_text() {
    let Command::Onbuild(o) = one("ONBUILD   COPY --from=x a b").unwrap().command else {
        panic!()
    };
    assert_eq!(o.trigger, "COPY --from=x a b");
    assert!(matches!(o.instruction.command, Command::Copy(_)));
    let Command::Onbuild(o) = one("ONBUILD RUN <<EOF\necho hi\nEOF").unwrap().command else {
        panic!()
    };
    assert_eq!(o.trigger, "RUN <<EOF\necho hi\nEOF");
    let t = kiln_dockerfile::instructions::parse_trigger(&o.trigger).unwrap();
    let Command::Run(r) = t.command else { panic!() };
    assert_eq!(r.heredocs[0].content, "echo hi\n");
    let t = kiln_dockerfile::instructions::parse_trigger("RUN echo hi").unwrap();
    assert_eq!(t.command.name(), "RUN");
}

#[test]
fn every_instruction_survives_odd_arguments() {
    let kws = [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ];
    for kw in kws {
        for args in ["foo=bar", "a", "a b", "a b c", "0 0", "", "[]", "[\"x\"]"] {
            let src = format!("FROM scratch\n{kw} {args}\n");
            let _ = parse("D", src.as_bytes());
        }
    }
}

#[test]
fn keywords_are_case_insensitive() {
    let df = parse("D", b"from alpine as Build\nrun echo\nCopy a b\n").unwrap();
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].instructions.len(), 2);
}
