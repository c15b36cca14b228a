//! The reference builder kiln is compared against: buildah 1.28 (the default) or
//! Docker 20.10's built-in BuildKit 0.8 (`--reference docker`), and what each
//! one's Dockerfile frontend cannot read.

use anyhow::{Result, bail};

/// Which builder makes the reference image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Buildah,
    Docker,
}

impl Reference {
    /// `--reference docker|buildah` (or `--reference=…`); buildah when absent.
    /// Returns the reference and the arguments left.
    pub fn from_args(args: &[String]) -> Result<(Reference, Vec<String>)> {
        let mut reference = Reference::Buildah;
        let mut rest = Vec::new();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let value = match word.strip_prefix("--reference") {
                Some("") => match words.next() {
                    Some(value) => value.as_str(),
                    None => bail!("--reference needs docker or buildah"),
                },
                Some(tail) if tail.starts_with('=') => &tail[1..],
                _ => {
                    rest.push(word.clone());
                    continue;
                }
            };
            reference = match value {
                "buildah" => Reference::Buildah,
                "docker" => Reference::Docker,
                other => bail!("--reference {other}: expected docker or buildah"),
            };
        }
        Ok((reference, rest))
    }

    /// The builder's name in image repositories, logs and the report.
    pub fn name(self) -> &'static str {
        match self {
            Reference::Buildah => "buildah",
            Reference::Docker => "docker",
        }
    }
}

/// Why Docker 20.10's built-in Dockerfile frontend (about dockerfile 1.2) cannot
/// build `dockerfile`, if it cannot: these are parse errors there
/// (../shared/design/TESTBED.md), and `# syntax=` would need the frontend image.
pub fn docker_cannot_parse(dockerfile: &str) -> Option<String> {
    let first_directive = dockerfile
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find(|l| {
            let body = l.trim_start()[1..].trim_start().to_ascii_lowercase();
            body.starts_with("syntax") && body.contains('=')
        });
    if first_directive.is_some() {
        return Some("a `# syntax=` directive needs the frontend image, which is not local".into());
    }
    for (number, line) in dockerfile.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next().map(str::to_ascii_uppercase) else {
            continue;
        };
        if !matches!(instruction.as_str(), "RUN" | "COPY" | "ADD") {
            continue;
        }
        for word in words {
            let unsupported = match word.split('=').next().unwrap_or(word) {
                "--link" => Some("COPY --link"),
                "--checksum" => Some("ADD --checksum"),
                "--parents" => Some("COPY --parents"),
                "--exclude" => Some("COPY --exclude"),
                "--network" if instruction == "RUN" => Some("RUN --network"),
                _ if is_heredoc(word) => Some("heredocs"),
                _ => None,
            };
            if let Some(what) = unsupported {
                return Some(format!(
                    "line {}: {what} is a parse error in Docker 20.10's Dockerfile frontend",
                    number + 1
                ));
            }
        }
    }
    None
}

/// `<<EOT`, `<<-EOT`, `<<"EOT"`: a heredoc start (BuildKit's dockerfile 1.4).
fn is_heredoc(word: &str) -> bool {
    let Some(rest) = word.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '"' || c == '\'' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_frontend_limits_are_found_with_their_line() {
        let cases = [
            ("FROM a\nRUN <<EOT\necho\nEOT\n", Some("line 2: heredocs")),
            ("FROM a\nCOPY --link a /b\n", Some("line 2: COPY --link")),
            (
                "FROM a\nADD --checksum=sha256:00 u /b\n",
                Some("line 2: ADD --checksum"),
            ),
            (
                "FROM a\nRUN --network=none true\n",
                Some("line 2: RUN --network"),
            ),
            (
                "# syntax=docker/dockerfile:1\nFROM a\n",
                Some("a `# syntax=`"),
            ),
            ("FROM a\nRUN --mount=type=cache,target=/c true\n", None),
            ("FROM a\nCOPY --chmod=755 --chown=1:1 a /b\n", None),
            ("FROM a\nRUN echo '<<'\n", None),
        ];
        for (text, expected) in cases {
            let found = docker_cannot_parse(text);
            match expected {
                Some(prefix) => assert!(
                    found.as_deref().is_some_and(|f| f.starts_with(prefix)),
                    "{text:?}: {found:?}"
                ),
                None => assert_eq!(found, None, "{text:?}"),
            }
        }
    }

    #[test]
    fn reference_flag_is_parsed_and_removed() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (r, rest) = Reference::from_args(&args(&["--reference", "docker", "copy"])).unwrap();
        assert_eq!((r, rest), (Reference::Docker, args(&["copy"])));
        let (r, rest) = Reference::from_args(&args(&["--reference=buildah"])).unwrap();
        assert_eq!((r, rest), (Reference::Buildah, Vec::new()));
        let (r, _) = Reference::from_args(&args(&["x"])).unwrap();
        assert_eq!(r, Reference::Buildah);
        assert!(Reference::from_args(&args(&["--reference", "kaniko"])).is_err());
        assert!(Reference::from_args(&args(&["--reference"])).is_err());
    }
}
