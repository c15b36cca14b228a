//! Parser behaviour not covered by BuildKit's golden files: directives, BOM,
//! CRLF, warnings, limits, and the dump of instructions the files never use.

use kiln_dockerfile::syntax::{dump, parse_syntax};

fn dumped(src: &str) -> String {
    dump(&parse_syntax("D", src.as_bytes()).unwrap().nodes)
}

#[test]
fn directives_are_read_at_the_top_only() {
    let t = parse_syntax(
        "D",
        b"# syntax=docker/dockerfile:1\n#check = skip=all\n# EScape=`\nFROM a\nRUN a `\n b\n",
    )
    .unwrap();
    assert_eq!(t.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(t.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(t.directives.escape, '`');
    assert_eq!(dump(&t.nodes), "(from \"a\")\n(run \"a  b\")\n");

    let t = parse_syntax("D", b"# key = FOO bar\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(
        t.directives.escape, '\\',
        "an unknown key ends the directive block"
    );
    let t = parse_syntax("D", b"\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(
        t.directives.escape, '\\',
        "a blank line ends the directive block"
    );

    let e = parse_syntax("D", b"# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "D:2:1: only one escape parser directive can be used"
    );
    assert!(parse_syntax("D", b"# escape=x\nFROM a\n").is_err());
}

#[test]
fn bom_and_crlf() {
    assert_eq!(
        dumped("\u{feff}# escape=`\r\nFROM a\r\nRUN x `\r\n  y\r\nENV A=b\r\n"),
        "(from \"a\")\n(run \"x   y\")\n(env \"A\" \"b\" \"=\")\n"
    );
}

#[test]
fn instructions_absent_from_the_golden_files() {
    assert_eq!(
        dumped(
            "from --platform=$BUILDPLATFORM a AS b\nSHELL [\"/bin/bash\", \"-c\"]\nSTOPSIGNAL SIGKILL\nMAINTAINER me <m@e>\nFOO bar baz\nRUN --mount=type=cache,target=/c --network=none echo\nCOPY --chmod=755 --link --parents --exclude=*.md a b\nONBUILD ADD --chown=1 a b\n"
        ),
        "(from [\"--platform=$BUILDPLATFORM\"] \"a\" \"AS\" \"b\")\n\
(shell \"/bin/bash\" \"-c\")\n\
(stopsignal \"SIGKILL\")\n\
(maintainer \"me <m@e>\")\n\
(foo \"\")\n\
(run [\"--mount=type=cache,target=/c\" \"--network=none\"] \"echo\")\n\
(copy [\"--chmod=755\" \"--link\" \"--parents\" \"--exclude=*.md\"] \"a\" \"b\")\n\
(onbuild (add [\"--chown=1\"] \"a\" \"b\"))\n"
    );
}

#[test]
fn empty_continuation_lines_warn_but_comments_do_not() {
    let src = "FROM a\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\nRUN non-indented \\\n# comment\n    goes\nRUN indented \\\n    # comment\n    goes\n";
    let t = parse_syntax("D", src.as_bytes()).unwrap();
    let w: Vec<String> = t.warnings.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        w,
        [
            "Empty continuation line found in: RUN something     following     more",
            "Empty continuation line found in: RUN another     thing",
        ]
    );
}

#[test]
fn over_long_lines_are_rejected() {
    let src = format!("FROM a\nLABEL x={}\n", "a".repeat(65536));
    let e = parse_syntax("D", src.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "D:2:1: dockerfile line greater than max allowed size of 65535"
    );
}

#[test]
fn spans_have_columns_and_cover_heredocs() {
    let t = parse_syntax("D", b"FROM a\n   RUN <<EOF\nx\nEOF\n\tCMD x\n").unwrap();
    let spans: Vec<(u32, u32, u32)> = t
        .nodes
        .iter()
        .map(|n| (n.span.start.line, n.span.start.column, n.span.end_line))
        .collect();
    assert_eq!(spans, [(1, 1, 1), (2, 4, 4), (5, 2, 5)]);
}

#[test]
fn syntax_errors_are_all_reported() {
    let e = parse_syntax("D", b"FROM a\nENV X\nCMD [\"a\", 1]\nLABEL a=b c\n").unwrap_err();
    let got: Vec<String> = e.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        [
            "D:2:1: ENV must have two arguments",
            "D:3:1: when using JSON array syntax, arrays must be comprised of strings only",
            "D:4:1: Syntax error - can't find = in \"c\". Must be of the form: name=value",
        ]
    );
}

#[test]
fn invalid_utf8_does_not_fail() {
    let t = parse_syntax("D", b"FROM a\nRUN echo \xff\xfe\n").unwrap();
    assert_eq!(t.nodes.len(), 2);
}
