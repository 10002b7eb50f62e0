//! The shipped deployment files agree with the binary: the Kubernetes
//! example's configuration parses and the MTA in it points at the address
//! danegate listens on; the systemd unit runs the `run` command with the
//! reload signal danegate handles.

use danegate::config::Config;

#[test]
fn kubernetes_example_config_parses_and_matches_the_relayhost() {
    let yaml = include_str!("../config/kubernetes/sidecar.yaml");
    let start = yaml.find("# BEGIN danegate.toml").expect("BEGIN marker");
    let end = yaml.find("# END danegate.toml").expect("END marker");
    let toml: String = yaml[start..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::parse(&toml, "sidecar.yaml").unwrap();
    assert_eq!(
        config.server.listen,
        vec!["127.0.0.1:10025".parse().unwrap()]
    );
    assert!(yaml.contains("value: \"[127.0.0.1]:10025\""));
    assert!(config.server.allows("127.0.0.1".parse().unwrap()));
}

#[test]
fn systemd_unit_runs_and_reloads_danegate() {
    let unit = include_str!("../config/danegate.service");
    assert!(unit.contains(
        "\nExecStart=/usr/local/bin/danegate run --config /etc/danegate/danegate.toml\n"
    ));
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    // The stop timeout leaves room for the default shutdown grace period.
    let grace = Config::default().timeouts.shutdown_grace;
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    assert!(
        stop > grace,
        "TimeoutStopSec={stop} must exceed shutdown_grace={grace}"
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
}
