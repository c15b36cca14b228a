//! The instructions that only edit the image config and the history: ARG,
//! ENV, LABEL, USER, EXPOSE, VOLUME (which also makes its directory for later
//! steps), CMD, ENTRYPOINT, SHELL, STOPSIGNAL, MAINTAINER, HEALTHCHECK and
//! ONBUILD. Each advances the cache key and adds an `empty_layer` history
//! entry written as BuildKit writes it.

use std::collections::BTreeMap;

use kiln_dockerfile::Command;
use kiln_dockerfile::instructions::{CommandLine, Healthcheck};
use kiln_oci::Digest;

use crate::rootfs_path::join_workdir;

use super::root::make_volume_dir;
use super::state::{StageRun, StepResult};

/// Runs a metadata instruction (ENV's scope and config are synced by the step loop).
pub(super) fn step(run: &mut StageRun<'_, '_>, command: &Command) -> StepResult<Option<Digest>> {
    match command {
        Command::Arg(a) => {
            let names: Vec<&str> = a.args.iter().map(|d| d.name.as_str()).collect();
            run.advance_key(format!("ARG {}", names.join(" ")).as_bytes());
            Ok(None)
        }
        Command::Env(kv) => {
            for p in &kv.pairs {
                if p.key.is_empty() {
                    return Err("ENV names can not be blank".into());
                }
            }
            let text = pairs_text(&kv.pairs);
            record(run, format!("ENV {text}"));
            Ok(None)
        }
        Command::Label(kv) => {
            let config = run.image.config.container_config_mut();
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for p in &kv.pairs {
                if p.key.is_empty() {
                    return Err("LABEL names can not be blank".into());
                }
                labels.insert(p.key.clone(), p.value.clone());
            }
            let text = pairs_text(&kv.pairs);
            record(run, format!("LABEL {text}"));
            Ok(None)
        }
        Command::User(u) => {
            run.image.config.container_config_mut().user = Some(u.value.clone());
            record(run, format!("USER {}", u.value));
            Ok(None)
        }
        Command::Expose(words) => {
            let ports: Vec<String> = words
                .values
                .iter()
                .map(|w| {
                    if w.contains('/') {
                        w.to_ascii_lowercase()
                    } else {
                        format!("{w}/tcp")
                    }
                })
                .collect();
            let config = run.image.config.container_config_mut();
            let map = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &ports {
                map.insert(p.clone(), kiln_oci::EmptyObject {});
            }
            let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
            record(run, format!("EXPOSE map[{}]", shown.join(" ")));
            Ok(None)
        }
        Command::Volume(words) => {
            if words.values.iter().any(String::is_empty) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            let config = run.image.config.container_config_mut();
            let map = config.volumes.get_or_insert_with(BTreeMap::new);
            for v in &words.values {
                map.insert(v.clone(), kiln_oci::EmptyObject {});
            }
            // As Docker's classic builder and kaniko: the directory exists for
            // later steps (a later RUN's snapshot captures it).
            let workdir = run.workdir();
            for v in &words.values {
                match (&run.rootfs, &mut run.pending) {
                    (Some(root), _) => make_volume_dir(root, &workdir, v)?,
                    (None, Some(pending)) => pending.volumes.push(join_workdir(&workdir, v)),
                    (None, None) => {}
                }
            }
            record(run, format!("VOLUME {}", go_list(&words.values)));
            Ok(None)
        }
        Command::Cmd(line) => {
            let argv = command_argv(run, line);
            run.image.config.container_config_mut().cmd = Some(argv.clone());
            run.cmd_set_here = true;
            record(run, format!("CMD {}", go_json_list(&argv)));
            Ok(None)
        }
        Command::Entrypoint(line) => {
            let argv = command_argv(run, line);
            let inherited_cmd = !run.cmd_set_here;
            let config = run.image.config.container_config_mut();
            config.entrypoint = Some(argv.clone());
            if inherited_cmd {
                // Docker: ENTRYPOINT resets a CMD inherited from the base.
                config.cmd = None;
            }
            record(run, format!("ENTRYPOINT {}", go_json_list(&argv)));
            Ok(None)
        }
        Command::Shell(words) => {
            run.image.config.container_config_mut().shell = Some(words.values.clone());
            record(run, format!("SHELL {}", go_json_list(&words.values)));
            Ok(None)
        }
        Command::Stopsignal(w) => {
            run.image.config.container_config_mut().stop_signal = Some(w.value.clone());
            record(run, format!("STOPSIGNAL {}", w.value));
            Ok(None)
        }
        Command::Maintainer(w) => {
            run.image.config.author = Some(w.value.clone());
            record(run, format!("MAINTAINER {}", w.value));
            Ok(None)
        }
        Command::Healthcheck(h) => {
            let mut check = kiln_oci::Healthcheck::default();
            match h {
                Healthcheck::None => check.test = Some(vec!["NONE".into()]),
                Healthcheck::Cmd(c) => {
                    let nanos = |d: &Option<std::time::Duration>| {
                        d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    };
                    check.test = Some(c.test.clone());
                    check.interval = nanos(&c.interval);
                    check.timeout = nanos(&c.timeout);
                    check.start_period = nanos(&c.start_period);
                    check.start_interval = nanos(&c.start_interval);
                    check.retries = c.retries.map(i64::from);
                }
            }
            let shown = go_list(check.test.as_deref().unwrap_or(&[]));
            run.image.config.container_config_mut().healthcheck = Some(check);
            record(run, format!("HEALTHCHECK &{{{shown}}}"));
            Ok(None)
        }
        Command::Onbuild(o) => {
            run.image
                .config
                .container_config_mut()
                .on_build
                .get_or_insert_with(Vec::new)
                .push(o.trigger.clone());
            record(run, format!("ONBUILD {}", o.trigger));
            Ok(None)
        }
        Command::Workdir(_)
        | Command::Copy(_)
        | Command::Add(_)
        | Command::Run(_)
        | Command::From(_) => Err("internal: not a metadata instruction".into()),
    }
}

/// A config-only step: the key advances and the history gets an `empty_layer` entry.
fn record(run: &mut StageRun<'_, '_>, created_by: String) {
    run.advance_key(created_by.as_bytes());
    let history = run.history(created_by);
    run.image.config.push_empty_step(history);
}

/// CMD/ENTRYPOINT argv: exec form as is, shell form through SHELL.
fn command_argv(run: &StageRun<'_, '_>, line: &CommandLine) -> Vec<String> {
    match line {
        CommandLine::Exec(argv) => argv.clone(),
        CommandLine::Shell(text) => {
            let mut argv = run.shell();
            argv.push(text.clone());
            argv
        }
    }
}

fn pairs_text(pairs: &[kiln_dockerfile::instructions::KeyValue]) -> String {
    pairs
        .iter()
        .map(|p| format!("{}={}", p.key, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%q`-style JSON list as BuildKit writes CMD/ENTRYPOINT history: `["a" "b"]`.
fn go_json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}
