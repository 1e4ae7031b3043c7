//! DHCP: the pure responder core (`packet`, `options`, `v4`) and its I/O shell (`netio`, `server`).

pub mod netio;
pub mod options;
pub mod packet;
pub mod server;
pub mod v4;
