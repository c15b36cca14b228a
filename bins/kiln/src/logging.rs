//! Log output for the binary: kaniko's `--verbosity`, `--log-format
//! text|color|json` and `--log-timestamp`, on top of tracing-subscriber.
//! Logs go to stderr; stdout stays free for command output.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::time::SystemTime;

/// Maps kaniko's (logrus) level names onto tracing's.
fn level_name(verbosity: &str) -> &'static str {
    match verbosity {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        _ => "info",
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(verbosity: &str, format: &str, timestamp: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level_name(verbosity)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests calling main twice) is harmless: keep the first.
    let _ = match (format, timestamp) {
        ("json", _) => builder.json().flatten_event(true).try_init(),
        (format, true) => builder
            .with_ansi(format == "color" && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_timer(SystemTime)
            .try_init(),
        (format, false) => builder
            .with_ansi(format == "color" && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::level_name;

    #[test]
    fn kaniko_levels_map_onto_tracing_levels() {
        assert_eq!(level_name("trace"), "trace");
        assert_eq!(level_name("warning"), "warn");
        assert_eq!(level_name("panic"), "error");
        assert_eq!(level_name("info"), "info");
    }
}
