//! A small command-line parser with the semantics of Go's pflag, which
//! kaniko's executor uses: `--flag=value` and `--flag value`, `-f value`,
//! `-fvalue` and `-f=value`, booleans as `--flag` or `--flag=true|false`
//! (never `--flag false`), repeated flags, and `--` ending the flags.
//!
//! The parser only splits the command line into (flag, value) pairs in order,
//! checking names and value presence against a table; what a value means is
//! decided by the caller. As in pflag, `--help` and `-h` (unless the table
//! defines them) stop parsing and ask for help.

use std::fmt;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A boolean: `--flag` means true, `--flag=VALUE` gives the value.
    Bool,
    /// Needs a value, inline (`--flag=v`) or as the next argument.
    Value,
}

/// One flag the parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// The long name, without dashes.
    pub name: &'static str,
    /// The one-letter short name, if any.
    pub short: Option<char>,
    pub arity: Arity,
}

/// A flag occurrence, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The long name of the flag (also when given by its short name).
    pub name: &'static str,
    /// The value; `"true"` for a bare boolean flag.
    pub value: String,
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Parsed {
    pub flags: Vec<Occurrence>,
    pub positional: Vec<String>,
    /// `--help` or `-h` was given; parsing stopped there.
    pub help: bool,
}

/// A usage error, worded like pflag's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Splits `args` (without the program name) according to `specs`.
pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            parsed.positional.extend(iter.by_ref().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if name == "help" && !specs.iter().any(|s| s.name == "help") {
                parsed.help = true;
                break;
            }
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| UsageError(format!("unknown flag: --{name}")))?;
            let value = take_value(spec, inline, &mut iter, &format!("--{name}"))?;
            parsed.flags.push(Occurrence {
                name: spec.name,
                value,
            });
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            parse_shorts(specs, shorts, &mut iter, &mut parsed)?;
            if parsed.help {
                break;
            }
        } else {
            parsed.positional.push(arg.clone());
        }
    }
    Ok(parsed)
}

/// `-v`, `-vdebug`, `-v=debug`, `-v debug`, and bool clusters like `-ab`.
fn parse_shorts<'a>(
    specs: &[FlagSpec],
    shorts: &str,
    iter: &mut impl Iterator<Item = &'a String>,
    parsed: &mut Parsed,
) -> Result<(), UsageError> {
    let mut rest = shorts;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if c == 'h' && !specs.iter().any(|s| s.short == Some('h')) {
            parsed.help = true;
            return Ok(());
        }
        let spec = specs
            .iter()
            .find(|s| s.short == Some(c))
            .ok_or_else(|| UsageError(format!("unknown shorthand flag: '{c}' in -{shorts}")))?;
        let inline = match (spec.arity, rest) {
            (_, r) if r.starts_with('=') => Some(r[1..].to_string()),
            (Arity::Value, r) if !r.is_empty() => Some(r.to_string()),
            _ => None,
        };
        let consumed_rest = inline.is_some();
        let value = take_value(spec, inline, iter, &format!("-{c}"))?;
        parsed.flags.push(Occurrence {
            name: spec.name,
            value,
        });
        if consumed_rest {
            break;
        }
    }
    Ok(())
}

fn take_value<'a>(
    spec: &FlagSpec,
    inline: Option<String>,
    iter: &mut impl Iterator<Item = &'a String>,
    shown: &str,
) -> Result<String, UsageError> {
    match (spec.arity, inline) {
        (_, Some(v)) => Ok(v),
        (Arity::Bool, None) => Ok("true".into()),
        (Arity::Value, None) => iter
            .next()
            .cloned()
            .ok_or_else(|| UsageError(format!("flag needs an argument: {shown}"))),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(flag: &str, value: &str) -> Result<bool, UsageError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(UsageError(format!(
            "invalid argument {value:?} for \"--{flag}\" flag: strconv.ParseBool: parsing {value:?}: invalid syntax"
        ))),
    }
}

