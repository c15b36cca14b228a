//! Turns engine events into log lines: one line per step with its time, RUN
//! output streamed as it comes, blob progress on a terminal, and a summary.
//! With `--log-format json` every line is one JSON object (through tracing).

use kiln_build::{BuildEvent, BuildObserver, BuildOutcome, OutputStream, Transfer};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Logs build events; RUN output goes raw to stderr in text modes.
pub struct Reporter {
    json: bool,
    progress: bool,
    last_progress: Mutex<Option<String>>,
}

impl Reporter {
    pub fn new(log_format: &str) -> Self {
        let json = log_format == "json";
        Reporter {
            json,
            progress: !json && std::io::stderr().is_terminal(),
            last_progress: Mutex::new(None),
        }
    }

    fn clear_progress(&self) {
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if last.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }

    /// The end-of-build summary.
    pub fn summary(&self, outcome: &BuildOutcome) {
        let t = &outcome.timings;
        tracing::info!(
            digest = %outcome.digest,
            size = outcome.size,
            layers = outcome.layers.len(),
            prepare_ms = t.prepare.as_millis() as u64,
            pull_ms = t.pull.as_millis() as u64,
            build_ms = t.build.as_millis() as u64,
            export_ms = t.export.as_millis() as u64,
            push_ms = t.push.as_millis() as u64,
            "built image {} ({} bytes, {} layers); time: prepare {:.2?}, pull {:.2?}, build {:.2?}, export {:.2?}, push {:.2?}",
            outcome.digest,
            outcome.size,
            outcome.layers.len(),
            t.prepare,
            t.pull,
            t.build,
            t.export,
            t.push
        );
    }
}

impl BuildObserver for Reporter {
    fn event(&self, event: &BuildEvent) {
        match event {
            BuildEvent::BlobProgress {
                transfer,
                digest,
                done,
                total,
            } => {
                if !self.progress {
                    return;
                }
                let verb = match transfer {
                    Transfer::Pull => "pulling",
                    Transfer::Push => "pushing",
                };
                let short = digest.get(..19).unwrap_or(digest);
                let line = match total {
                    Some(total) if *total > 0 => format!(
                        "{verb} {short} {:>3}% ({} / {} KiB)",
                        done * 100 / total,
                        done / 1024,
                        total / 1024
                    ),
                    _ => format!("{verb} {short} {} KiB", done / 1024),
                };
                let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
                let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
                *last = Some(line);
                return;
            }
            BuildEvent::RunOutput { id, stream, line } if !self.json => {
                self.clear_progress();
                let _ = writeln!(std::io::stderr().lock(), "{line}");
                let _ = (id, stream);
                return;
            }
            _ => {}
        }
        self.clear_progress();
        match event {
            BuildEvent::ContextLoaded { entries } => {
                tracing::info!(entries, "build context loaded: {entries} entries")
            }
            BuildEvent::StepStarted { id, text } => {
                tracing::info!(step = %id, instruction = %text, "{id}: {text}")
            }
            BuildEvent::StepFinished { id, elapsed, layer } => match layer {
                Some(layer) => {
                    tracing::info!(step = %id, elapsed_ms = elapsed.as_millis() as u64, layer = %layer,
                    "{id}: done in {elapsed:.2?}, layer {layer}")
                }
                None => tracing::info!(step = %id, elapsed_ms = elapsed.as_millis() as u64,
                    "{id}: done in {elapsed:.2?}"),
            },
            BuildEvent::CacheLookup { id, key, hit } => {
                let result = if *hit { "hit" } else { "miss" };
                tracing::info!(step = %id, cache = result, key = %key, "{id}: cache {result} {key}")
            }
            BuildEvent::RunOutput { id, stream, line } => {
                let stream = match stream {
                    OutputStream::Stdout => "stdout",
                    OutputStream::Stderr => "stderr",
                };
                tracing::info!(step = %id, stream, "{line}")
            }
            BuildEvent::Pushed {
                destination,
                digest,
            } => {
                tracing::info!(destination = %destination, digest = %digest, "pushed {destination}@{digest}")
            }
            BuildEvent::Warning { message } => tracing::warn!("{message}"),
            other => tracing::debug!("{other:?}"),
        }
    }
}
