//! Blob progress for people and for log collectors.
//!
//! On a terminal ([`Board`]): one line per blob, `pulling sha256:0123456789ab… 12.3/45.6 MB`,
//! redrawn in place (cursor up, rewrite, erase below); any other log line first erases
//! the board. In JSON logs ([`JsonThrottle`]): one object per blob at most every second,
//! plus its completion. Elsewhere nothing, so CI logs stay clean.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_build::Transfer;

/// The shortest time between two JSON progress lines of one blob.
pub const JSON_INTERVAL: Duration = Duration::from_secs(1);

/// Completed lines are dropped from the board once it holds more lines than this.
const MAX_LINES: usize = 8;

/// `pulling sha256:0123456789ab… 12.3/45.6 MB`.
pub fn line(transfer: Transfer, digest: &str, done: u64, total: Option<u64>) -> String {
    let verb = match transfer {
        Transfer::Pull => "pulling",
        Transfer::Push => "pushing",
    };
    let short = match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}…", &hex[..12]),
        _ => digest.to_string(),
    };
    let mb = |n: u64| n as f64 / 1_000_000.0;
    match total {
        Some(total) => format!("{verb} {short} {:.1}/{:.1} MB", mb(done), mb(total)),
        None => format!("{verb} {short} {:.1} MB", mb(done)),
    }
}

/// The lines on screen, one per blob, and how many are drawn.
#[derive(Default)]
pub struct Board {
    lines: Vec<BoardLine>,
    drawn: usize,
}

struct BoardLine {
    key: (bool, String),
    text: String,
    complete: bool,
}

impl Board {
    /// Records a blob's progress; returns the bytes that redraw the board.
    pub fn update(
        &mut self,
        transfer: Transfer,
        digest: &str,
        done: u64,
        total: Option<u64>,
    ) -> String {
        let key = (transfer == Transfer::Push, digest.to_string());
        let text = line(transfer, digest, done, total);
        let complete = total.is_some_and(|t| done >= t);
        match self.lines.iter_mut().find(|l| l.key == key) {
            Some(l) => {
                l.text = text;
                l.complete = complete;
            }
            None => self.lines.push(BoardLine {
                key,
                text,
                complete,
            }),
        }
        if self.lines.len() > MAX_LINES {
            self.lines.retain(|l| !l.complete);
        }
        let mut out = self.cursor_to_top();
        for l in &self.lines {
            out.push_str("\r\x1b[2K");
            out.push_str(&l.text);
            out.push('\n');
        }
        out.push_str("\x1b[J");
        self.drawn = self.lines.len();
        out
    }

    /// Erases the board (before another log line); returns the bytes to write.
    pub fn clear(&mut self) -> String {
        let out = if self.drawn > 0 {
            format!("{}\x1b[J", self.cursor_to_top())
        } else {
            String::new()
        };
        self.lines.clear();
        self.drawn = 0;
        out
    }

    fn cursor_to_top(&self) -> String {
        if self.drawn > 0 {
            format!("\x1b[{}A\r", self.drawn)
        } else {
            String::new()
        }
    }
}

/// Which JSON progress lines are due.
#[derive(Default)]
pub struct JsonThrottle {
    last: BTreeMap<(bool, String), Instant>,
}

impl JsonThrottle {
    /// Whether a progress line for this blob is due at `now`: its first, its completion,
    /// or a second after the previous one.
    pub fn due(
        &mut self,
        transfer: Transfer,
        digest: &str,
        done: u64,
        total: Option<u64>,
        now: Instant,
    ) -> bool {
        let key = (transfer == Transfer::Push, digest.to_string());
        let complete = total.is_some_and(|t| done >= t);
        let due = complete
            || self
                .last
                .get(&key)
                .is_none_or(|last| now.duration_since(*last) >= JSON_INTERVAL);
        if due {
            self.last.insert(key, now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const D2: &str = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn line_shows_a_short_digest_and_megabytes() {
        assert_eq!(
            line(Transfer::Pull, D1, 12_345_678, Some(45_600_000)),
            "pulling sha256:0123456789ab… 12.3/45.6 MB"
        );
        assert_eq!(
            line(Transfer::Push, D2, 1_000_000, None),
            "pushing sha256:fedcba987654… 1.0 MB"
        );
    }

    #[test]
    fn board_redraws_one_line_per_blob_in_place() {
        let mut board = Board::default();
        let first = board.update(Transfer::Pull, D1, 1_000_000, Some(3_000_000));
        assert_eq!(
            first,
            "\r\x1b[2Kpulling sha256:0123456789ab… 1.0/3.0 MB\n\x1b[J"
        );
        let second = board.update(Transfer::Pull, D2, 0, Some(2_000_000));
        // Back up over the one line drawn, then both lines.
        assert_eq!(
            second,
            "\x1b[1A\r\r\x1b[2Kpulling sha256:0123456789ab… 1.0/3.0 MB\n\r\x1b[2Kpulling sha256:fedcba987654… 0.0/2.0 MB\n\x1b[J"
        );
        let third = board.update(Transfer::Pull, D1, 3_000_000, Some(3_000_000));
        assert!(third.starts_with("\x1b[2A\r"), "{third:?}");
        assert!(third.contains("3.0/3.0 MB\n"), "{third:?}");
        assert_eq!(third.matches('\n').count(), 2, "{third:?}");
        assert_eq!(board.clear(), "\x1b[2A\r\x1b[J");
        assert_eq!(board.clear(), "");
    }

    #[test]
    fn board_drops_completed_lines_when_full() {
        let mut board = Board::default();
        for i in 0..MAX_LINES as u64 {
            let digest = format!("sha256:{i:064}");
            board.update(Transfer::Push, &digest, 10, Some(10));
        }
        let out = board.update(Transfer::Push, D1, 1, Some(10));
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
    }

    #[test]
    fn json_progress_at_most_every_second_per_blob_and_at_completion() {
        let mut throttle = JsonThrottle::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(throttle.due(Transfer::Pull, D1, 1, Some(10), at(0)));
        assert!(!throttle.due(Transfer::Pull, D1, 2, Some(10), at(500)));
        assert!(throttle.due(Transfer::Pull, D2, 2, Some(10), at(500)));
        assert!(throttle.due(Transfer::Push, D1, 2, Some(10), at(500)));
        assert!(throttle.due(Transfer::Pull, D1, 3, Some(10), at(1000)));
        assert!(!throttle.due(Transfer::Pull, D1, 4, Some(10), at(1999)));
        assert!(throttle.due(Transfer::Pull, D1, 10, Some(10), at(2000)));
    }
}
