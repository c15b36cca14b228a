//! The image configuration: a superset of the OCI image config and Docker's image
//! JSON (`application/vnd.docker.container.image.v1+json`).
//!
//! Every level keeps the fields it does not model in an `extra` map and writes them
//! back (Docker's `container_config`, `docker_version`, `Hostname`, ... survive a
//! read-modify-write). Absent and empty are different: `Option::None` is not written,
//! `Some(empty)` is written as `[]`/`{}`; this matters because Docker writes
//! `"ExposedPorts":{"80/tcp":{}}` and some tools write `"Cmd":[]` on purpose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical_json;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::manifest::DocumentError;
use crate::media_type::MediaType;
use crate::platform::Platform;
use crate::serde_util::{EmptyObject, null_as_default};

/// Unknown fields, kept verbatim.
pub type ExtraFields = BTreeMap<String, serde_json::Value>;

/// The image config document. Field order is the OCI Go struct's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime defaults for containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff IDs.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per Dockerfile step, including steps that made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// Container defaults (`config` in the image config), Docker's field names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: keys like `80/tcp`.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// `ENV` as `KEY=value`, in order.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `LABEL`.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Windows-only escaping hint written by Docker for shell-form commands.
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub args_escaped: Option<bool>,
    /// `HEALTHCHECK` (Docker extension).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers (Docker extension).
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `SHELL` (Docker extension).
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields not modelled above (`Hostname`, `AttachStdin`, ...).
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// `HEALTHCHECK`; durations are nanoseconds, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// `--interval` in ns.
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// `--timeout` in ns.
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// `--start-period` in ns.
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
    /// `--start-interval` in ns.
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<i64>,
    /// `--retries`.
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// `rootfs`: the uncompressed digests of the layers, base first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// diff IDs (sha256 of each uncompressed layer tar).
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
            extra: ExtraFields::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, e.g. `/bin/sh -c #(nop)  CMD ["sh"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

impl History {
    /// Whether this entry has a layer (i.e. `empty_layer` is not true).
    pub fn has_layer(&self) -> bool {
        self.empty_layer != Some(true)
    }
}

impl ImageConfig {
    /// An empty config for a platform (no layers, no history).
    pub fn for_platform(platform: &Platform) -> ImageConfig {
        ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            os_features: platform.os_features.clone(),
            variant: platform.variant.clone(),
            ..ImageConfig::default()
        }
    }

    /// Parses a config document.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageConfig, DocumentError> {
        DocumentError::parse("image config", bytes)
    }

    /// The platform this config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: None,
        }
    }

    /// Canonical JSON bytes and a descriptor of the given config media type.
    pub fn to_blob(&self, media_type: MediaType) -> serde_json::Result<(Descriptor, Vec<u8>)> {
        canonical_json::to_blob(media_type, self)
    }

    /// The container config, created empty if absent.
    pub fn container_config_mut(&mut self) -> &mut ContainerConfig {
        self.config.get_or_insert_with(ContainerConfig::default)
    }

    /// Records a layer: its diff ID and a history entry (not empty).
    pub fn push_layer(&mut self, diff_id: Digest, mut history: History) {
        self.rootfs.diff_ids.push(diff_id);
        history.empty_layer = None;
        self.history.get_or_insert_with(Vec::new).push(history);
    }

    /// Records a step that made no layer.
    pub fn push_empty_step(&mut self, mut history: History) {
        history.empty_layer = Some(true);
        self.history.get_or_insert_with(Vec::new).push(history);
    }

    /// Gives the step recorded (empty) at history index `step` a layer after all:
    /// its entry is no longer empty and `diff_id` is appended. Only right when no
    /// later step has a layer (the diff IDs follow the history's non-empty
    /// entries); `false`, changing nothing, when one has or there is no such step.
    pub fn add_layer_to_step(&mut self, step: usize, diff_id: Digest) -> bool {
        let Some(history) = self.history.as_mut() else {
            return false;
        };
        if step >= history.len() || history[step..].iter().any(|h| h.empty_layer != Some(true)) {
            return false;
        }
        history[step].empty_layer = None;
        self.rootfs.diff_ids.push(diff_id);
        true
    }
}

impl ContainerConfig {
    /// The value of environment variable `name`, if set.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.as_ref()?.iter().find_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            (key == name).then_some(value)
        })
    }

    /// Sets `name=value`, replacing an existing entry in place or appending.
    pub fn set_env_var(&mut self, name: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == name)
        {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config in the shape Docker 24 writes (abridged), with Docker-only fields.
    const DOCKER_CONFIG: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"nobody","AttachStdin":false,"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=\u003cb\u003e"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD-SHELL","wget -q localhost || exit 1"],"Interval":30000000000,"Timeout":5000000000,"StartPeriod":1000000000,"StartInterval":2000000000,"Retries":3},"Image":"sha256:abc","Volumes":{"/data":{}},"WorkingDir":"/srv","Entrypoint":null,"OnBuild":["RUN echo hi"],"Labels":{"b":"2","a":"1"},"StopSignal":"SIGTERM","Shell":["/bin/sh","-c"],"ArgsEscaped":true},"container":"0123","container_config":{"Cmd":["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"]},"created":"2023-05-19T20:19:24.567144599Z","docker_version":"20.10.23","history":[{"created":"2023-05-19T20:19:24.3Z","created_by":"/bin/sh -c #(nop) ADD file:abc in / "},{"created":"2023-05-19T20:19:24.5Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f"]}}"##;

    #[test]
    fn docker_config_fields_are_typed_and_unknown_ones_kept() {
        let config = ImageConfig::from_slice(DOCKER_CONFIG.as_bytes()).unwrap();
        let container = config.config.as_ref().unwrap();
        assert_eq!(container.user.as_deref(), Some("nobody"));
        assert_eq!(
            container
                .exposed_ports
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["443/tcp", "80/tcp"]
        );
        assert_eq!(container.env_var("A"), Some("<b>"));
        assert_eq!(container.entrypoint, None);
        let health = container.healthcheck.as_ref().unwrap();
        assert_eq!(health.interval, Some(30_000_000_000));
        assert_eq!(health.start_interval, Some(2_000_000_000));
        assert_eq!(health.retries, Some(3));
        assert_eq!(
            container.on_build.as_deref(),
            Some(&["RUN echo hi".to_owned()][..])
        );
        assert_eq!(container.shell.as_ref().unwrap().len(), 2);
        assert_eq!(container.args_escaped, Some(true));
        assert_eq!(container.extra["Hostname"], "");
        assert_eq!(container.extra["Image"], "sha256:abc");
        assert!(config.extra.contains_key("container_config"));
        assert_eq!(config.extra["docker_version"], "20.10.23");
        let history = config.history.as_ref().unwrap();
        assert!(history[0].has_layer() && !history[1].has_layer());
        assert_eq!(config.rootfs.diff_ids.len(), 1);

        // Writing back keeps every field; re-reading gives the same value.
        let written = canonical_json::to_vec(&config).unwrap();
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(
            text.contains(r#""ExposedPorts":{"443/tcp":{},"80/tcp":{}}"#),
            "{text}"
        );
        assert!(text.contains(r#""A=\u003cb\u003e""#), "{text}");
        assert!(text.contains(r#""Volumes":{"/data":{}}"#), "{text}");
        assert!(
            !text.contains("Entrypoint"),
            "null Entrypoint is absent: {text}"
        );
        assert!(text.contains(r#""docker_version":"20.10.23""#));
        assert_eq!(ImageConfig::from_slice(&written).unwrap(), config);
        // Canonical output is a fixed point.
        assert_eq!(
            canonical_json::to_vec(&ImageConfig::from_slice(&written).unwrap()).unwrap(),
            written
        );
    }

    #[test]
    fn empty_and_absent_are_distinguished() {
        let config = ImageConfig::from_slice(
            br#"{"architecture":"arm64","os":"linux","config":{"Cmd":[],"Labels":{}},"rootfs":{"type":"layers","diff_ids":null}}"#,
        )
        .unwrap();
        let text = String::from_utf8(canonical_json::to_vec(&config).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"architecture":"arm64","os":"linux","config":{"Cmd":[],"Labels":{}},"rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn building_a_config_from_scratch_is_deterministic() {
        let build = || {
            let mut config = ImageConfig::for_platform(&"linux/arm64".parse().unwrap());
            config.created = Some("1970-01-01T00:00:00Z".to_owned());
            let container = config.container_config_mut();
            container.set_env_var("PATH", "/bin");
            container.set_env_var("HOME", "/root");
            container.set_env_var("PATH", "/usr/bin:/bin");
            container
                .exposed_ports
                .get_or_insert_with(BTreeMap::new)
                .insert("8080/tcp".to_owned(), EmptyObject);
            config.push_layer(
                Digest::sha256_of(b"layer"),
                History {
                    created_by: Some("COPY . /".to_owned()),
                    ..History::default()
                },
            );
            config.push_empty_step(History {
                created_by: Some("CMD [\"x\"]".to_owned()),
                ..History::default()
            });
            config.to_blob(MediaType::OciConfig).unwrap()
        };
        let (first_descriptor, first) = build();
        let (second_descriptor, second) = build();
        assert_eq!(first, second);
        assert_eq!(first_descriptor, second_descriptor);
        let text = String::from_utf8(first).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"created":"1970-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8","config":{{"ExposedPorts":{{"8080/tcp":{{}}}},"Env":["PATH=/usr/bin:/bin","HOME=/root"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[{{"created_by":"COPY . /"}},{{"created_by":"CMD [\"x\"]","empty_layer":true}}]}}"#,
                Digest::sha256_of(b"layer")
            )
        );
    }

    #[test]
    fn a_step_gains_its_layer_only_while_no_later_step_has_one() {
        let step = |n: &str| History {
            created_by: Some(n.into()),
            ..History::default()
        };
        let mut config = ImageConfig::default();
        config.push_layer(Digest::sha256_of(b"base"), step("base"));
        config.push_empty_step(step("WORKDIR"));
        config.push_empty_step(step("ENV"));
        assert!(!config.add_layer_to_step(3, Digest::sha256_of(b"none")));
        assert!(config.add_layer_to_step(1, Digest::sha256_of(b"workdir")));
        let history = config.history.as_ref().unwrap();
        assert_eq!(history[1].empty_layer, None);
        assert_eq!(history[2].empty_layer, Some(true));
        assert_eq!(config.rootfs.diff_ids.len(), 2);
        // A layer after it: the diff IDs would be out of order.
        config.push_layer(Digest::sha256_of(b"copy"), step("COPY"));
        config.push_empty_step(step("LABEL"));
        assert!(!config.add_layer_to_step(2, Digest::sha256_of(b"late")));
        assert_eq!(config.rootfs.diff_ids.len(), 3);
    }
}
