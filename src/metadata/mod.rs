//! Isolated metadata: an HTTP proxy in each network's namespace on `169.254.169.254:80` (and
//! `[fe80::a9fe:a9fe]:80`) that forwards to neutron-metadata-agent's UNIX socket, in place of
//! the haproxy per network the Python agent runs (reference §10).
//!
//! [`decision`] says whether a network gets a proxy and how it is keyed (pure), [`forward`]
//! what the proxy changes in requests and responses (pure), [`ratelimit`] the per-client
//! rate limits, and [`proxy`] is the I/O shell (listeners, hyper, the UNIX socket client).

pub mod decision;
pub mod forward;
pub mod proxy;
pub mod ratelimit;
pub mod stall;

pub use decision::{decide, Decision, Keyed, Switches};
pub use proxy::{MetadataError, MetadataProxy, ProxySettings};
