//! The network cache: the control plane's picture of every served network, and the immutable
//! per-network views the DHCP threads read.
//!
//! Writers (the agent applying an event or a reload) rebuild a network's [`NetworkView`] and swap
//! it in atomically; the DHCP threads hold a [`ViewHandle`] and `load()` the current view per packet.
//! Readers therefore never wait for writers and see a change as soon as the swap happens.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::config::ServeConfig;
use crate::model::Network;
use crate::view::NetworkView;

/// A panic while holding one of these locks cannot leave a half-written entry (inserts are
/// single statements), so a poisoned lock is still consistent.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a served network reads on its DHCP thread: its current view, swapped on every change.
pub type ViewHandle = Arc<ArcSwap<NetworkView>>;

struct Entry {
    network: Arc<Network>,
    own_port_id: String,
    view: ViewHandle,
}

/// Control-plane side of the cache. Its mutex is only ever taken by the control plane; the DHCP
/// hot path reads through [`ViewHandle`]s and never touches it.
pub struct NetworkCache {
    serve: ServeConfig,
    entries: Mutex<HashMap<String, Entry>>,
    /// DHCPv6 server DUIDs the agent persisted, applied to every rebuild of that network.
    duids: Mutex<HashMap<String, crate::view::v6::ServerDuid>>,
    /// What the last change replaced, freed later ([`NetworkCache::release_replaced`], or at
    /// the next change at the latest): freeing a large view and network is work in the order
    /// of a whole DHCP exchange, which right after the swap would compete for the CPU with the
    /// first answer from the new view.
    replaced: Mutex<Vec<Replaced>>,
}

/// A replaced view and network, kept until freed off the SIGHUP -> servable path.
struct Replaced {
    _view: Arc<NetworkView>,
    _network: Arc<Network>,
}

impl NetworkCache {
    pub fn new(serve: ServeConfig) -> Self {
        NetworkCache {
            serve,
            entries: Mutex::new(HashMap::new()),
            duids: Mutex::new(HashMap::new()),
            replaced: Mutex::new(Vec::new()),
        }
    }

    /// Frees what earlier changes replaced.
    pub fn release_replaced(&self) {
        let replaced = std::mem::take(&mut *relock(&self.replaced));
        drop(replaced);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        relock(&self.entries)
    }

    /// Inserts or replaces a network, rebuilding its view. The returned handle is the same
    /// `Arc` for the whole life of the network in the cache, so a served network keeps
    /// reading the newest view without being restarted.
    pub fn upsert(&self, network: Network, own_port_id: &str) -> ViewHandle {
        self.put(Cow::Owned(network), own_port_id)
    }

    /// [`NetworkCache::upsert`] of a network the caller keeps: it is copied (every port's
    /// reference count touched) only once the new view is in place, so that the copy does not
    /// delay the change.
    pub fn upsert_borrowed(&self, network: &Network, own_port_id: &str) -> ViewHandle {
        self.put(Cow::Borrowed(network), own_port_id)
    }

    fn put(&self, network: Cow<'_, Network>, own_port_id: &str) -> ViewHandle {
        self.release_replaced();
        let previous = self.lock().get(&network.id).and_then(|e| {
            (e.own_port_id == own_port_id).then(|| (e.network.clone(), e.view.load_full()))
        });
        // ---- DNS names (issue 14): patched or rebuilt on the same change, swapped with the view ----
        let dns = previous
            .as_ref()
            .and_then(|(old, view)| {
                if crate::view::names::same_names(old, &network) {
                    return Some(view.dns().clone());
                }
                let updated = view.dns().update(old, &network, &self.serve.dns_domain);
                updated.map(Arc::new)
            })
            .unwrap_or_else(|| {
                Arc::new(crate::view::names::DnsNames::build(
                    &network,
                    &self.serve.dns_domain,
                ))
            });
        // ---- end of DNS names ----
        // A port change copies the current view and patches it; anything else, or a patch the
        // view cannot take, builds it afresh.
        let updated = previous.and_then(|(old, view)| view.update(&old, &network, &self.serve));
        let incremental = updated.is_some();
        let mut view =
            updated.unwrap_or_else(|| NetworkView::build(&network, own_port_id, &self.serve));
        tracing::debug!(network_id = %network.id, incremental, "view rebuilt");
        view.set_dns(dns);
        let pinned = relock(&self.duids).get(&network.id).copied();
        if let Some(duid) = pinned {
            view.pin_server_duid(duid);
        }
        let view = Arc::new(view);
        let mut entries = self.lock();
        match entries.get_mut(&network.id) {
            Some(e) => {
                let old_view = e.view.swap(view);
                let old_network = std::mem::replace(&mut e.network, Arc::new(network.into_owned()));
                e.own_port_id = own_port_id.to_owned();
                relock(&self.replaced).push(Replaced {
                    _view: old_view,
                    _network: old_network,
                });
                e.view.clone()
            }
            None => {
                let handle: ViewHandle = Arc::new(ArcSwap::new(view));
                entries.insert(
                    network.id.clone(),
                    Entry {
                        network: Arc::new(network.into_owned()),
                        own_port_id: own_port_id.to_owned(),
                        view: handle.clone(),
                    },
                );
                handle
            }
        }
    }

