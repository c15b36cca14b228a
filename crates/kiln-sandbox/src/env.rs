//! The command's environment (Docker's PATH and HOME defaults) and the program paths `execve`
//! tries (argv[0] looked up in the command's PATH, as Docker does for the exec form).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::spec::DEFAULT_PATH;

/// The final environment: `env` in order with later duplicates winning (at the position of
/// the first), then `PATH` and `HOME` defaults when absent.
pub fn command_env(env: &[(String, String)], home: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len() + 2);
    for (k, v) in env {
        match out.iter_mut().find(|(ok, _)| ok == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".to_owned(), DEFAULT_PATH.to_owned()));
    }
    if !out.iter().any(|(k, _)| k == "HOME") {
        out.push(("HOME".to_owned(), home.to_owned()));
    }
    out
}

/// The paths execve tries, in order, for `argv0` under the environment `env`.
pub fn exec_candidates(argv0: &OsStr, env: &[(String, String)]) -> Vec<Vec<u8>> {
    let bytes = argv0.as_bytes();
    if bytes.contains(&b'/') {
        return vec![bytes.to_vec()];
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            let mut p = dir.as_bytes().to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(bytes);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_added_only_when_absent() {
        let env = command_env(&[("A".into(), "1".into())], "/root");
        assert_eq!(
            env,
            vec![
                ("A".into(), "1".into()),
                ("PATH".into(), DEFAULT_PATH.into()),
                ("HOME".into(), "/root".into())
            ]
        );
        let env = command_env(
            &[("HOME".into(), "/x".into()), ("PATH".into(), "/p".into())],
            "/root",
        );
        assert_eq!(
            env,
            vec![("HOME".into(), "/x".into()), ("PATH".into(), "/p".into())]
        );
    }

    #[test]
    fn later_duplicates_win_in_place() {
        let env = command_env(
            &[
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("A".into(), "3".into()),
            ],
            "/",
        );
        assert_eq!(
            &env[..2],
            &[("A".into(), "3".into()), ("B".into(), "2".into())]
        );
    }

    #[test]
    fn candidates_follow_path_unless_argv0_has_a_slash() {
        let env = vec![("PATH".to_owned(), "/a::/b/".to_owned())];
        assert_eq!(
            exec_candidates(OsStr::new("ls"), &env),
            vec![b"/a/ls".to_vec(), b"./ls".to_vec(), b"/b/ls".to_vec()]
        );
        assert_eq!(
            exec_candidates(OsStr::new("./x"), &env),
            vec![b"./x".to_vec()]
        );
    }
}
