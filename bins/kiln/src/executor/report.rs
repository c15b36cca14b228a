//! Turns engine events into log lines: one line per step with its time, RUN
//! output streamed as it comes, blob progress on a terminal, and a summary.
//!
//! Text and colour formats go through tracing (so they share `--verbosity`
//! and `--log-timestamp` with the libraries' events). The JSON format writes
//! one object per line itself, with the event's fields as keys, in the same
//! shape as tracing's JSON lines (`timestamp`, `level`, `message`). Blob
//! progress: see `report/progress.rs`.

mod progress;

use kiln_build::{BuildEvent, BuildObserver, BuildOutcome, OutputStream, Transfer};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
}

/// Logs build events.
pub struct Reporter {
    json: bool,
    /// stderr is a terminal and the format is text or colour: draw the progress board.
    progress: bool,
    board: Mutex<progress::Board>,
    json_progress: Mutex<progress::JsonThrottle>,
}

impl Reporter {
    pub fn new(log_format: &str) -> Self {
        let json = log_format == "json";
        Reporter {
            json,
            progress: !json && std::io::stderr().is_terminal(),
            board: Mutex::default(),
            json_progress: Mutex::default(),
        }
    }

    /// One log line: plain text through tracing, or a JSON object with `fields`.
    fn emit(&self, level: Level, message: &str, fields: Value) {
        if !self.json {
            match level {
                Level::Debug => tracing::debug!("{message}"),
                Level::Info => tracing::info!("{message}"),
                Level::Warn => tracing::warn!("{message}"),
            }
            return;
        }
        if level == Level::Debug && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let mut object = Map::new();
        object.insert(
            "timestamp".into(),
            json!(kiln_oci::rfc3339_from_system_time(
                std::time::SystemTime::now()
            )),
        );
        let level = match level {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
        };
        object.insert("level".into(), json!(level));
        object.insert("message".into(), json!(message));
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        let _ = writeln!(std::io::stderr().lock(), "{}", Value::Object(object));
    }

    fn clear_progress(&self) {
        if !self.progress {
            return;
        }
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = board.clear();
        if !bytes.is_empty() {
            let _ = write!(std::io::stderr().lock(), "{bytes}");
        }
    }

    fn show_progress(&self, transfer: Transfer, digest: &str, done: u64, total: Option<u64>) {
        if self.progress {
            let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = board.update(transfer, digest, done, total);
            let _ = write!(std::io::stderr().lock(), "{bytes}");
        } else if self.json {
            let due = self
                .json_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .due(transfer, digest, done, total, std::time::Instant::now());
            if due {
                let message = progress::line(transfer, digest, done, total);
                let transfer = match transfer {
                    Transfer::Pull => "pull",
                    Transfer::Push => "push",
                };
                self.emit(
                    Level::Info,
                    &message,
                    json!({"transfer": transfer, "digest": digest, "done": done, "total": total}),
                );
            }
        }
    }

    /// The end-of-build summary: digest, size, layers, time per phase.
    pub fn summary(&self, outcome: &BuildOutcome) {
        let t = &outcome.timings;
        let what = match outcome.platforms.as_slice() {
            [] => format!(
                "image {} ({} bytes, {} layers)",
                outcome.digest,
                outcome.size,
                outcome.layers.len()
            ),
            platforms => format!(
                "image index {} of {} platforms ({})",
                outcome.digest,
                platforms.len(),
                platforms
                    .iter()
                    .map(|p| format!("{} {}", p.platform, p.digest))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let message = format!(
            "built {what}; time: prepare {:.2?}, pull {:.2?}, build {:.2?}, export {:.2?}, push {:.2?}",
            t.prepare, t.pull, t.build, t.export, t.push
        );
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        self.emit(
            Level::Info,
            &message,
            json!({
                "digest": outcome.digest,
                "size": outcome.size,
                "layers": outcome.layers.len(),
                "pushed": outcome.pushed,
                "platforms": outcome
                    .platforms
                    .iter()
                    .map(|p| json!({"platform": p.platform, "digest": p.digest}))
                    .collect::<Vec<_>>(),
                "prepare_ms": ms(t.prepare),
                "pull_ms": ms(t.pull),
                "build_ms": ms(t.build),
                "export_ms": ms(t.export),
                "push_ms": ms(t.push),
            }),
        );
    }
}

impl BuildObserver for Reporter {
    fn event(&self, event: &BuildEvent) {
        if let BuildEvent::BlobProgress {
            transfer,
            digest,
            done,
            total,
        } = event
        {
            self.show_progress(*transfer, digest, *done, *total);
            return;
        }
        self.clear_progress();
        match event {
            BuildEvent::RunOutput { id, stream, line } => {
                if self.json {
                    let stream = match stream {
                        OutputStream::Stdout => "stdout",
                        OutputStream::Stderr => "stderr",
                    };
                    self.emit(
                        Level::Info,
                        line,
                        json!({"step": id.to_string(), "stream": stream}),
                    );
                } else {
                    // As kaniko does: the command's own output, unadorned.
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            BuildEvent::ContextLoaded { root } => self.emit(
                Level::Info,
                &format!("build context: {}", root.display()),
                json!({"context": root}),
            ),
            BuildEvent::StepStarted { id, text } => self.emit(
                Level::Info,
                &format!("{id}: {text}"),
                json!({"step": id.to_string(), "instruction": text}),
            ),
            BuildEvent::StepFinished { id, elapsed, layer } => {
                let message = match layer {
                    Some(layer) => format!("{id}: done in {elapsed:.2?}, layer {layer}"),
                    None => format!("{id}: done in {elapsed:.2?}"),
                };
                self.emit(
                    Level::Info,
                    &message,
                    json!({"step": id.to_string(), "elapsed_ms": elapsed.as_millis() as u64, "layer": layer}),
                );
            }
            BuildEvent::CacheLookup { id, key, hit } => {
                let result = if *hit { "hit" } else { "miss" };
                self.emit(
                    Level::Info,
                    &format!("{id}: cache {result} {key}"),
                    json!({"step": id.to_string(), "cache": result, "key": key}),
                );
            }
            BuildEvent::Pushed {
                destination,
                digest,
            } => self.emit(
                Level::Info,
                &format!("pushed {destination}@{digest}"),
                json!({"destination": destination, "digest": digest}),
            ),
            BuildEvent::Warning { message } => self.emit(Level::Warn, message, json!({})),
            other => self.emit(Level::Debug, &format!("{other:?}"), json!({})),
        }
    }
}
