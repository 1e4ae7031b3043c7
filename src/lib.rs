//! neutron-dhcp-rs: a drop-in replacement for Neutron's `neutron-dhcp-agent` with an embedded,
//! static-only DHCP server. The README's layout section maps the modules.

pub mod agent;
pub mod codec;
pub mod compat;
pub mod config;
pub mod daemon;
pub mod device;
pub mod dhcp;
pub mod dns;
#[cfg(feature = "tools")]
pub mod dnsmasq;
pub mod fds;
pub mod logfile;
pub mod memory;
pub mod metadata;
pub mod migrate;
pub mod model;
pub mod neutron;
pub mod par;
pub mod rpc;
pub mod sdnotify;
pub mod serve;
pub mod signals;
pub mod standalone;
pub mod status;
pub mod telemetry;
#[cfg(test)]
mod testrng;
pub mod utc;
pub mod view;
