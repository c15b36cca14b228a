//! Just enough of the Dockerfile word expansion to evaluate the image names in
//! FROM lines and global ARG defaults: quotes, `\` escapes, `$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`. Unset
//! variables expand to nothing, as in Docker.

use std::collections::BTreeMap;

/// Expands `word` with `vars`, removing quotes.
pub fn expand(word: &str, vars: &BTreeMap<String, String>) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_double = false;
    while i < chars.len() {
        match chars[i] {
            '\'' if !in_double => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_double = !in_double;
                i += 1;
            }
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '$' => i = expand_variable(&chars, i + 1, vars, &mut out),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Expands the variable whose name starts at `start` (just after `$`) into
/// `out`; returns the index after it.
fn expand_variable(
    chars: &[char],
    start: usize,
    vars: &BTreeMap<String, String>,
    out: &mut String,
) -> usize {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.get(start) == Some(&'{') {
        let Some(len) = chars[start..].iter().position(|&c| c == '}') else {
            out.extend(&chars[start - 1..]);
            return chars.len();
        };
        let body: String = chars[start + 1..start + len].iter().collect();
        let name_len = body.find(|c: char| !is_name(c)).unwrap_or(body.len());
        let (name, modifier) = body.split_at(name_len);
        let value = vars.get(name).map(String::as_str);
        let expanded = match modifier {
            m if m.starts_with(":-") => value
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| expand(&m[2..], vars)),
            m if m.starts_with('-') => value
                .map(str::to_string)
                .unwrap_or_else(|| expand(&m[1..], vars)),
            m if m.starts_with(":+") => value
                .filter(|v| !v.is_empty())
                .map(|_| expand(&m[2..], vars))
                .unwrap_or_default(),
            m if m.starts_with('+') => value.map(|_| expand(&m[1..], vars)).unwrap_or_default(),
            _ => value.unwrap_or_default().to_string(),
        };
        out.push_str(&expanded);
        return start + len + 1;
    }
    let len = chars[start..].iter().take_while(|&&c| is_name(c)).count();
    if len == 0 {
        out.push('$');
        return start;
    }
    let name: String = chars[start..start + len].iter().collect();
    out.push_str(vars.get(&name).map_or("", String::as_str));
    start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_docker() {
        let vars: BTreeMap<String, String> = [("A", "3.9"), ("E", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("alpine:${A}", &vars), "alpine:3.9");
        assert_eq!(expand("\"busybox:latest\"", &vars), "busybox:latest");
        assert_eq!(expand("'busybox:$A'", &vars), "busybox:$A");
        assert_eq!(expand("busybox${E}:1.3${X}1", &vars), "busybox:1.31");
        assert_eq!(expand("${E:-d}-${A:+set}-$A", &vars), "d-set-3.9");
    }
}
