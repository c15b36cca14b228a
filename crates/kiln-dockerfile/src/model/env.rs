//! The per-stage expansion environment: ENV and ARG scope, and which
//! arguments of which instruction are expanded (BuildKit's rules).

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::instructions::{
    Chmod, Command, CopyCmd, InlineSource, Instruction, KeyValue, KeyValues, RunCmd, Word, Words,
};
use crate::instructions::{expose_ports, parse_mounts_expanded};
use crate::shell::{ExpandError, Lexer, Vars};

/// Build args that are available to RUN without being declared with ARG.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The variables visible at one point of a stage. The engine keeps one per
/// stage and, for each instruction in order: `let ins = env.expand(&ins)?;`
/// then runs it, then `env.apply(&ins)` (ENV/ARG change the scope).
///
/// `Debug` shows ENV but only the names of ARGs and build args: their values
/// may be secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct StageEnv {
    file: String,
    escape: char,
    /// ENV in image-config order (base image env first).
    env: Vec<(String, String)>,
    /// ARGs declared in this stage that have a value, in declaration order.
    args: Vec<(String, String)>,
    /// `--build-arg` values.
    build_args: BTreeMap<String, String>,
    /// What a bare `ARG NAME` picks up: global ARG values and the predefined
    /// platform ARGs.
    inherited: BTreeMap<String, String>,
}

