//! Standalone control-plane source: networks described in a local JSON file.
//!
//! The file holds a list of network dicts exactly as neutron-server's `get_network_info` returns
//! them, each with its own `network:dhcp` port (the port this agent plugs). It is re-read on
//! SIGHUP and when it changes on disk; a file that fails to parse is reported and the running
//! state is kept, so a typo never takes DHCP down.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::model::{Network, Port, OWNER_DHCP};

/// A network to serve and the DHCP port this agent owns on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredNetwork {
    pub network: Network,
    pub own_port_id: String,
}

impl DesiredNetwork {
    pub fn own_port(&self) -> Option<&Port> {
        self.network.port(&self.own_port_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("cannot read networks file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("networks file {path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("networks file {path}: expected a JSON list of network objects")]
    NotAList { path: PathBuf },
    #[error("networks file {path}: entry {index}: {source}")]
    Network {
        path: PathBuf,
        index: usize,
        source: Box<crate::model::ModelError>,
    },
    #[error("networks file {path}: network {network} appears more than once")]
    Duplicate { path: PathBuf, network: String },
    #[error("networks file {path}: network {network} has no port with device_owner \"network:dhcp\" for this agent to plug")]
    NoDhcpPort { path: PathBuf, network: String },
}

/// Reads and validates the whole file; either every network is valid or nothing is returned.
pub fn load(path: &Path, host: &str) -> Result<Vec<DesiredNetwork>, StandaloneError> {
    let text = std::fs::read_to_string(path).map_err(|source| StandaloneError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, host)
}

pub fn parse(text: &str, path: &Path, host: &str) -> Result<Vec<DesiredNetwork>, StandaloneError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| StandaloneError::Json {
            path: path.to_owned(),
            source,
        })?;
    let list = value.as_array().ok_or_else(|| StandaloneError::NotAList {
        path: path.to_owned(),
    })?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, v) in list.iter().enumerate() {
        let network = Network::from_json(v).map_err(|source| StandaloneError::Network {
            path: path.to_owned(),
            index,
            source: Box::new(source),
        })?;
        if !seen.insert(network.id.clone()) {
            return Err(StandaloneError::Duplicate {
                path: path.to_owned(),
                network: network.id,
            });
        }
        let own_port_id = pick_own_port(&network, host)
            .ok_or_else(|| StandaloneError::NoDhcpPort {
                path: path.to_owned(),
                network: network.id.clone(),
            })?
            .id
            .clone();
        out.push(DesiredNetwork {
            network,
            own_port_id,
        });
    }
    Ok(out)
}

/// Several agents may serve one network, each with its own DHCP port: ours is the one bound to
/// this host, or else the first DHCP port listed.
pub(crate) fn pick_own_port<'a>(network: &'a Network, host: &str) -> Option<&'a Port> {
    pick_own_port_in(network.ports.iter().map(|p| &**p), host)
}

/// [`pick_own_port`] among a network's ports.
pub(crate) fn pick_own_port_in<'a>(
    ports: impl Iterator<Item = &'a Port> + Clone,
    host: &str,
) -> Option<&'a Port> {
    let mut dhcp = ports.filter(|p| p.device_owner == OWNER_DHCP);
    let first = dhcp.clone().next();
    dhcp.find(|p| p.binding_host_id == host).or(first)
}

/// Cheap change detection for the networks file (polled; no inotify dependency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStamp(Option<(SystemTime, u64)>);

impl FileStamp {
    pub fn of(path: &Path) -> FileStamp {
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = r#"[{"id": "n1", "subnets": [{"id": "s1", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}],
      "ports": [
        {"id": "d1", "mac_address": "fa:16:3e:00:00:01", "device_owner": "network:dhcp", "binding:host_id": "other",
         "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.2"}]},
        {"id": "d2", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp", "binding:host_id": "me",
         "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.3"}]}]}]"#;

    #[test]
    fn picks_the_dhcp_port_bound_to_this_host() {
        let nets = parse(NET, Path::new("f"), "me").unwrap();
        assert_eq!(nets[0].own_port_id, "d2");
        let nets = parse(NET, Path::new("f"), "elsewhere").unwrap();
        assert_eq!(nets[0].own_port_id, "d1");
    }

    #[test]
    fn missing_dhcp_port_is_an_error_naming_the_network() {
        let text = r#"[{"id": "n1", "subnets": [], "ports": []}]"#;
        let e = parse(text, Path::new("nets.json"), "me")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nets.json") && e.contains("n1") && e.contains("network:dhcp"));
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(matches!(
            parse("{", Path::new("f"), "h"),
            Err(StandaloneError::Json { .. })
        ));
        assert!(matches!(
            parse("{}", Path::new("f"), "h"),
            Err(StandaloneError::NotAList { .. })
        ));
        let dup = format!("[{0},{0}]", &NET[1..NET.len() - 1]);
        assert!(matches!(
            parse(&dup, Path::new("f"), "h"),
            Err(StandaloneError::Duplicate { .. })
        ));
        let bad = NET.replace("10.0.0.3", "10.0.0.300");
        let e = parse(&bad, Path::new("f"), "h").unwrap_err().to_string();
        assert!(e.contains("entry 0") && e.contains("port d2"), "{e}");
    }
}
