//! COPY/ADD `--chmod`: an octal mode (`755`, `0644`) or a symbolic one
//! (`u=rwx,go=rx`, `a+X`, `g-w`), as chmod(1) understands it.

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// One comma-separated clause: who, then operations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Clause {
    /// Bits of `0o7777` this clause may touch (`u`, `g`, `o`; `a` = all).
    pub who: u32,
    pub ops: Vec<Op>,
}

/// `+perms`, `-perms` or `=perms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Op {
    pub op: char,
    /// Letters from `rwxXst`, or a single `u`/`g`/`o` to copy.
    pub perms: String,
}

const U: u32 = 0o4700;
const G: u32 = 0o2070;
const O: u32 = 0o1007;

impl Chmod {
    pub fn parse(s: &str) -> Result<Chmod, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(s, 8) {
                Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
                _ => Err(format!(
                    "invalid chmod value {s:?}: not an octal mode up to 7777"
                )),
            };
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            clauses.push(parse_clause(part).ok_or_else(|| {
                format!("invalid chmod value {s:?}: expected octal digits or [ugoa]*[-+=][rwxXst]*")
            })?);
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode after applying this chmod to `mode` (permission bits only).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for c in clauses {
                    for op in &c.ops {
                        let bits = perm_bits(&op.perms, mode, is_dir) & c.who;
                        mode = match op.op {
                            '+' => mode | bits,
                            '-' => mode & !bits,
                            _ => (mode & !c.who) | bits,
                        };
                    }
                }
                mode
            }
        }
    }
}

fn parse_clause(s: &str) -> Option<Clause> {
    let mut chars = s.chars().peekable();
    let mut who = 0;
    while let Some(&c) = chars.peek() {
        who |= match c {
            'u' => U,
            'g' => G,
            'o' => O,
            'a' => U | G | O,
            _ => break,
        };
        chars.next();
    }
    if who == 0 {
        who = U | G | O;
    }
    let mut ops = Vec::new();
    while let Some(op) = chars.next() {
        if !matches!(op, '+' | '-' | '=') {
            return None;
        }
        let mut perms = String::new();
        while let Some(&c) = chars.peek() {
            if matches!(c, '+' | '-' | '=') {
                break;
            }
            if !"rwxXstugo".contains(c) {
                return None;
            }
            perms.push(c);
            chars.next();
        }
        let copy = perms.chars().filter(|c| "ugo".contains(*c)).count();
        if copy > 0 && (copy != 1 || perms.len() != 1) {
            return None;
        }
        ops.push(Op { op, perms });
    }
    if ops.is_empty() {
        None
    } else {
        Some(Clause { who, ops })
    }
}

fn perm_bits(perms: &str, mode: u32, is_dir: bool) -> u32 {
    let mut bits = 0;
    for c in perms.chars() {
        bits |= match c {
            'r' => 0o444,
            'w' => 0o222,
            'x' => 0o111,
            'X' if is_dir || mode & 0o111 != 0 => 0o111,
            's' => 0o6000,
            't' => 0o1000,
            'u' => spread((mode >> 6) & 7),
            'g' => spread((mode >> 3) & 7),
            'o' => spread(mode & 7),
            _ => 0,
        };
    }
    bits
}

fn spread(rwx: u32) -> u32 {
    rwx << 6 | rwx << 3 | rwx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal() {
        assert_eq!(Chmod::parse("755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("0644").unwrap().apply(0o777, false), 0o644);
        assert!(Chmod::parse("888").is_err());
        assert!(Chmod::parse("77777").is_err());
    }

    #[test]
    fn symbolic() {
        let ap = |s: &str, m: u32, d: bool| Chmod::parse(s).unwrap().apply(m, d);
        assert_eq!(ap("u=rwx,go=rx", 0o600, false), 0o755);
        assert_eq!(ap("a+x", 0o644, false), 0o755);
        assert_eq!(ap("g-w", 0o664, false), 0o644);
        assert_eq!(ap("a+X", 0o644, false), 0o644);
        assert_eq!(ap("a+X", 0o644, true), 0o755);
        assert_eq!(ap("go=u", 0o750, false), 0o777);
        assert_eq!(ap("u+s", 0o755, false), 0o4755);
        assert_eq!(ap("=r", 0o777, false), 0o444);
        for bad in ["", "u", "z+x", "u+q", "u+ug", "+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