impl std::fmt::Debug for StageEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageEnv")
            .field("escape", &self.escape)
            .field("env", &self.env)
            .field(
                "args",
                &self.args.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("build_args", &self.build_args.keys().collect::<Vec<_>>())
            .field("inherited", &self.inherited.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Vars for StageEnv {
    fn lookup(&self, name: &str) -> Option<&str> {
        StageEnv::lookup(self, name)
    }
}

impl StageEnv {
    pub(crate) fn new(
        file: &str,
        escape: char,
        build_args: BTreeMap<String, String>,
        inherited: BTreeMap<String, String>,
    ) -> StageEnv {
        StageEnv {
            file: file.to_string(),
            escape,
            env: Vec::new(),
            args: Vec::new(),
            build_args,
            inherited,
        }
    }

    /// ENV wins over ARG of the same name.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .or_else(|| self.args.iter().rev().find(|(k, _)| k == name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the ENV list with the base image's `Env` (`KEY=VALUE`
    /// strings; a name without `=` is set and empty). Call before the
    /// stage's first instruction.
    pub fn set_image_env(&mut self, env: &[String]) {
        self.env.clear();
        for e in env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            self.set_env(k, v);
        }
    }

    /// Starts from another stage's final scope (`FROM <stage>`): its ENV
    /// and its ARG values carry over.
    pub fn inherit(&mut self, parent: &StageEnv) {
        self.env = parent.env.clone();
        self.args = parent.args.clone();
    }

    /// Sets one ENV variable (replacing in place, or appending).
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    /// Declares `ARG name[=default]` (default already expanded): the value
    /// is the build arg, else the default, else the global/predefined value.
    pub fn declare_arg(&mut self, name: &str, default: Option<&str>) {
        let value = self
            .build_args
            .get(name)
            .cloned()
            .or_else(|| default.map(str::to_string))
            .or_else(|| self.inherited.get(name).cloned());
        // Without any value the name keeps what it had (e.g. inherited from
        // the parent stage).
        if let Some(v) = value {
            self.args.retain(|(k, _)| k != name);
            self.args.push((name.to_string(), v));
        }
    }

    /// The ENV list, for the image config.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Declared ARGs that have a value.
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }

    /// The environment of a RUN: ENV, then ARGs not shadowed by ENV, then
    /// proxy build args not otherwise set.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        for (k, v) in &self.args {
            if !out.iter().any(|(e, _)| e == k) {
                out.push((k.clone(), v.clone()));
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(*p)
                && !out.iter().any(|(e, _)| e == p)
            {
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    fn lexer(&self) -> Lexer {
        Lexer::new(self.escape)
    }

    /// Expands one word (single-word mode).
    pub fn expand_word(&self, word: &str) -> Result<String, ExpandError> {
        self.lexer().process_word(word, self)
    }

    /// Expands and splits one word (word-splitting mode).
    pub fn expand_words(&self, word: &str) -> Result<Vec<String>, ExpandError> {
        self.lexer().process_words(word, self)
    }

    /// Expands `$VAR`s in a heredoc body, leaving quotes and escapes alone.
    pub fn expand_heredoc(&self, content: &str) -> Result<String, ExpandError> {
        let mut lex = self.lexer();
        lex.skip_process_quotes = true;
        lex.raw_escapes = true;
        lex.process_word(content, self)
    }

    /// Applies an (expanded) instruction's effect on the scope: ENV sets
    /// variables, ARG declares them.
    pub fn apply(&mut self, ins: &Instruction) {
        match &ins.command {
            Command::Env(kv) => {
                for p in &kv.pairs {
                    self.set_env(&p.key, &p.value);
                }
            }
            Command::Arg(a) => {
                for d in &a.args {
                    self.declare_arg(&d.name, d.default.as_deref());
                }
            }
            _ => {}
        }
    }

    /// A copy of `ins` with the arguments BuildKit expands expanded: ENV and
    /// LABEL keys and values, ARG names and defaults, COPY/ADD sources, dest,
    /// `--from`, `--chown`, `--chmod`, `--exclude`, `--checksum` and heredoc
    /// bodies with unquoted markers, EXPOSE (split into words, then checked
    /// and normalised to `port/proto`, ranges expanded), VOLUME,
    /// USER, WORKDIR, STOPSIGNAL, and RUN `--mount` options. RUN, CMD,
    /// ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD and FROM (done by the plan)
    /// are left as written.
    pub fn expand(&self, ins: &Instruction) -> Result<Instruction, Diagnostic> {
        let err = |m: String| Diagnostic::new(&self.file, ins.span.start, m);
        let w = |s: &str| self.expand_word(s).map_err(|e| err(e.to_string()));
        let opt = |s: &Option<String>| s.as_deref().map(w).transpose();
        let command = match &ins.command {
            Command::Env(kv) => Command::Env(self.expand_pairs(kv, &w)?),
            Command::Label(kv) => Command::Label(self.expand_pairs(kv, &w)?),
            Command::Arg(a) => {
                let mut a = a.clone();
                for d in &mut a.args {
                    d.name = w(&d.name)?;
                    d.default = opt(&d.default)?;
                }
                Command::Arg(a)
            }
            Command::Copy(c) => Command::Copy(self.expand_copy(c, &w, &err)?),
            Command::Add(c) => Command::Add(self.expand_copy(c, &w, &err)?),
            Command::Expose(p) => {
                let mut values = Vec::new();
                for v in &p.values {
                    for word in self.expand_words(v).map_err(|e| err(e.to_string()))? {
                        values.extend(expose_ports(&word).map_err(err)?);
                    }
                }
                Command::Expose(Words { values })
            }
            Command::Volume(v) => {
                let mut values = Vec::new();
                for p in &v.values {
                    let e = w(p)?;
                    if e.trim().is_empty() {
                        return Err(err("VOLUME specified can not be an empty string".into()));
                    }
                    values.push(e);
                }
                Command::Volume(Words { values })
            }
            Command::User(v) => Command::User(Word {
                value: w(&v.value)?,
            }),
            Command::Workdir(v) => Command::Workdir(Word {
                value: w(&v.value)?,
            }),
            Command::Stopsignal(v) => Command::Stopsignal(Word {
                value: w(&v.value)?,
            }),
            Command::Run(r) => {
                let mut errors = Vec::new();
                let mut expand = |s: &str| self.expand_word(s).map_err(|e| e.to_string());
                let mounts = parse_mounts_expanded(&r.mount_flags, &mut expand, &mut errors);
                if let Some(e) = errors.into_iter().next() {
                    return Err(err(e));
                }
                Command::Run(RunCmd {
                    mounts,
                    ..r.clone()
                })
            }
            other => other.clone(),
        };
        Ok(Instruction {
            command,
            span: ins.span,
            original: ins.original.clone(),
        })
    }

    fn expand_pairs(
        &self,
        kv: &KeyValues,
        w: &dyn Fn(&str) -> Result<String, Diagnostic>,
    ) -> Result<KeyValues, Diagnostic> {
        let mut pairs = Vec::with_capacity(kv.pairs.len());
        for p in &kv.pairs {
            pairs.push(KeyValue {
                key: w(&p.key)?,
                value: w(&p.value)?,
            });
        }
        Ok(KeyValues { pairs })
    }

    fn expand_copy(
        &self,
        c: &CopyCmd,
        w: &dyn Fn(&str) -> Result<String, Diagnostic>,
        err: &dyn Fn(String) -> Diagnostic,
    ) -> Result<CopyCmd, Diagnostic> {
        let opt = |s: &Option<String>| s.as_deref().map(w).transpose();
        let mut out = c.clone();
        out.sources = c.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
        out.dest = w(&c.dest)?;
        out.from = opt(&c.from)?;
        out.chown = opt(&c.chown)?;
        out.chmod = opt(&c.chmod)?;
        out.checksum = opt(&c.checksum)?;
        out.exclude = c.exclude.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
        if let Some(m) = &out.chmod {
            Chmod::parse(m).map_err(err)?;
        }
        let mut inline = Vec::with_capacity(c.inline.len());
        for s in &c.inline {
            let data = if s.expand {
                self.expand_heredoc(&s.data)
                    .map_err(|e| err(e.to_string()))?
            } else {
                s.data.clone()
            };
            inline.push(InlineSource { data, ..s.clone() });
        }
        out.inline = inline;
        Ok(out)
    }
}
