//! The threads that serve sockets inside the network namespaces, shared by the DHCP and DNS
//! services: a pool of plain `epoll` loops ([`threads`]), the kernel objects they sleep on
//! ([`poller`]) and sending without waiting for writability ([`dgram`]). A service brings its
//! sockets (opened through [`crate::device`]'s namespace plumbing) and a job that answers from
//! the network's view; nothing here knows DHCP or DNS.

pub mod dgram;
pub mod poller;
pub mod threads;
