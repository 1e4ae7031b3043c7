//! The per-network records under `$state_path/dhcp/<network>`: which networks this agent
//! serves (or served, for a restarted agent to find and remove), the DHCP device each one got,
//! the fingerprint of the plan it was plumbed for (what [`Agent::adopt`] trusts), and the
//! network's DHCPv6 server DUID.

use std::path::{Path, PathBuf};

use crate::device::PlumbPlan;
use crate::model::{MacAddr, NetworkId};

use super::{is_uuid_like, Agent};

/// `$state_path/dhcp/<network>/plumbing`: fingerprint of the plan the recorded device was
/// plumbed for.
pub(super) const PLUMBING_FILE: &str = "plumbing";
/// `$state_path/dhcp/<network>/interface`: the DHCP device's name inside the namespace.
pub(super) const INTERFACE_FILE: &str = "interface";

impl Agent {
    /// Ids of the networks recorded under `$state_path/dhcp` (served now or by a previous run).
    pub fn recorded_networks(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        // Only network ids: anything else there (`lost+found`, an operator's backup) is not
        // ours to remove.
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| is_uuid_like(name))
            .collect();
        ids.sort();
        ids
    }

    /// Identifies the plumbing a plan needs under this driver configuration.
    pub(super) fn plumbing_fingerprint(&self, plan: &PlumbPlan) -> String {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same text hashes alike in every run of this binary (a
        // new build that hashes differently only costs one verification before serving).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{plan:?}|{:?}", self.devices.config()).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// The DHCP device recorded for a network: `ns-<port_id[:11]>` → the port id prefix, which
    /// is all a teardown needs.
    pub(super) fn recorded_port_prefix(&self, nid: &NetworkId) -> Option<String> {
        let ifname = std::fs::read_to_string(self.network_dir(nid)?.join(INTERFACE_FILE)).ok()?;
        let prefix = ifname
            .trim()
            .trim_start_matches("ns-")
            .trim_start_matches("tap")
            .to_owned();
        (!prefix.is_empty()).then_some(prefix)
    }

    /// Keeps the network's DHCPv6 server DUID stable across restarts and DHCP port changes:
    /// the first one (DUID-LL of our port's MAC) is persisted in `$state_path/dhcp/<net>/duid`,
    /// as dnsmasq keeps its DUID in the lease file Neutron preserves.
    pub(super) fn pin_server_duid(&self, nid: &NetworkId, mac: MacAddr) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        match super::duid::load_or_create_duid(&dir, mac) {
            Ok(duid) => self.cache.pin_server_duid(network_id, duid),
            Err(e) => {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot persist the DHCPv6 server DUID; using one derived from the port MAC")
            }
        }
    }

    /// Before a new network's first plumbing: records the DHCP device it is about to get, so
    /// that whatever a failure (or a crash) leaves half made can be found and removed, by this
    /// run on removal and exit, or by the next start. Without the plan's fingerprint beside it
    /// such a record is never adopted as working plumbing.
    pub(super) fn record_intent(&self, nid: &NetworkId, plan: &PlumbPlan) {
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        if dir.join(INTERFACE_FILE).exists() {
            return;
        }
        let ifname = crate::device::plan::ns_ifname(&plan.port_id);
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(INTERFACE_FILE), ifname))
        {
            tracing::warn!(network_id = %nid, dir = %dir.display(), error = %e, "cannot record the network's DHCP device");
        }
    }

    /// Records the served network, its device and the plan it was plumbed for.
    pub(super) fn remember(&self, nid: &NetworkId, ifname: &str, fingerprint: &str) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        let res = std::fs::create_dir_all(&dir).and_then(|()| {
            write_if_changed(&dir.join(INTERFACE_FILE), ifname)?;
            write_if_changed(&dir.join(PLUMBING_FILE), fingerprint)
        });
        if let Err(e) = res {
            tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot record served network");
        }
    }

    pub(super) fn forget(&self, nid: &NetworkId) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot remove state dir");
            }
        }
    }

    /// `$state_path/dhcp/<network>`, checked to be a directory right under `$state_path/dhcp`
    /// (a validated id always is one plain path component; this is the last line of defence
    /// against a path that would escape the state directory).
    pub(super) fn network_dir(&self, nid: &NetworkId) -> Option<PathBuf> {
        use std::path::Component;
        let mut parts = Path::new(nid.as_str()).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) => Some(self.state_dir.join(nid.as_str())),
            _ => {
                tracing::error!(network_id = %nid, "network id does not name one directory; refusing to use it as a path");
                None
            }
        }
    }
}

/// A restart finds its records already there: rewriting one would make ext4 flush the
/// truncated file to disk on close (its replace-by-truncate heuristic), once per network.
fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|cur| cur == content) {
        return Ok(());
    }
    std::fs::write(path, content)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_network_ids_are_taken_from_the_state_directory() {
        let state = tempfile::tempdir().unwrap();
        let id = "8d4c2c5e-1a2b-4c3d-8e9f-0123456789ab";
        for dir in [id, "lost+found", "..x", "backup"] {
            std::fs::create_dir_all(state.path().join("dhcp").join(dir)).unwrap();
        }
        assert_eq!(
            super::super::tests::agent(state.path()).recorded_networks(),
            [id]
        );
    }
}
