//! The network cache: the control plane's picture of every served network, and the immutable
//! per-network views the DHCP tasks read.
//!
//! Writers (the agent applying an event or a reload) rebuild a network's [`NetworkView`] and swap
//! it in atomically; DHCP tasks hold a [`ViewHandle`] and `load()` the current view per packet.
//! Readers therefore never wait for writers and see a change as soon as the swap happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::config::ServeConfig;
use crate::model::Network;
use crate::view::NetworkView;

/// What a DHCP task holds: the current view of its network, swapped on every change.
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
}

impl NetworkCache {
    pub fn new(serve: ServeConfig) -> Self {
        NetworkCache {
            serve,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave a half-written entry (inserts are single
        // statements), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces a network, rebuilding its view. The returned handle is the same
    /// `Arc` for the whole life of the network in the cache, so a running DHCP task keeps
    /// reading the newest view without being restarted.
    pub fn upsert(&self, network: Network, own_port_id: &str) -> ViewHandle {
        let view = Arc::new(NetworkView::build(&network, own_port_id, &self.serve));
        let mut entries = self.lock();
        match entries.get_mut(&network.id) {
            Some(e) => {
                e.view.store(view);
                e.network = Arc::new(network);
                e.own_port_id = own_port_id.to_owned();
                e.view.clone()
            }
            None => {
                let handle: ViewHandle = Arc::new(ArcSwap::new(view));
                entries.insert(
                    network.id.clone(),
                    Entry {
                        network: Arc::new(network),
                        own_port_id: own_port_id.to_owned(),
                        view: handle.clone(),
                    },
                );
                handle
            }
        }
    }

    pub fn remove(&self, network_id: &str) -> Option<Arc<Network>> {
        self.lock().remove(network_id).map(|e| e.network)
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