/// Go's `strconv.Atoi` as pflag uses it for int flags.
pub fn parse_int(flag: &str, value: &str) -> Result<i64, UsageError> {
    value.parse::<i64>().map_err(|_| {
        UsageError(format!(
            "invalid argument {value:?} for \"--{flag}\" flag: strconv.ParseInt: parsing {value:?}: invalid syntax"
        ))
    })
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, optionally signed; `0` alone is allowed.
pub fn parse_duration(flag: &str, value: &str) -> Result<std::time::Duration, UsageError> {
    let bad = || {
        UsageError(format!(
            "invalid argument {value:?} for \"--{flag}\" flag: time: invalid duration {value:?}"
        ))
    };
    let s = value.strip_prefix('+').unwrap_or(value);
    if s.starts_with('-') {
        return Err(bad());
    }
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "context",
            short: Some('c'),
            arity: Arity::Value,
        },
        FlagSpec {
            name: "no-push",
            short: None,
            arity: Arity::Bool,
        },
        FlagSpec {
            name: "destination",
            short: Some('d'),
            arity: Arity::Value,
        },
        FlagSpec {
            name: "cache",
            short: None,
            arity: Arity::Bool,
        },
    ];

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn pairs(p: &Parsed) -> Vec<(&str, &str)> {
        p.flags.iter().map(|o| (o.name, o.value.as_str())).collect()
    }

    #[test]
    fn long_short_inline_and_separate_values() {
        let p = parse(
            SPECS,
            &args("--context=/a -c /b -c/c -c=/d --destination x -d y --no-push --cache=false"),
        )
        .unwrap();
        assert_eq!(
            pairs(&p),
            vec![
                ("context", "/a"),
                ("context", "/b"),
                ("context", "/c"),
                ("context", "/d"),
                ("destination", "x"),
                ("destination", "y"),
                ("no-push", "true"),
                ("cache", "false"),
            ]
        );
        assert!(p.positional.is_empty());
    }

    #[test]
    fn bool_does_not_take_the_next_argument() {
        let p = parse(SPECS, &args("--no-push false")).unwrap();
        assert_eq!(pairs(&p), vec![("no-push", "true")]);
        assert_eq!(p.positional, vec!["false"]);
    }

    #[test]
    fn unknown_and_missing_values_are_errors() {
        assert_eq!(
            parse(SPECS, &args("--nope")).unwrap_err().0,
            "unknown flag: --nope"
        );
        assert_eq!(
            parse(SPECS, &args("-x")).unwrap_err().0,
            "unknown shorthand flag: 'x' in -x"
        );
        assert_eq!(
            parse(SPECS, &args("--context")).unwrap_err().0,
            "flag needs an argument: --context"
        );
    }

    #[test]
    fn help_stops_parsing_wherever_it_is() {
        for line in [
            "--help",
            "-h",
            "--cache --help --nope",
            "-c x -h",
            "--no-push=false --help=1",
        ] {
            let p = parse(SPECS, &args(line)).unwrap();
            assert!(p.help, "{line}");
        }
        let p = parse(SPECS, &args("--context -h")).unwrap();
        assert!(!p.help, "a value that looks like -h is a value");
        assert_eq!(pairs(&p), vec![("context", "-h")]);
        let p = parse(SPECS, &args("-- --help")).unwrap();
        assert!(!p.help);
        assert_eq!(
            parse(SPECS, &args("--nope --help")).unwrap_err().0,
            "unknown flag: --nope"
        );
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = parse(SPECS, &args("--cache -- --no-push")).unwrap();
        assert_eq!(pairs(&p), vec![("cache", "true")]);
        assert_eq!(p.positional, vec!["--no-push"]);
    }

    #[test]
    fn go_bools_ints_and_durations() {
        assert!(parse_bool("x", "T").unwrap());
        assert!(!parse_bool("x", "0").unwrap());
        assert!(parse_bool("x", "yes").is_err());
        assert_eq!(parse_int("x", "-3").unwrap(), -3);
        assert!(parse_int("x", "3x").is_err());
        let d = |s| parse_duration("cache-ttl", s).unwrap().as_secs_f64();
        assert_eq!(d("336h"), 336.0 * 3600.0);
        assert_eq!(d("1h30m"), 5400.0);
        assert_eq!(d("1.5h"), 5400.0);
        assert_eq!(d("300ms"), 0.3);
        assert_eq!(d("0"), 0.0);
        for bad in ["", "10", "h", "-1h", "1d"] {
            assert!(parse_duration("cache-ttl", bad).is_err(), "{bad:?}");
        }
    }
}
