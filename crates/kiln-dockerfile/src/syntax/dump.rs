//! BuildKit's parse-tree dump: `(keyword ["--flag"...] "arg"...)` per line.

use std::fmt::Write;

use super::Node;

/// Renders nodes in BuildKit's dump format: one line per instruction, each
/// line ending in `\n` (the golden `result` files' layout).
pub fn dump(nodes: &[Node]) -> String {
    let mut out = String::new();
    for n in nodes {
        dump_node(n, &mut out);
        out.push('\n');
    }
    out
}

fn dump_node(n: &Node, out: &mut String) {
    out.push('(');
    out.push_str(&n.keyword.to_lowercase());
    if !n.flags.is_empty() {
        out.push_str(" [");
        for (i, f) in n.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&go_quote(f));
        }
        out.push(']');
    }
    if let Some(child) = &n.nested {
        out.push(' ');
        dump_node(child, out);
    }
    for a in &n.args {
        out.push(' ');
        out.push_str(&go_quote(a));
    }
    out.push(')');
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: the ASCII space, and no control,
/// whitespace or common format (Cf) characters.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
        | 0xe000..=0xf8ff | 0xe0001 | 0xe0020..=0xe007f | 0xf0000.. )
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(go_quote("\u{0}\u{7f}"), "\"\\x00\\x7f\"");
        assert_eq!(go_quote("♥ 한국어"), "\"♥ 한국어\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), "\"\\u00a0\\u200b\"");
    }
}