    pub fn remove(&self, network_id: &str) -> Option<Arc<Network>> {
        relock(&self.duids).remove(network_id);
        self.lock().remove(network_id).map(|e| e.network)
    }

    /// Makes every future view of `network_id` use `duid` as its DHCPv6 server identity.
    pub fn pin_server_duid(&self, network_id: &str, duid: crate::view::v6::ServerDuid) {
        relock(&self.duids).insert(network_id.to_owned(), duid);
    }

    pub fn get(&self, network_id: &str) -> Option<Arc<Network>> {
        self.lock().get(network_id).map(|e| e.network.clone())
    }

    pub fn own_port_id(&self, network_id: &str) -> Option<String> {
        self.lock().get(network_id).map(|e| e.own_port_id.clone())
    }

    pub fn view(&self, network_id: &str) -> Option<ViewHandle> {
        self.lock().get(network_id).map(|e| e.view.clone())
    }

    pub fn network_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network(macs: &[&str]) -> Network {
        let mut ports = vec![
            json!({"id": "dhcp-port", "mac_address": "fa:16:3e:00:00:01",
            "device_owner": "network:dhcp",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.2"}]}),
        ];
        for (i, mac) in macs.iter().enumerate() {
            ports.push(json!({"id": format!("p{i}"), "mac_address": mac,
                "device_owner": "compute:nova",
                "fixed_ips": [{"subnet_id": "s1", "ip_address": format!("10.0.0.{}", 10 + i)}]}));
        }
        Network::from_json(
            &json!({"id": "n1", "subnets": [{"id": "s1", "ip_version": 4,
            "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}], "ports": ports}),
        )
        .unwrap()
    }

    #[test]
    fn replaced_views_are_freed_later_and_at_the_next_change_at_the_latest() {
        let cache = NetworkCache::new(ServeConfig::default());
        let handle = cache.upsert(network(&["fa:16:3e:00:00:0a"]), "dhcp-port");
        let first = Arc::downgrade(&handle.load_full());
        cache.upsert(network(&["fa:16:3e:00:00:0b"]), "dhcp-port");
        assert!(first.upgrade().is_some(), "kept until released");
        cache.release_replaced();
        assert!(first.upgrade().is_none());
        let second = Arc::downgrade(&handle.load_full());
        cache.upsert(network(&["fa:16:3e:00:00:0c"]), "dhcp-port");
        cache.upsert(network(&["fa:16:3e:00:00:0d"]), "dhcp-port");
        assert!(second.upgrade().is_none(), "freed by the change after next");
    }

    #[test]
    fn a_running_reader_sees_port_changes_through_its_handle() {
        let cache = NetworkCache::new(ServeConfig::default());
        let a: crate::model::MacAddr = "fa:16:3e:00:00:0a".parse().unwrap();
        let b: crate::model::MacAddr = "fa:16:3e:00:00:0b".parse().unwrap();
        let handle = cache.upsert(network(&["fa:16:3e:00:00:0a"]), "dhcp-port");
        assert!(handle.load().serves_mac(&a));
        assert!(!handle.load().serves_mac(&b));
        // Same handle object survives the update: serving never needs restarting.
        let again = cache.upsert(network(&["fa:16:3e:00:00:0b"]), "dhcp-port");
        assert!(Arc::ptr_eq(&handle, &again));
        assert!(!handle.load().serves_mac(&a));
        assert!(handle.load().serves_mac(&b));
        assert_eq!(cache.network_ids(), vec!["n1".to_string()]);
        assert!(cache.remove("n1").is_some());
        assert!(cache.view("n1").is_none());
    }
}
