//! EXPOSE port specs (`80`, `80/udp`, `8000-8002/tcp`,
//! `127.0.0.1:8080:80`) -> the image config's `port/proto` keys, as Docker's
//! `nat.ParsePortSpecs` reads them.

/// Expands one EXPOSE word into `port/proto` entries (ranges expanded,
/// protocol lower-cased, `tcp` by default).
pub fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // `ip:hostPort:containerPort` and `hostPort:containerPort`: the image
    // only records the container port.
    let container = ports.rsplit(':').next().unwrap_or(ports);
    let bad = || format!("invalid containerPort: {container}");
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (
            parse_port(a).ok_or_else(bad)?,
            parse_port(b).ok_or_else(bad)?,
        ),
        None => {
            let p = parse_port(container).ok_or_else(bad)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid range specified for container port: {container}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::expose_ports;

    #[test]
    fn specs() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose_ports("8000-8002/sctp").unwrap(),
            ["8000/sctp", "8001/sctp", "8002/sctp"]
        );
        assert_eq!(expose_ports("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        for bad in ["", "http", "80/icmp", "70000", "9-8", "-1"] {
            assert!(expose_ports(bad).is_err(), "{bad}");
        }
    }
}
