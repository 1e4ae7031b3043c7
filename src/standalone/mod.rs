//! Standalone control-plane source: networks described in a local JSON file.
//!
//! The file holds a list of network dicts exactly as neutron-server's `get_network_info` returns
//! them, each with its own `network:dhcp` port (the port this agent plugs). It is re-read on
//! SIGHUP and when it changes on disk; a file that fails to parse is reported and the running
//! state is kept, so a typo never takes DHCP down.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub mod jsonscan;
pub mod netfile;
pub mod reload;

use crate::agent::DesiredNetwork;
use crate::model::{Network, Port, OWNER_DHCP};

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
    #[error("networks file {path}: {kind}, not a regular file; refusing to read it")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("networks file {path}: network {network} appears more than once")]
    Duplicate { path: PathBuf, network: String },
    #[error("networks file {path}: network {network} has no port with device_owner \"network:dhcp\" for this agent to plug")]
    NoDhcpPort { path: PathBuf, network: String },
}

/// The networks of a file that passed validation, and what was refused.
#[derive(Debug, Default)]
pub struct Parsed {
    pub networks: Vec<DesiredNetwork>,
    pub rejected: Vec<Rejected>,
}

/// A part of the file that is not served: a whole network, or one port of a network that is.
#[derive(Debug)]
pub struct Rejected {
    /// The id of a network refused as a whole, when its entry names one: a network of that id
    /// that is being served keeps its running configuration.
    pub network: Option<String>,
    pub error: StandaloneError,
}

/// Reads and validates the whole file: a file that is not a JSON list is an error; otherwise
/// every valid network is returned and each invalid one (or invalid VM port) is refused on
/// its own.
pub fn load(path: &Path, host: &str) -> Result<Parsed, StandaloneError> {
    let text = std::fs::read_to_string(path).map_err(|source| StandaloneError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, host)
}

