//! The shipped deployment files agree with the binary: the Kubernetes
//! example's configuration parses and the MTA in it points at the address
//! danegate listens on; the systemd unit runs the `run` command with the
//! reload signal danegate handles; each gives danegate its writable
//! state directory.

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
    // The state directory is a writable volume (the root file system is
    // read-only).
    assert_eq!(config.state.dir, std::path::Path::new("/var/lib/danegate"));
    assert!(yaml.contains("readOnlyRootFilesystem: true"));
    assert!(yaml.contains("- { name: state, mountPath: /var/lib/danegate }"));
    assert!(yaml.contains("- name: state\n          emptyDir: {}"));
}

#[test]
fn container_image_has_a_writable_state_directory() {
    let docker = include_str!("../Dockerfile");
    let state = Config::default().state.dir;
    let dir = state.display().to_string();
    assert!(docker.contains(&format!(
        "COPY --from=build --chown=nonroot:nonroot --chmod=0700 /state {dir}\n"
    )));
    assert!(docker.contains(&format!("VOLUME {dir}\n")));
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
    // The default [state] dir is the unit's StateDirectory, the one
    // writable path under ProtectSystem=strict.
    assert_eq!(
        Config::default().state.dir,
        std::path::Path::new("/var/lib/danegate")
    );
    assert!(unit.contains("\nStateDirectory=danegate\n"));
    for hardening in [
        "NoNewPrivileges=yes",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
}
