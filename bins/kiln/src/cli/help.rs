//! `--help` pages, rendered from the flag tables so that what help says is
//! what the parser takes: usage lines, a short description, then one
//! section per group with every flag, its value placeholder, its default
//! and its description. A deprecated spelling is folded into the line of
//! the flag it stands for.

use super::flag::{Flag, Kind, Shown};
use std::fmt::Write;

/// One help page.
pub struct Page<'a> {
    /// Usage lines, without the leading `usage: `.
    pub usage: &'a [String],
    /// What the command does, one paragraph.
    pub about: &'a str,
    /// Sections in order: a title and the flags in it, table order.
    pub sections: Vec<(&'a str, Vec<&'a Flag>)>,
    /// Closing lines (where to read more).
    pub footer: &'a str,
}

/// Groups `flags` by their group, in the order of `groups`; a group with no
/// flag is left out.
pub fn sections<'a>(
    groups: &[&'a str],
    flags: impl IntoIterator<Item = &'a Flag> + Clone,
) -> Vec<(&'a str, Vec<&'a Flag>)> {
    groups
        .iter()
        .map(|g| {
            let in_group: Vec<&Flag> = flags
                .clone()
                .into_iter()
                .filter(|f| f.group == *g)
                .collect();
            (*g, in_group)
        })
        .filter(|(_, flags)| !flags.is_empty())
        .collect()
}

/// The left column of a flag's line: `-c, --context PATH`.
pub fn synopsis(flag: &Flag) -> String {
    let short = match flag.short {
        Some(c) => format!("-{c}, "),
        None => "    ".to_string(),
    };
    let value = if flag.value.is_empty() {
        String::new()
    } else {
        format!(" {}", flag.value)
    };
    format!("{short}--{}{value}", flag.name)
}

/// The right column of a flag's line: the description, then what applies:
/// repeatable, the default, older spellings.
pub fn description(flag: &Flag, aliases: &[&Flag]) -> String {
    let mut text = flag.help.to_string();
    if flag.kind == Kind::Multi {
        text.push_str("; repeatable");
    }
    match flag.default {
        Shown::Nothing => {}
        Shown::Value(v) | Shown::Note(v) => {
            let _ = write!(text, " (default {v})");
        }
    }
    for alias in aliases {
        let _ = write!(text, " [deprecated spelling: --{}]", alias.name);
    }
    text
}

/// The whole page, ending with a newline.
pub fn render(page: &Page<'_>) -> String {
    let mut out = String::new();
    for (i, line) in page.usage.iter().enumerate() {
        let lead = if i == 0 { "usage: " } else { "       " };
        let _ = writeln!(out, "{lead}{line}");
    }
    let _ = writeln!(out, "\n{}", page.about);
    let all: Vec<&Flag> = page
        .sections
        .iter()
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    let shown: Vec<&Flag> = all
        .iter()
        .copied()
        .filter(|f| f.alias_of.is_none())
        .collect();
    let width = shown.iter().map(|f| synopsis(f).len()).max().unwrap_or(0);
    for (title, flags) in &page.sections {
        let _ = writeln!(out, "\n{title}:");
        for flag in flags.iter().filter(|f| f.alias_of.is_none()) {
            let aliases: Vec<&Flag> = all
                .iter()
                .copied()
                .filter(|a| a.alias_of == Some(flag.name))
                .collect();
            let _ = writeln!(
                out,
                "  {:width$}   {}",
                synopsis(flag),
                description(flag, &aliases)
            );
        }
    }
    if !page.footer.is_empty() {
        let _ = writeln!(out, "\n{}", page.footer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::flag::{alias, boolean, valued};

    const ROWS: &[Flag] = &[
        valued("context", Kind::Str, "PATH", "In", "where")
            .short('c')
            .default("/ws"),
        alias("ctx", "context", Kind::Str, "In"),
        valued("tag", Kind::Multi, "REF", "Out", "push here"),
        boolean("quiet", "Out", "say less").default_note("when piped"),
    ];

    #[test]
    fn lines_carry_placeholder_default_repeat_and_aliases() {
        let page = render(&Page {
            usage: &["tool [flags]".to_string(), "tool other".to_string()],
            about: "Does things.",
            sections: sections(&["Out", "In", "Empty"], ROWS),
            footer: "More elsewhere.",
        });
        let expected = "usage: tool [flags]
       tool other

Does things.

Out:
      --tag REF        push here; repeatable
      --quiet          say less (default when piped)

In:
  -c, --context PATH   where (default /ws) [deprecated spelling: --ctx]

More elsewhere.
";
        assert_eq!(page, expected);
    }
}
