//! `kiln attestations IMAGE` lists an image's attestations (kind, artifact
//! type, manifest digest, size); `--show sbom|provenance|DIGEST` prints one
//! document. The logic is `kiln_build::attest::listing`; the registry, TLS and
//! logging flags are the executor's, handed to its parser so they mean the same.

use std::io::Write;
use std::process::ExitCode;

use kiln_build::attest::listing::{self, Listed, Listing};

use crate::cli::{attestations_flags, pflag};

pub fn run(args: &[String]) -> ExitCode {
    let parsed = match pflag::parse(&attestations_flags::specs(), args) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if parsed.help {
        print!("{}", attestations_flags::help());
        return ExitCode::SUCCESS;
    }
    let mut show = None;
    let mut forwarded = vec!["--no-push".to_string()];
    for occurrence in &parsed.flags {
        match occurrence.name {
            "show" => show = Some(occurrence.value.clone()),
            name => forwarded.push(format!("--{name}={}", occurrence.value)),
        }
    }
    let [reference] = parsed.positional.as_slice() else {
        return usage_error("expected exactly one image reference");
    };
    let options = match crate::executor::options::from_forwarded_flags(&forwarded) {
        Ok(o) => o,
        Err(message) => return usage_error(&message),
    };
    let work = async {
        let found = listing::list(&options, reference).await?;
        match &show {
            None => Ok::<_, kiln_build::BuildError>(table(&found).into_bytes()),
            Some(wanted) => {
                let chosen = choose(&found, wanted).map_err(kiln_build::BuildError::Options)?;
                let (_, bytes) = listing::document(
                    &options,
                    &found.repo,
                    &found.subject.digest,
                    &chosen.manifest,
                )
                .await?;
                let mut out = bytes.to_vec();
                out.push(b'\n');
                Ok(out)
            }
        }
    };
    match crate::runtime::block_on(work) {
        None => ExitCode::FAILURE,
        Some(Ok(bytes)) => {
            if std::io::stdout().lock().write_all(&bytes).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            tracing::error!("attestations of {reference}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line per attestation: kind, artifact type, manifest digest, size.
fn table(found: &Listing) -> String {
    let mut text = format!(
        "# {} {} ({:?}); {} referrer(s)\n",
        found.repo,
        found.subject.digest,
        found.form,
        found.referrers.len()
    );
    for r in &found.referrers {
        text.push_str(&format!(
            "{:<11} {:<32} {} {}\n",
            r.kind.map_or("other", |k| k.name()),
            r.manifest
                .artifact_type
                .as_ref()
                .map_or("-", |t| t.as_str()),
            r.manifest.digest,
            r.manifest.size
        ));
    }
    text
}

/// The referrer `--show` names: a kind (the last listed, the newest in the
/// tag schema) or a manifest digest.
fn choose<'a>(found: &'a Listing, wanted: &str) -> Result<&'a Listed, String> {
    let by_kind = |name: &str| {
        found
            .referrers
            .iter()
            .rev()
            .find(|r| r.kind.is_some_and(|k| k.name() == name))
    };
    let chosen = match wanted {
        "sbom" | "provenance" => by_kind(wanted),
        digest => found
            .referrers
            .iter()
            .find(|r| r.manifest.digest.to_string() == digest),
    };
    chosen.ok_or_else(|| {
        format!(
            "--show {wanted}: no such attestation of {} (kiln attestations without --show lists them)",
            found.subject.digest
        )
    })
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    eprintln!("Run 'kiln attestations --help' for the flags.");
    ExitCode::from(2)
}
