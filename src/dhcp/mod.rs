//! DHCP: the pure responder cores (`packet`, `options`, `v4`; `packet6`, `options6`, `v6`) and
//! their I/O shell (`netio`, `dgram`, `poller`, `threads`, `server`).

pub mod dgram;
pub mod link;
pub mod loglimit;
pub mod netio;
pub mod options;
pub mod options6;
pub mod packet;
pub mod packet6;
pub mod poller;
pub mod server;
pub mod threads;
pub mod v4;
pub mod v6;
