//! The DHCPv4 I/O shell of one namespace: receive, ask the pure responder, send.
//!
//! One tokio task per `qdhcp-<network>` namespace. The loop does one `recv` and one `send` per
//! packet; the reply is built into buffers allocated once per task, and the network's data is
//! read through the lock-free [`ViewHandle`], so control-plane work never delays a reply.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::cache::ViewHandle;
use crate::dhcp::netio;
use crate::dhcp::v4::{self, Delivery, Ignore, Outcome};

/// Where a network is served: the DHCP port's device inside its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub network_id: String,
    pub namespace: String,
    pub ifname: String,
    pub ifindex: u32,
}

/// Per-namespace packet counters; plain relaxed atomics, never a lock.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub replied: AtomicU64,
    pub ignored: AtomicU64,
    pub malformed: AtomicU64,
    pub send_errors: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("namespace {namespace}: cannot open DHCP sockets on {ifname}: {source}")]
    Socket {
        namespace: String,
        ifname: String,
        source: io::Error,
    },
    #[error("namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        source: crate::device::DeviceError,
    },
}

/// A running server; dropping it without [`DhcpServer::stop`] aborts the task.
pub struct DhcpServer {
    pub endpoint: Endpoint,
    pub counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl DhcpServer {
    /// Opens the sockets inside the namespace (on a dedicated thread: `setns` must never run on
    /// a tokio worker) and spawns the serving task.
    pub async fn start(endpoint: Endpoint, view: ViewHandle) -> Result<DhcpServer, ServerError> {
        let ifname = endpoint.ifname.clone();
        let opened = crate::device::in_netns(&endpoint.namespace, move || {
            Ok::<_, io::Error>((netio::bind_udp4(&ifname)?, netio::packet_socket()?))
        })
        .await
        .map_err(|source| ServerError::Namespace {
            namespace: endpoint.namespace.clone(),
            source,
        })?;
        let socket_err = |source| ServerError::Socket {
            namespace: endpoint.namespace.clone(),
            ifname: endpoint.ifname.clone(),
            source,
        };
        let (udp, raw) = opened.map_err(socket_err)?;
        let udp = UdpSocket::from_std(udp).map_err(socket_err)?;
        // SAFETY: an OwnedFd stays open and refers to the same socket until the AsyncFd drops it.
        let raw = unsafe { AsyncFd::register_with_interest(raw, Interest::WRITABLE) }
            .map_err(|e| socket_err(e.into()))?;
        let counters = Arc::new(Counters::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let span = tracing::info_span!("dhcp4", network_id = %endpoint.network_id);
        let task = tokio::spawn(
            serve(udp, raw, endpoint.ifindex, view, counters.clone(), stop_rx).instrument(span),
        );
        Ok(DhcpServer {
            endpoint,
            counters,
            stop: Some(stop_tx),
            task,
        })
    }

    /// Stops the task and waits until its sockets are closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Err(e) = (&mut self.task).await {
            if e.is_panic() {
                tracing::error!(network_id = %self.endpoint.network_id, "DHCP task panicked");
            }
        }
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Largest datagram we accept; anything longer than an Ethernet MTU is not a DHCP request.
const RECV_BUF: usize = 1536;
/// Replies are at most this long (a 1500-byte MTU minus IP/UDP), so buffers never grow.
const REPLY_CAPACITY: usize = 1500;

async fn serve(
    udp: UdpSocket,
    raw: AsyncFd<OwnedFd>,
    ifindex: u32,
    view: ViewHandle,
    counters: Arc<Counters>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut shell = Shell {
        udp,
        raw,
        ifindex,
        view,
        counters,
        reply: Vec::with_capacity(REPLY_CAPACITY),
        frame: Vec::with_capacity(REPLY_CAPACITY + netio::FRAME_OVERHEAD),
    };
    tracing::debug!("DHCPv4 task started");
    loop {
        let (n, peer) = tokio::select! {
            _ = &mut stop => break,
            r = shell.udp.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "recv failed");
                    continue;
                }
            },
        };
        let span = tracing::debug_span!("request", %peer, len = n);
        shell.handle(&buf[..n], peer).instrument(span).await;
    }
    tracing::debug!("DHCPv4 task stopped");
}

/// The per-task state of the serving loop: sockets and the reusable reply buffers.
struct Shell {
    udp: UdpSocket,
    raw: AsyncFd<OwnedFd>,
    ifindex: u32,
    view: ViewHandle,
    counters: Arc<Counters>,
    reply: Vec<u8>,
    frame: Vec<u8>,
}

impl Shell {
    async fn handle(&mut self, req: &[u8], peer: SocketAddr) {
        Counters::bump(&self.counters.received);
        let current = self.view.load();
        let reply = &mut self.reply;
        // The responder validates everything before use and is fuzzed; catching a panic anyway
        // means a bug there costs one dropped packet, not the namespace's DHCP service.
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| v4::respond(req, &current, reply)));
        drop(current);
        match outcome {
            Ok(Outcome::Reply {
                delivery,
                server_ip,
            }) => match self.send(delivery, server_ip).await {
                Ok(()) => Counters::bump(&self.counters.replied),
                Err(e) => {
                    Counters::bump(&self.counters.send_errors);
                    tracing::warn!(error = %e, ?delivery, "sending reply failed");
                }
            },
            Ok(Outcome::Ignored(reason)) => {
                Counters::bump(&self.counters.ignored);
                match reason {
                    Ignore::Release { .. } | Ignore::Decline { .. } => tracing::info!("{reason}"),
                    _ => tracing::debug!("not answered: {reason}"),
                }
            }
            Ok(Outcome::Malformed(why)) => {
                Counters::bump(&self.counters.malformed);
                tracing::debug!("dropped malformed packet: {why}");
            }
            Err(_) => {
                Counters::bump(&self.counters.malformed);
                tracing::error!(%peer, "responder panicked; packet dropped");
            }
        }
    }

    /// One send per reply: UDP through the kernel for relays and addressed clients, a
    /// finished IPv4 frame at layer 2 for clients that have no address yet.
    async fn send(&mut self, delivery: Delivery, server_ip: Ipv4Addr) -> io::Result<()> {
        let (mac, dst) = match delivery {
            Delivery::Relay { giaddr } => {
                let to = SocketAddrV4::new(giaddr, netio::SERVER_PORT);
                return self.udp.send_to(&self.reply, to).await.map(|_| ());
            }
            Delivery::Ciaddr { ip } => {
                let to = SocketAddrV4::new(ip, netio::CLIENT_PORT);
                return self.udp.send_to(&self.reply, to).await.map(|_| ());
            }
            Delivery::Broadcast => ([0xff; 6], Ipv4Addr::BROADCAST),
            Delivery::Unicast { mac, ip } => (mac, ip),
        };
        netio::build_udp4_frame(server_ip, dst, &self.reply, &mut self.frame);
        let (ifindex, frame) = (self.ifindex, &self.frame);
        self.raw
            .async_io(Interest::WRITABLE, |fd| {
                netio::send_l2(fd, ifindex, mac, frame)
            })
            .await
    }
}
