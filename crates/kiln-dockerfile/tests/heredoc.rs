//! Heredoc rules that BuildKit pins down only in Go tables
//! (parser_heredoc_test.go, instructions/parse_heredoc_test.go).

use kiln_dockerfile::instructions::{Command, CommandLine};
use kiln_dockerfile::syntax::{Heredoc, parse_syntax};
use kiln_dockerfile::{Instruction, parse};

fn docs(src: &str) -> Vec<Vec<Heredoc>> {
    parse_syntax("Dockerfile", src.as_bytes())
        .unwrap()
        .nodes
        .into_iter()
        .map(|n| n.heredocs)
        .collect()
}

fn hd(name: &str, content: &str, expand: bool, chomp: bool, fd: u32) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
        file_descriptor: fd,
    }
}

#[test]
fn extracts_heredocs_per_instruction() {
    let src = "FROM busybox\n\
RUN <<EOF\necho hello\necho world\nEOF\n\
RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\n\
RUN <<EMPTY\nEMPTY\n\
RUN 3<<EMPTY2\nEMPTY2\n\
RUN <<'NOEXPAND'\n$NAME # internal comment\n# comment line\nNOEXPAND\n\
RUN <<eo'f'\nx\neof\n\
RUN <<$EOF\n$EOF body\n$EOF\n\
RUN <<  EOF  > foo\nspaced\nEOF\n\
RUN --mount=type=cache,target=/foo <<MOUNT\nm\nMOUNT\n\
RUN <<COMPLEX python3\nprint(1)\nCOMPLEX\n\
COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\
COPY <<X <<Y /dest\nY\nX\nX\nY\n\
COPY <<file.txt /dest\nf\nfile.txt\n\
COPY <<EOF /quotes\n\"quoted\" 'single'\nEOF\n\
RUN \"<<NOHEREDOC\"\n\
RUN [\"<<EOF\"]\n\
USER <<INVALID\n\
INVALID\n";
    let d = docs(src);
    assert_eq!(d.len(), 19);
    assert!(d[0].is_empty());
    assert_eq!(
        d[1],
        [hd("EOF", "echo hello\necho world\n", true, false, 0)]
    );
    assert_eq!(d[2], [hd("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)]);
    assert_eq!(d[3], [hd("EMPTY", "", true, false, 0)]);
    assert_eq!(d[4], [hd("EMPTY2", "", true, false, 3)]);
    assert_eq!(
        d[5],
        [hd(
            "NOEXPAND",
            "$NAME # internal comment\n# comment line\n",
            false,
            false,
            0
        )]
    );
    assert_eq!(d[6], [hd("eof", "x\n", false, false, 0)]);
    assert_eq!(d[7], [hd("$EOF", "$EOF body\n", true, false, 0)]);
    assert_eq!(d[8], [hd("EOF", "spaced\n", true, false, 0)]);
    assert_eq!(d[9], [hd("MOUNT", "m\n", true, false, 0)]);
    assert_eq!(d[10], [hd("COMPLEX", "print(1)\n", true, false, 0)]);
    assert_eq!(
        d[11],
        [
            hd("FILE1", "content 1\n", true, false, 0),
            hd("FILE2", "content 2\n", true, false, 0)
        ]
    );
    assert_eq!(
        d[12],
        [
            hd("X", "Y\n", true, false, 0),
            hd("Y", "X\n", true, false, 0)
        ]
    );
    assert_eq!(d[13], [hd("file.txt", "f\n", true, false, 0)]);
    assert_eq!(d[14], [hd("EOF", "\"quoted\" 'single'\n", true, false, 0)]);
    assert!(d[15].is_empty(), "quoted marker is not a heredoc");
    assert!(d[16].is_empty(), "JSON form never has heredocs");
    assert!(d[17].is_empty(), "USER cannot have heredocs");
    assert!(d[18].is_empty(), "INVALID is its own (unknown) instruction");
}

#[test]
fn onbuild_of_run_can_have_a_heredoc() {
    let d = docs("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    assert_eq!(d[1], [hd("EOF", "echo hi\n", true, false, 0)]);
}

#[test]
fn crlf_bodies_keep_their_line_endings() {
    let d = docs("FROM a\r\nRUN <<EOF\r\necho hi\r\nEOF\r\n");
    assert_eq!(d[1], [hd("EOF", "echo hi\r\n", true, false, 0)]);
}

#[test]
fn unterminated_heredoc_is_an_error_at_the_instruction() {
    let err = parse_syntax("Dockerfile", b"FROM a\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(err.to_string(), "Dockerfile:2:1: unterminated heredoc");
}

fn instructions(src: &str) -> Vec<Instruction> {
    parse("Dockerfile", src.as_bytes()).unwrap().stages[0]
        .instructions
        .clone()
}

#[test]
fn copy_heredoc_becomes_an_inline_source() {
    let ins =
        instructions("FROM a\nCOPY <<-EOF /bar\n\tTESTING\nEOF\nCOPY <<EOF foo.txt /bar\nx\nEOF\n");
    let Command::Copy(c) = &ins[0].command else {
        panic!("not COPY: {:?}", ins[0]);
    };
    assert_eq!(c.inline.len(), 1);
    assert_eq!(
        (c.inline[0].path.as_str(), c.inline[0].data.as_str()),
        ("EOF", "TESTING\n")
    );
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/bar");
    let Command::Copy(c) = &ins[1].command else {
        panic!("not COPY");
    };
    assert_eq!(c.sources, ["foo.txt"]);
    assert_eq!(c.inline[0].data, "x\n");
}

#[test]
fn copy_heredoc_as_destination_is_an_error() {
    let err = parse("Dockerfile", b"FROM a\nCOPY /foo <<EOF\nx\nEOF\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:2:1: COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn run_heredoc_stays_shell_form_and_is_not_chomped() {
    let ins =
        instructions("FROM a\nRUN <<-EOF\n\techo test\nEOF\nRUN <<'EOF' | python\nprint(1)\nEOF\n");
    let Command::Run(r) = &ins[0].command else {
        panic!("not RUN");
    };
    assert_eq!(r.command, CommandLine::Shell("<<-EOF".into()));
    assert_eq!(r.heredocs[0].content, "\techo test\n");
    assert!(r.heredocs[0].chomp);
    let Command::Run(r) = &ins[1].command else {
        panic!("not RUN");
    };
    assert_eq!(r.command, CommandLine::Shell("<<'EOF' | python".into()));
    assert!(!r.heredocs[0].expand);
}