pub fn parse(text: &str, path: &Path, host: &str) -> Result<Parsed, StandaloneError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| StandaloneError::Json {
            path: path.to_owned(),
            source,
        })?;
    let list = value.as_array().ok_or_else(|| StandaloneError::NotAList {
        path: path.to_owned(),
    })?;
    let mut out = Parsed::default();
    let mut count = std::collections::HashMap::new();
    for v in list {
        if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
            *count.entry(id).or_insert(0usize) += 1;
        }
    }
    let mut duplicates = HashSet::new();
    for (index, v) in list.iter().enumerate() {
        let named = v.get("id").and_then(|i| i.as_str());
        let entry_error = |source: crate::model::ModelError| StandaloneError::Network {
            path: path.to_owned(),
            index,
            source: Box::new(source),
        };
        if let Some(id) = named.filter(|id| count.get(id).is_some_and(|n| *n > 1)) {
            if duplicates.insert(id) {
                out.rejected.push(Rejected {
                    network: Some(id.to_owned()),
                    error: StandaloneError::Duplicate {
                        path: path.to_owned(),
                        network: id.to_owned(),
                    },
                });
            }
            continue;
        }
        let refuse = |error| Rejected {
            network: named.map(str::to_owned),
            error,
        };
        let mut network = match Network::from_json(v) {
            Ok(n) => n,
            Err(e) => {
                out.rejected.push(refuse(entry_error(e)));
                continue;
            }
        };
        match network.validate() {
            Ok((_, ports)) => out.rejected.extend(ports.into_iter().map(|e| Rejected {
                network: None,
                error: entry_error(e),
            })),
            Err(e) => {
                out.rejected.push(refuse(entry_error(e)));
                continue;
            }
        }
        let Some(own) = pick_own_port(&network, host) else {
            out.rejected.push(refuse(StandaloneError::NoDhcpPort {
                path: path.to_owned(),
                network: network.id.clone(),
            }));
            continue;
        };
        let own_port_id = own.id.clone();
        out.networks.push(DesiredNetwork {
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

/// Cheap change detection for the networks file (polled; no inotify dependency): a
/// replacement (new inode), any write (ctime, which no `touch -d`, `cp -p` or `rsync -t` can set
/// back) or a change of size or mtime is noticed, also when the size and mtime stay the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStamp(Option<Stamp>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub fn of(path: &Path) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp(std::fs::metadata(path).ok().map(|m| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: &str = "e0000001-0000-4000-8000-000000000001";
    const NET: &str = r#"[{"id": "e0000001-0000-4000-8000-000000000001",
      "subnets": [{"id": "5b000001-0000-4000-8000-000000000001", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}],
      "ports": [
        {"id": "d0000001-0000-4000-8000-000000000001", "mac_address": "fa:16:3e:00:00:01", "device_owner": "network:dhcp", "binding:host_id": "other",
         "fixed_ips": [{"subnet_id": "5b000001-0000-4000-8000-000000000001", "ip_address": "10.0.0.2"}]},
        {"id": "d0000001-0000-4000-8000-000000000002", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp", "binding:host_id": "me",
         "fixed_ips": [{"subnet_id": "5b000001-0000-4000-8000-000000000001", "ip_address": "10.0.0.3"}]},
        {"id": "a0000001-0000-4000-8000-000000000001", "mac_address": "fa:16:3e:00:00:03", "device_owner": "compute:nova",
         "fixed_ips": [{"subnet_id": "5b000001-0000-4000-8000-000000000001", "ip_address": "10.0.0.4"}]}]}]"#;
    const D1: &str = "d0000001-0000-4000-8000-000000000001";
    const D2: &str = "d0000001-0000-4000-8000-000000000002";
    const VM: &str = "a0000001-0000-4000-8000-000000000001";

    /// NET and a second network, `e...02`, whose text is NET's with `edit` applied.
    fn two(edit: impl Fn(&str) -> String) -> String {
        let second = NET[1..NET.len() - 1].replace(N1, "e0000001-0000-4000-8000-000000000002");
        format!("[{}, {}]", &NET[1..NET.len() - 1], edit(&second))
    }

    #[test]
    fn picks_the_dhcp_port_bound_to_this_host() {
        let nets = parse(NET, Path::new("f"), "me").unwrap().networks;
        assert_eq!(nets[0].own_port_id, D2);
        let nets = parse(NET, Path::new("f"), "elsewhere").unwrap().networks;
        assert_eq!(nets[0].own_port_id, D1);
    }

    #[test]
    fn missing_dhcp_port_refuses_that_network_only() {
        let text = two(|n| n.replace("network:dhcp", "compute:nova"));
        let parsed = parse(&text, Path::new("nets.json"), "me").unwrap();
        assert_eq!(parsed.networks.len(), 1);
        assert_eq!(parsed.networks[0].network.id, N1);
        let e = parsed.rejected[0].error.to_string();
        assert!(
            e.contains("nets.json")
                && e.contains("e0000001-0000-4000-8000-000000000002")
                && e.contains("network:dhcp"),
            "{e}"
        );
    }

    #[test]
    fn ids_that_are_not_uuids_are_refused_naming_the_file_and_the_id() {
        for bad in [
            "..",
            ".",
            "x/../../../y",
            "",
            "e0000001-0000-4000-8000-00000000000/",
        ] {
            let text = two(|n| n.replace("e0000001-0000-4000-8000-000000000002", bad));
            let parsed = parse(&text, Path::new("nets.json"), "me").unwrap();
            assert_eq!(parsed.networks.len(), 1, "{bad:?}");
            assert_eq!(parsed.networks[0].network.id, N1);
            let e = parsed.rejected[0].error.to_string();
            assert!(e.contains("nets.json") && e.contains("id"), "{bad:?}: {e}");
            if !bad.is_empty() {
                assert!(e.contains(bad), "{e}");
            }
        }
        // A bad subnet or DHCP port id refuses its network; a bad VM port id that port only.
        for (bad, whole) in [
            (D2, true),
            ("5b000001-0000-4000-8000-000000000001", true),
            (VM, false),
        ] {
            let text = two(|n| n.replace(bad, "../x"));
            let parsed = parse(&text, Path::new("nets.json"), "me").unwrap();
            assert_eq!(parsed.networks.len(), if whole { 1 } else { 2 }, "{bad}");
            assert_eq!(parsed.rejected.len(), 1);
            assert_eq!(parsed.rejected[0].network.is_some(), whole);
            assert!(parsed.rejected[0].error.to_string().contains("../x"));
        }
    }

    #[test]
    fn fixed_ips_outside_their_subnet_are_refused() {
        // A VM port: that port alone.
        let text = two(|n| n.replace("10.0.0.4", "10.198.5.5"));
        let parsed = parse(&text, Path::new("f"), "me").unwrap();
        assert_eq!(parsed.networks.len(), 2);
        assert_eq!(parsed.networks[1].network.ports.len(), 2);
        let e = parsed.rejected[0].error.to_string();
        assert!(
            e.contains(VM) && e.contains("10.198.5.5") && e.contains("10.0.0.0/24"),
            "{e}"
        );
        // A DHCP port: the whole network (its plumbing would carry the address).
        let text = two(|n| n.replace("10.0.0.3", "10.198.5.5"));
        let parsed = parse(&text, Path::new("f"), "me").unwrap();
        assert_eq!(parsed.networks.len(), 1);
        assert!(parsed.rejected[0].error.to_string().contains(D2));
    }

    #[test]
    fn malformed_files_are_errors_and_bad_entries_are_refused_alone() {
        assert!(matches!(
            parse("{", Path::new("f"), "h"),
            Err(StandaloneError::Json { .. })
        ));
        assert!(matches!(
            parse("{}", Path::new("f"), "h"),
            Err(StandaloneError::NotAList { .. })
        ));
        let dup = format!("[{0},{0}]", &NET[1..NET.len() - 1]);
        let parsed = parse(&dup, Path::new("f"), "h").unwrap();
        assert!(parsed.networks.is_empty());
        assert!(matches!(
            parsed.rejected[..],
            [Rejected {
                error: StandaloneError::Duplicate { .. },
                ..
            }]
        ));
        let bad = NET.replace("10.0.0.3", "10.0.0.300");
        let parsed = parse(&bad, Path::new("f"), "h").unwrap();
        let e = parsed.rejected[0].error.to_string();
        assert!(e.contains("entry 0") && e.contains(D2), "{e}");
        assert_eq!(parsed.rejected[0].network.as_deref(), Some(N1));
    }

    #[test]
    fn stamp_sees_a_same_size_replacement_with_the_old_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nets.json");
        std::fs::write(&path, "[1]").unwrap();
        let before = FileStamp::of(&path);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        // `cp -p`: new content, same size, the old mtime put back.
        std::fs::write(&path, "[2]").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_ne!(FileStamp::of(&path), before);
    }
}
