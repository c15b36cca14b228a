//! Matching config.json keys (`https://index.docker.io/v1/`, `ghcr.io`,
//! `http://host:5000/v2/`) against a registry host.

/// The canonical Docker Hub host.
pub const DOCKER_HUB: &str = "docker.io";

/// The key Docker writes for Docker Hub, and the server URL helpers expect for it.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Normalises a registry key or host: strips the scheme and any path, lower-cases, and
/// maps Docker Hub's aliases (`index.docker.io`, `registry-1.docker.io`) to `docker.io`.
pub fn normalize(key: &str) -> String {
    let key = key.trim();
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

/// The server URL to hand to a credential helper for `registry`.
pub fn helper_server_url(registry: &str) -> String {
    let host = normalize(registry);
    if host == DOCKER_HUB {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_scheme_or_path_match_the_host() {
        assert_eq!(normalize("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize("GHCR.io"), "ghcr.io");
        assert_eq!(
            normalize("registry.gitlab.com/group/project"),
            "registry.gitlab.com"
        );
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(helper_server_url("https://quay.io"), "quay.io");
    }
}
