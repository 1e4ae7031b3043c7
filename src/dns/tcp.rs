//! DNS over TCP framing (RFC 1035 4.2.2: a two-byte length before each message), for both
//! sides of the service: the listener reading VMs' queries and the forwarder retrying an
//! upstream over TCP.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one length-prefixed DNS message; `None` at the end of the stream, after `idle`, or
/// on an error.
pub(crate) async fn read_message(
    stream: &mut tokio::net::TcpStream,
    idle: Duration,
) -> Option<Vec<u8>> {
    let read = async {
        let len = stream.read_u16().await.ok()?;
        let mut msg = vec![0; usize::from(len)];
        stream.read_exact(&mut msg).await.ok()?;
        Some(msg)
    };
    tokio::time::timeout(idle, read).await.ok().flatten()
}

/// Writes one length-prefixed DNS message.
pub(crate) async fn write_message(
    stream: &mut tokio::net::TcpStream,
    msg: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS message too long"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}
