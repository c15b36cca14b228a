//! Property tests: no input makes the parser, the lexer, the planner or the
//! expansion panic, whether random bytes or mutated real Dockerfiles.

use kiln_dockerfile::shell::Lexer;
use kiln_dockerfile::syntax::{dump, parse_syntax};
use kiln_dockerfile::{PlanOptions, parse};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine:3.19\nFROM ${BASE:-x} AS build\nARG V=1\nENV A=\"$V b\" C=${V#1}\nRUN --mount=type=cache,target=/c,id=$V --network=none <<EOF\necho $A\nEOF\nFROM scratch\nCOPY --from=build --chmod=u+x <<-'X' a /d/\n\tbody\nX\n",
    "FROM a\nONBUILD RUN echo hi\nHEALTHCHECK --interval=5s CMD [\"a\", \"b\"]\nLABEL k=v\nLABEL legacy form value\nEXPOSE 80/tcp $P\nVOLUME [\"/a\"]\nSHELL [\"sh\", \"-c\"]\nUSER ${U//a/b}\nWORKDIR /w\nSTOPSIGNAL 9\nCMD x \\\n  y\n",
    "FROM scratch AS s\nFROM s\nCOPY --from=0 . .\nRUN --mount=type=secret,id=x,env=Y --mount=type=ssh true\nADD --checksum=sha256:0 --keep-git-dir https://x /\n",
];

fn exercise(bytes: &[u8]) {
    if let Ok(tree) = parse_syntax("D", bytes) {
        let _ = dump(&tree.nodes);
    }
    if let Ok(df) = parse("D", bytes) {
        if let Ok(plan) = df.plan(&PlanOptions::default()) {
            for stage in &plan.stages {
                let mut env = stage.env.clone();
                for ins in &stage.instructions {
                    if let Ok(e) = env.expand(ins) {
                        env.apply(&e);
                    }
                }
            }
        }
        let _ = serde_json::to_string(&df);
    }
}

/// Bytes biased towards the characters the grammar cares about.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"\\`$ {}[]\"'<-=#:/%?+*,\n\r\t 09azAZ".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            prop::collection::vec(interesting_byte(), 1..6)
        )
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1usize..8).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), interesting_byte()).prop_map(|(p, b)| Edit::Replace(p, b)),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = v.len().max(1);
        match e {
            Edit::Insert(p, b) => {
                let at = p % (v.len() + 1);
                v.splice(at..at, b.iter().copied());
            }
            Edit::Delete(p, n) => {
                let at = p % len;
                let end = (at + n).min(v.len());
                if at < end {
                    v.drain(at..end);
                }
            }
            Edit::Replace(p, b) => {
                if !v.is_empty() {
                    let at = p % v.len();
                    v[at] = *b;
                }
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    #[test]
    fn grammar_heavy_bytes_never_panic(bytes in prop::collection::vec(interesting_byte(), 0..400)) {
        let mut src = b"FROM a\n".to_vec();
        src.extend(bytes);
        exercise(&src);
    }

    #[test]
    fn mutated_dockerfiles_never_panic(
        seed in 0usize..SEEDS.len(),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        exercise(&apply(SEEDS[seed].as_bytes().to_vec(), &edits));
    }

    #[test]
    fn lexer_never_panics(
        word in "[\\\\`$ {}\"'<:#%/?+*=a-zA-Z0-9_-]{0,60}",
        raw_quotes: bool, raw_escapes: bool, skip_quotes: bool, skip_unset: bool, backtick: bool,
    ) {
        let mut lex = Lexer::new(if backtick { '`' } else { '\\' });
        lex.raw_quotes = raw_quotes;
        lex.raw_escapes = raw_escapes;
        lex.skip_process_quotes = skip_quotes;
        lex.skip_unset_env = skip_unset;
        let vars: Vec<(String, String)> = vec![
            ("a".into(), "x*y?z".into()),
            ("B".into(), String::new()),
            ("_1".into(), "/p/q/".into()),
        ];
        let _ = lex.process(&word, &vars);
    }
}

#[test]
fn seeds_are_valid() {
    for s in SEEDS {
        let df = parse("D", s.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        df.plan(&PlanOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn huge_inputs_do_not_exhaust_the_stack() {
    let nested = format!("{}x{}", "${A:-".repeat(5000), "}".repeat(5000));
    assert!(Lexer::default().process_word(&nested, &Vec::new()).is_err());
    let pattern = format!("${{V//{}/x}}", "*a".repeat(20000));
    let vars = vec![("V".to_string(), "ab".repeat(100))];
    assert!(Lexer::default().process_word(&pattern, &vars).is_ok());
    let long = format!("FROM a\nRUN {}\n", "x".repeat(65000));
    exercise(long.as_bytes());
    let many = "RUN x\n".repeat(20000);
    exercise(format!("FROM a\n{many}").as_bytes());
}
