//! What the services record about themselves while they run, for [`crate::status`] to read:
//! latency histograms, the ring of the last clients seen, RPC call statistics. Writers (the
//! DHCP threads, the agent, the plugin API client) only bump atomics or take a short lock
//! nothing else holds; this module sits below all of them and imports none of them.

pub mod histogram;
pub mod rpc;
pub mod seen;
