//! Shell-lexer rules that BuildKit tests only in Go tables (lex_test.go).

use std::collections::BTreeMap;

use kiln_dockerfile::shell::Lexer;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(input: &str, env: &[(&str, &str)]) -> Result<String, String> {
    Lexer::default()
        .process_word(input, &vars(env))
        .map_err(|e| e.to_string())
}

#[test]
fn mandatory_vars_expand_their_message() {
    let env = [("ARG", "x")];
    for w in ["${VAR:?message here$ARG}", "${VAR?message here$ARG}"] {
        let e = word(w, &env).unwrap_err();
        assert!(e.contains("message herex"), "{w}: {e}");
    }
    let empty = [("ARG", "x"), ("VAR", "")];
    assert_eq!(word("${VAR?message here$ARG}", &empty).unwrap(), "");
    assert!(
        word("${VAR:?message here$ARG}", &empty)
            .unwrap_err()
            .contains("message herex")
    );
    assert!(
        word("${VAR:?}", &empty)
            .unwrap_err()
            .contains("VAR: is not allowed to be empty")
    );
    assert!(
        word("${NOPE?}", &empty)
            .unwrap_err()
            .contains("NOPE: is not allowed to be unset")
    );
}

const SET: [(&str, &str); 2] = [("FOO", "xxx"), ("BAR", "")];

#[test]
fn default_alternative_and_error_modifiers() {
    let cases = [
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", "aaa bbb "),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", "aaa  "),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", "xxx  ccc"),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", "xxx bbb ccc"),
        ("${FOO?} ${BAR?}", "xxx "),
        ("${FOO:?}", "xxx"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input, &SET).unwrap(), expected, "{input}");
    }
    for bad in [
        "${BAZ?}",
        "${BAR:?}",
        "${FOO=aaa}",
        "${FOO:=aaa}",
        "${FOO:#x}",
        "${FOO:##x}",
        "${FOO:%x}",
        "${FOO:%%x}",
        "${FOO:x}",
    ] {
        assert!(word(bad, &SET).is_err(), "{bad} should fail");
    }
}

#[test]
fn matched_and_unmatched_names() {
    let e = Lexer::default()
        .process("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc} $FOO", &vars(&SET))
        .unwrap();
    assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["BAR", "FOO"]);
    assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["BAZ"]);
}

#[test]
fn prefix_and_suffix_removal() {
    let xy = [("FOO", "xxyy"), ("BAR", "xx")];
    let cases = [
        ("${FOO#*x*y}", "y"),
        ("${FOO##*x}", "yy"),
        ("${FOO#*x}", "xyy"),
        ("${FOO%y*}", "xxy"),
        ("${FOO%%y*}", "xx"),
        ("${FOO%x*}", "x"),
        ("${FOO#?}", "xyy"),
        ("${FOO#$BAR}", "yy"),
        ("${FOO#nomatch}", "xxyy"),
        ("${BAZ#x}", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input, &xy).unwrap(), expected, "{input}");
    }
    let stars = [("FOO", "xx**"), ("Q", "a?b\\c")];
    assert_eq!(word("${FOO%%\\**}", &stars).unwrap(), "xx");
    assert_eq!(word("${FOO%\\*}", &stars).unwrap(), "xx*");
    assert_eq!(word("${Q#a\\?}", &stars).unwrap(), "b\\c");
    assert_eq!(word("${Q%\\\\c}", &stars).unwrap(), "a?b");
    assert!(
        word("${FOO#\\x}", &stars).is_err(),
        "invalid escape in pattern"
    );
}

#[test]
fn substitution() {
    let env = [
        ("FOO", "hello world wide"),
        ("NEEDLE", "w*d"),
        ("PATH_", "/usr/local/bin"),
        ("SLASH", "/"),
    ];
    let cases = [
        ("${FOO/o/0}", "hell0 world wide"),
        ("${FOO//o/0}", "hell0 w0rld wide"),
        ("${FOO/$NEEDLE/.}", "hello .e"),
        ("${FOO/w?/W}", "hello Wrld wide"),
        ("${FOO//w??/_}", "hello _ld _e"),
        ("${PATH_//\\//\\/}", "\\/usr\\/local\\/bin"),
        ("${PATH_//$SLASH/:}", ":usr:local:bin"),
        ("${FOO///}", "hello world wide"),
        ("${FOO/nomatch/x}", "hello world wide"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input, &env).unwrap(), expected, "{input}");
    }
    for bad in ["${FOO//ww}", "${FOO//}", "${FOO/x"] {
        assert!(word(bad, &env).is_err(), "{bad} should fail");
    }
}

#[test]
fn platform_suffix_pattern() {
    let w =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = [("VERSION", "1.2.3"), ("TARGETOS", "linux")];
    let mut v7 = base.to_vec();
    v7.extend([("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]);
    assert_eq!(word(w, &v7).unwrap(), "something-1.2.3.linux-arm-v7.tar.gz");
    let mut empty = base.to_vec();
    empty.extend([("TARGETARCH", "arm64"), ("TARGETVARIANT", "")]);
    assert_eq!(
        word(w, &empty).unwrap(),
        "something-1.2.3.linux-arm64.tar.gz"
    );
    let mut unset = base.to_vec();
    unset.push(("TARGETARCH", "arm64"));
    assert_eq!(
        word(w, &unset).unwrap(),
        "something-1.2.3.linux-arm64.tar.gz"
    );
}

#[test]
fn backtick_escape_and_raw_modes() {
    let lex = Lexer::new('`');
    assert_eq!(lex.process_word("a`$b\\c", &vars(&[])).unwrap(), "a$b\\c");
    let mut raw = Lexer::default();
    raw.raw_quotes = true;
    raw.skip_unset_env = true;
    assert_eq!(
        raw.process_word("'a b' \"$X\" ${Y:-z} $Z", &vars(&[("X", "1")]))
            .unwrap(),
        "'a b' \"1\" ${Y:-z} $Z"
    );
}
