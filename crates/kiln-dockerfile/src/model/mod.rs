//! The build model: a parsed Dockerfile as global ARGs plus stages.

mod env;
mod plan;
mod platform;

pub use env::{PROXY_ARGS, StageEnv};
pub use plan::{Base, Plan, PlanOptions, PlannedStage};
pub use platform::Platform;

use crate::diagnostic::{Diagnostic, Diagnostics, Span};
use crate::instructions::{ArgDecl, Command, FromCmd, Instruction, instruction_from_node};
use crate::syntax::{Directives, Node, parse_syntax_collect};

/// A whole Dockerfile, checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dockerfile {
    /// The name used in diagnostics.
    pub file: String,
    pub directives: Directives,
    /// `ARG`s before the first `FROM` (usable in FROM lines), in order.
    pub global_args: Vec<GlobalArg>,
    pub stages: Vec<Stage>,
    /// Non-fatal findings (e.g. empty continuation lines).
    pub warnings: Vec<Diagnostic>,
}

/// One ARG declared before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GlobalArg {
    pub decl: ArgDecl,
    pub span: Span,
}

/// A build stage: `FROM ...` and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stage {
    /// 0-based position in the file (what `--from=0` refers to).
    pub index: usize,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    pub from: FromCmd,
    /// Where the FROM line is.
    pub span: Span,
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    /// The stage with this name (case-insensitive) or this index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

/// Parses a Dockerfile from its bytes. `file` is only used in diagnostics.
/// Every error in the file is returned, sorted by position.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Dockerfile, Diagnostics> {
    let (tree, mut errors) = parse_syntax_collect(file, bytes);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &tree.nodes {
        let ins = match instruction_from_node(node) {
            Ok(i) => i,
            Err(msgs) => {
                for m in msgs {
                    errors.push(Diagnostic::new(file, node.span.start, m));
                }
                // Keep stage boundaries even when a FROM line is wrong.
                if node.keyword.eq_ignore_ascii_case("from") {
                    stages.push(placeholder_stage(stages.len(), node));
                }
                continue;
            }
        };
        match ins.command {
            Command::From(from) => {
                if let Some(name) = &from.name
                    && stages.iter().any(|s| s.name.as_ref() == Some(name))
                {
                    errors.push(Diagnostic::new(
                        file,
                        ins.span.start,
                        format!("duplicate stage name {name:?}"),
                    ));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: from.name.clone(),
                    from,
                    span: ins.span,
                    instructions: Vec::new(),
                });
            }
            _ => match stages.last_mut() {
                Some(stage) => stage.instructions.push(ins),
                None => match ins.command {
                    Command::Arg(a) => {
                        global_args.extend(a.args.into_iter().map(|decl| GlobalArg {
                            decl,
                            span: ins.span,
                        }))
                    }
                    _ => errors.push(Diagnostic::new(
                        file,
                        ins.span.start,
                        format!(
                            "no build stage in current context: {} before the first FROM",
                            ins.command.name()
                        ),
                    )),
                },
            },
        }
    }
    if errors.is_empty() && stages.is_empty() {
        let line = tree.nodes.last().map(|n| n.span.start).unwrap_or_default();
        errors.push(Diagnostic::new(
            file,
            line,
            "no FROM instruction: the Dockerfile has no build stage",
        ));
    }
    if !errors.is_empty() {
        errors.0.sort_by_key(|d| d.pos);
        return Err(errors);
    }
    Ok(Dockerfile {
        file: file.to_string(),
        directives: tree.directives,
        global_args,
        stages,
        warnings: tree.warnings,
    })
}

fn placeholder_stage(index: usize, node: &Node) -> Stage {
    Stage {
        index,
        name: None,
        from: FromCmd {
            image: String::new(),
            name: None,
            platform: None,
        },
        span: node.span,
        instructions: Vec::new(),
    }
}
