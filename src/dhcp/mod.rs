//! DHCP: the pure responder cores (`packet`, `options`, `v4`; `packet6`, `options6`, `v6`) and
//! their I/O shell (`netio`, `dgram`, `poller`, `threads`, `server`).

pub mod link;
pub mod loglimit;
pub mod netio;
pub mod packet;
pub mod packet6;
pub mod server;
pub mod v4;
pub mod v6;
