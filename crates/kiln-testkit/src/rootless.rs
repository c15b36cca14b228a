//! Unprivileged users for rootless tests run as root (as in CI): a line of
//! /etc/subuid and /etc/subgid that lives as long as a guard, handing a tree
//! to a uid, and a command run as that uid through `setpriv`.

use std::path::Path;
use std::process::Command;

/// The subordinate id files a [`SubidLine`] is added to.
pub const SUBID_FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];

/// A test's line (`UID:START:COUNT`) in /etc/subuid and /etc/subgid while
/// it lives; only that line is ever added or removed, also on panic.
pub struct SubidLine(String);

impl SubidLine {
    /// Appends `line` to both files (after removing a copy a killed run left).
    pub fn add(line: impl Into<String>) -> SubidLine {
        let guard = SubidLine(line.into());
        remove_subid_line(&guard.0);
        for file in SUBID_FILES {
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&guard.0);
            text.push('\n');
            std::fs::write(file, text).unwrap_or_else(|e| panic!("append to {file}: {e}"));
        }
        guard
    }
}

impl Drop for SubidLine {
    fn drop(&mut self) {
        remove_subid_line(&self.0);
    }
}

/// Removes `line` from both files wherever it stands.
pub fn remove_subid_line(line: &str) {
    for file in SUBID_FILES {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| l.trim() != line)
            .map(|l| format!("{l}\n"))
            .collect();
        if kept != text {
            std::fs::write(file, kept).unwrap_or_else(|e| panic!("restore {file}: {e}"));
        }
    }
}

/// `chown -R uid:uid path`, so that the unprivileged user can use the tree.
pub fn give_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown -R {uid} {} failed", path.display());
}

/// `program` run as `uid`:`uid` through `/usr/bin/setpriv`, with no
/// supplementary groups and no inheritable capabilities.
pub fn command_as(uid: u32, program: &Path) -> Command {
    let setpriv = Path::new("/usr/bin/setpriv");
    assert!(
        setpriv.exists(),
        "needs {} (util-linux): install with .ci/install-deps",
        setpriv.display()
    );
    let mut command = Command::new(setpriv);
    command
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &uid.to_string(),
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(program);
    command
}
