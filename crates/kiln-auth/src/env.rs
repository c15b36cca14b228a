//! The environment, injectable so tests never mutate the process's variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Reads environment variables.
pub trait Environment: Send + Sync {
    /// The value of `name`, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;

    /// The value of `name` when set and not empty.
    fn non_empty(&self, name: &str) -> Option<String> {
        self.var(name).filter(|v| !v.is_empty())
    }

    /// `$HOME`.
    fn home_dir(&self) -> Option<PathBuf> {
        self.non_empty("HOME").map(PathBuf::from)
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables (for tests and embedders).
#[derive(Debug, Clone, Default)]
pub struct MapEnvironment {
    vars: BTreeMap<String, String>,
}

impl MapEnvironment {
    /// An empty environment.
    pub fn new() -> MapEnvironment {
        MapEnvironment::default()
    }

    /// Adds `name=value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> MapEnvironment {
        self.vars.insert(name.to_owned(), value.into());
        self
    }
}

impl Environment for MapEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}
