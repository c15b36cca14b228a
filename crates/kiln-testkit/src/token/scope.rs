//! Scopes (`repository:NAME:pull,push`) and what a token grants for them.

use serde::Serialize;

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// `repository`, `registry`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name (`group/project`), or `catalog`.
    pub name: String,
    /// Granted actions (`pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

/// Parses `type:name:actions`. The name may itself contain `:` (a host with a port).
pub fn parse_scope(scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let actions = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    Some(Access {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions,
    })
}

/// Grants the requested actions that `allowed` permits (`*` in `allowed` permits all).
pub fn grant(requested: &Access, allowed: &[String]) -> Access {
    let actions = requested
        .actions
        .iter()
        .filter(|a| allowed.iter().any(|ok| ok == "*" || ok == *a))
        .cloned()
        .collect();
    Access {
        kind: requested.kind.clone(),
        name: requested.name.clone(),
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_scope_with_several_actions() {
        let a = parse_scope("repository:group/app:pull,push").expect("valid");
        assert_eq!(a.kind, "repository");
        assert_eq!(a.name, "group/app");
        assert_eq!(a.actions, ["pull", "push"]);
        let g = grant(&a, &["pull".to_owned()]);
        assert_eq!(g.actions, ["pull"]);
        assert!(parse_scope("nonsense").is_none());
    }
}
