//! The DHCP I/O shell of one namespace: receive, ask the pure responder, send.
//!
//! One job per `qdhcp-<network>` namespace on one of the DHCP threads ([`threads`]): its
//! DHCPv4 and DHCPv6 sockets, answered from the same lock-free [`ViewHandle`], so control-plane
//! work never delays a reply. A request costs one `epoll_wait` (shared by whatever else is
//! ready), one `recv` and one `send` ([`dgram`]); replies are built into buffers allocated once
//! per network. DHCPv6 messages and relayed DHCPv4 requests also read what the packet socket
//! saw of their frames ([`Frames`]): the MAC they came from decides whom they are answered for
//! ([`Link`]); plain DHCPv4 requests queue nothing there and are answered by `chaddr`. Lines a
//! single packet would log go through the network's rate limit ([`loglimit`]).
//! DHCPv6 is served whenever IPv6 works in the namespace, also on networks without IPv6
//! subnets today: a subnet added later is served as soon as the view has it.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::dhcp::link::Link;
use crate::dhcp::loglimit::{self, LogLimit};
use crate::dhcp::netio;
use crate::dhcp::packet;
use crate::dhcp::packet6::msg as msg6;
use crate::dhcp::v4::{self, Delivery, Ignore, Outcome};
use crate::dhcp::v6;
use crate::model::MacAddr;
use crate::serve::dgram;
use crate::serve::threads;
use crate::telemetry::seen::{self, Fate};
use crate::view::cache::ViewHandle;

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
    /// Of `ignored`: no port has the client's MAC (or client id, or DUID).
    pub unknown_client: AtomicU64,
    /// Of `ignored`: addressed to another DHCP server.
    pub other_server: AtomicU64,
    /// The last clients seen, for the status endpoint (`crate::telemetry::seen`).
    pub seen: crate::telemetry::seen::SeenRing,
    /// Requests by message type (DHCPv4 option 53, or the DHCPv6 message type); index 0 also
    /// counts types from 16 up and requests without a type.
    pub by_type: [AtomicU64; 16],
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds these counts to `total` (the status endpoint's totals of stopped servers).
    pub fn add_into(&self, total: &Counters) {
        let pairs = [
            (&self.received, &total.received),
            (&self.replied, &total.replied),
            (&self.ignored, &total.ignored),
            (&self.malformed, &total.malformed),
            (&self.send_errors, &total.send_errors),
            (&self.unknown_client, &total.unknown_client),
            (&self.other_server, &total.other_server),
        ];
        let by_type = self.by_type.iter().zip(total.by_type.iter());
        for (from, to) in pairs.into_iter().chain(by_type) {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// What a socket received and what became of it, for the log line of a network that stops (a
/// client that got nothing shows there whether its requests ever arrived).
impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "received {}, replied {}, ignored {}, malformed {}, send errors {}",
            n(&self.received),
            n(&self.replied),
            n(&self.ignored),
            n(&self.malformed),
            n(&self.send_errors)
        )
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

/// The DHCP threads; named `dhcp-io-<n>`.
static THREADS: threads::Pool<Network> = threads::Pool::new("dhcp-io");

/// A running server; dropping it without [`DhcpServer::stop`] stops serving too.
pub struct DhcpServer {
    pub endpoint: Endpoint,
    pub counters: Arc<Counters>,
    /// DHCPv6 packet counters (all zero when IPv6 is unavailable in the namespace).
    pub counters6: Arc<Counters>,
    served: threads::Served<Network>,
    serves_v6: bool,
}

/// The sockets of a stopped server, to be closed off the DHCP threads: closing the
/// `AF_PACKET` socket waits for an RCU grace period in the kernel (8–16 ms here).
#[derive(Default)]
pub struct Sockets {
    /// Only held, to be closed with the rest.
    _udp: Vec<OwnedFd>,
    packet: Option<Arc<OwnedFd>>,
}

impl Sockets {
    /// Closes the sockets of many stopped servers at once, each server's on a short-lived
    /// thread of its own: the grace periods the `AF_PACKET` closes wait for then overlap
    /// instead of adding up (200 networks: about two grace periods instead of 200, the bulk of
    /// a stop). The closing threads are started from one thread per core: starting them is
    /// most of the time not spent waiting for the kernel, and closes started later than a
    /// grace period wait for the next. Returns once every socket is closed.
    pub fn close_all(mut all: Vec<Sockets>) {
        let starters = crate::par::threads(4);
        let share = all.len().div_ceil(starters).max(1);
        let mut shares = Vec::with_capacity(starters);
        while !all.is_empty() {
            shares.push(all.split_off(all.len().saturating_sub(share)));
        }
        // A starter can only fail by panicking, and its sockets are closed by the unwinding.
        drop(crate::par::map("socket-close", shares, starters, |share| {
            let closing: Vec<_> = share.into_iter().filter_map(close_on_own_thread).collect();
            for t in closing {
                let _ = t.join();
            }
        }));
    }
}

/// A closing thread only runs `close(2)`: the smallest stack is the quickest to set up.
const CLOSING_STACK: usize = 16 << 10;

/// Starts closing a server's sockets on a thread of its own; closes them here and now when
/// there is no `AF_PACKET` socket among them (nothing to wait for) or no thread can start.
fn close_on_own_thread(sockets: Sockets) -> Option<std::thread::JoinHandle<()>> {
    if sockets.packet.is_none() {
        drop(sockets);
        return None;
    }
    std::thread::Builder::new()
        .name("socket-close".into())
        .stack_size(CLOSING_STACK)
        .spawn(move || drop(sockets))
        .map_err(|e| tracing::debug!(error = %e, "closing a server's sockets inline"))
        .ok()
}

impl DhcpServer {
    /// Opens the sockets inside the namespace and serves them on a DHCP thread.
    pub async fn start(endpoint: Endpoint, view: ViewHandle) -> Result<DhcpServer, ServerError> {
        let (ifname, ifindex) = (endpoint.ifname.clone(), endpoint.ifindex);
        let opened = open_sockets(&endpoint.namespace, ifname, Some(ifindex)).await;
        Self::serve_on(endpoint, view, opened)
    }

    /// Like [`DhcpServer::start`] for a device known only by name (what a previous run
    /// recorded): its index is looked up inside the namespace while the sockets are opened.
    pub async fn adopt(
        network_id: &str,
        namespace: &str,
        ifname: &str,
        view: ViewHandle,
    ) -> Result<DhcpServer, ServerError> {
        let opened = open_sockets(namespace, ifname.to_owned(), None).await;
        Self::adopted(network_id, namespace, ifname, view, opened)
    }

    /// The first half of [`DhcpServer::adopt`], from a thread already inside the namespace (a
    /// [`crate::device::BatchThread`]): the sockets, which from now on queue the requests that
    /// arrive, for [`DhcpServer::serve_adopted`] to answer.
    pub fn open_here(network_id: &str, namespace: &str, ifname: &str) -> AdoptedSockets {
        AdoptedSockets {
            network_id: network_id.to_owned(),
            namespace: namespace.to_owned(),
            ifname: ifname.to_owned(),
            opened: open_here(ifname, None),
        }
    }

    /// The second half of [`DhcpServer::adopt`]: serves on sockets [`DhcpServer::open_here`]
    /// opened (from any thread).
    pub fn serve_adopted(s: AdoptedSockets, view: ViewHandle) -> Result<DhcpServer, ServerError> {
        Self::adopted(&s.network_id, &s.namespace, &s.ifname, view, Ok(s.opened))
    }

    fn adopted(
        network_id: &str,
        namespace: &str,
        ifname: &str,
        view: ViewHandle,
        opened: Result<io::Result<Opened>, crate::device::DeviceError>,
    ) -> Result<DhcpServer, ServerError> {
        let ifindex = match &opened {
            Ok(Ok(o)) => o.ifindex,
            _ => 0,
        };
        let endpoint = Endpoint {
            network_id: network_id.to_owned(),
            namespace: namespace.to_owned(),
            ifname: ifname.to_owned(),
            ifindex,
        };
        Self::serve_on(endpoint, view, opened)
    }

    fn serve_on(
        endpoint: Endpoint,
        view: ViewHandle,
        opened: Result<io::Result<Opened>, crate::device::DeviceError>,
    ) -> Result<DhcpServer, ServerError> {
        let opened = opened.map_err(|source| ServerError::Namespace {
            namespace: endpoint.namespace.clone(),
            source,
        })?;
        let Opened {
            udp,
            packet,
            sniffing,
            v6: v6_sockets,
            ..
        } = opened.map_err(|source| endpoint.socket_error(source))?;
        let packet = Arc::new(packet);
        let sniffer = match sniffing {
            Ok(()) => Some(packet.clone()),
            Err(e) => {
                tracing::warn!(
                    network_id = %endpoint.network_id, error = %e,
                    "cannot see the MACs DHCP requests come from: relayed requests are not \
                     answered, DHCPv6 clients are identified by DUID and EUI-64 address only"
                );
                None
            }
        };
        let counters = Arc::new(Counters::default());
        let counters6 = Arc::new(Counters::default());
        let v4 = Shell {
            udp,
            raw: packet.clone(),
            ifindex: endpoint.ifindex,
            view: view.clone(),
            counters: counters.clone(),
            reply: Vec::with_capacity(REPLY_CAPACITY),
            frame: Vec::with_capacity(REPLY_CAPACITY + netio::FRAME_OVERHEAD),
        };
        let v6 = match v6_sockets {
            Ok(udp) => Some(Shell6 {
                udp,
                view,
                counters: counters6.clone(),
                reply: Vec::with_capacity(REPLY_CAPACITY),
            }),
            Err(e) => {
                tracing::info!(
                    network_id = %endpoint.network_id, interface = %endpoint.ifname, error = %e,
                    "DHCPv6 not served: cannot open its socket (IPv6 disabled?)"
                );
                None
            }
        };
        let network = Network {
            logs: Logs {
                limit: LogLimit::default(),
                span: tracing::info_span!("dhcp", network_id = %endpoint.network_id),
            },
            frames: Frames {
                sniffer,
                macs: MacCache::new(),
            },
            span4: tracing::info_span!("dhcp4", network_id = %endpoint.network_id),
            span6: tracing::info_span!("dhcp6", network_id = %endpoint.network_id),
            v4,
            v6,
        };
        let serves_v6 = network.v6.is_some();
        let served = THREADS
            .serve(network)
            .map_err(|source| endpoint.socket_error(source))?;
        tracing::debug!(network_id = %endpoint.network_id, serves_v6, "DHCP serving started");
        Ok(DhcpServer {
            endpoint,
            counters,
            counters6,
            served,
            serves_v6,
        })
    }

    /// Stops serving; the sockets are closed in the background.
    pub async fn stop(self) {
        close_off_worker(self.release().await);
    }

    /// Stops serving and hands back the sockets, for [`Sockets::close_all`].
    pub async fn release(self) -> Sockets {
        let DhcpServer {
            endpoint, served, ..
        } = self;
        match served.stop().await {
            Some(mut network) => {
                tracing::debug!(network_id = %endpoint.network_id, "DHCP serving stopped");
                if let Some(held) = network.logs.limit.take_held() {
                    network.logs.summary(held);
                }
                network.into_sockets()
            }
            None => {
                // Cannot happen while the process runs: the DHCP threads never exit.
                tracing::error!(network_id = %endpoint.network_id, "DHCP thread gone");
                Sockets::default()
            }
        }
    }

    /// Whether DHCPv6 is served (IPv6 usable in the namespace).
    pub fn serves_v6(&self) -> bool {
        self.serves_v6
    }
}

impl Endpoint {
    fn socket_error(&self, source: io::Error) -> ServerError {
        ServerError::Socket {
            namespace: self.namespace.clone(),
            ifname: self.ifname.clone(),
            source,
        }
    }
}

/// Sockets opened for a network ([`DhcpServer::open_here`]) that nothing serves yet.
pub struct AdoptedSockets {
    network_id: String,
    namespace: String,
    ifname: String,
    opened: io::Result<Opened>,
}

/// The sockets of one namespace, opened inside it.
struct Opened {
    ifindex: u32,
    udp: std::net::UdpSocket,
    packet: OwnedFd,
    /// Whether the packet socket also sees the frames requests come in ([`netio::sniff`]).
    sniffing: io::Result<()>,
    /// The DHCPv6 socket.
    v6: io::Result<std::net::UdpSocket>,
}

/// Opens the DHCP sockets on `ifname` inside the namespace (on a namespace worker: `setns` must
/// never run on a tokio worker). `ifindex: None` looks the device up by name there.
async fn open_sockets(
    namespace: &str,
    ifname: String,
    ifindex: Option<u32>,
) -> Result<io::Result<Opened>, crate::device::DeviceError> {
    crate::device::in_netns(namespace, move || open_here(&ifname, ifindex)).await
}

/// Opens the sockets in the calling thread's namespace.
fn open_here(ifname: &str, ifindex: Option<u32>) -> io::Result<Opened> {
    let ifindex = match ifindex {
        Some(i) => i,
        None => netio::ifindex(ifname)?,
    };
    let packet = netio::packet_socket()?;
    // Before the UDP sockets can queue anything, so that every request's frame is seen.
    let sniffing = netio::sniff(&packet, ifindex);
    let udp = netio::bind_udp4(ifname)?;
    // IPv6 may be disabled on the host or the device: then DHCPv4 only.
    let v6 = netio::bind_udp6(ifname, ifindex);
    Ok(Opened {
        ifindex,
        udp,
        packet,
        sniffing,
        v6,
    })
}

/// Replies are at most this long (a 1500-byte MTU minus IP/UDP), so buffers never grow.
const REPLY_CAPACITY: usize = 1500;

/// What a DHCP thread runs for one network: both families' sockets and state. The receive
/// buffer is the thread's ([`threads::RECV_BUF`]).
struct Network {
    logs: Logs,
    frames: Frames,
    v4: Shell,
    v6: Option<Shell6>,
    /// The parents of every event and request span, rather than entered around each call:
    /// entering a span per wake-up cost ~4 % of the CPU a request takes.
    span4: tracing::Span,
    span6: tracing::Span,
}

/// The DHCPv4 socket's index among a [`Network`]'s sources.
const V4: usize = 0;

impl Network {
    fn into_sockets(self) -> Sockets {
        let mut udp = vec![self.v4.udp.into()];
        udp.extend(self.v6.map(|v6| v6.udp.into()));
        Sockets {
            _udp: udp,
            packet: Some(self.v4.raw),
        }
    }
}

impl threads::Job for Network {
    fn sources(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.v4.udp.as_fd()];
        fds.extend(self.v6.as_ref().map(|v6| v6.udp.as_fd()));
        fds
    }

    fn ready(&mut self, source: usize, rx: &mut [u8]) -> Option<Instant> {
        let Network {
            logs,
            frames,
            v4,
            v6,
            span4,
            span6,
        } = self;
        if source == V4 {
            if let Some((req, peer, request)) = receive(rx, &v4.udp, span4, logs) {
                // Only a relayed request's frame is looked for (and only such frames are
                // queued): a plain one is answered by `chaddr`, at no extra cost.
                let link = match peer {
                    SocketAddr::V4(p) if packet::is_relayed(req) => {
                        frames.link(p.ip().to_ipv6_mapped(), netio::tag(req, true))
                    }
                    _ => Link::Unknown,
                };
                v4.handle(req, peer, link, events_parent(span4, &request), logs);
            }
        } else if let Some(v6) = v6 {
            if let Some((req, SocketAddr::V6(peer), request)) = receive(rx, &v6.udp, span6, logs) {
                let link = frames.link(*peer.ip(), netio::tag(req, false));
                v6.handle(req, peer, link, events_parent(span6, &request), logs);
            }
        }
        logs.limit.deadline()
    }

    fn due(&mut self, now: Instant) -> Option<Instant> {
        if let Some(held) = self.logs.limit.due(now) {
            self.logs.summary(held);
        }
        self.logs.limit.deadline()
    }
}

/// A network's limit on the lines single packets make it log ([`loglimit`]), and the span its
/// summaries go under.
struct Logs {
    limit: LogLimit,
    span: tracing::Span,
}

impl Logs {
    /// Whether a line about one packet may be written now; writes the summary of a window
    /// that has ended first. Reads the clock, so it is called only for such a line.
    fn admit(&mut self) -> bool {
        let verdict = self.limit.check(Instant::now());
        if let Some(held) = verdict.summary {
            self.summary(held);
        }
        verdict.write
    }

    fn summary(&self, held: u64) {
        tracing::warn!(
            parent: &self.span,
            suppressed = held,
            "rate limit: {held} log lines about single packets not written (at most {} per {} s)",
            loglimit::BURST,
            loglimit::INTERVAL.as_secs()
        );
    }
}

/// Receives one datagram from a socket reported readable, with the span of its request.
///
/// One per report, with a plain `recvfrom`: at the rates a network sees, every request wakes
/// the thread alone, and anything more (a second `recvmmsg` slot, a receive until EAGAIN) is
/// a receive that finds nothing, which cost more than our whole per-request work when measured
/// (interleaved A/Bs at 100 DORA/s; current figures in BENCHMARKS.md). Under
/// load the level-triggered watch reports the socket again at once, which costs an
/// `epoll_wait` that does not sleep and serves the thread's networks in turn.
fn receive<'a>(
    rx: &'a mut [u8],
    udp: &std::net::UdpSocket,
    span: &tracing::Span,
    logs: &mut Logs,
) -> Option<(&'a [u8], SocketAddr, tracing::Span)> {
    match udp.recv_from(rx) {
        Ok((n, peer)) => {
            let req = &rx[..n.min(rx.len())];
            let request = tracing::debug_span!(parent: span, "request", %peer, len = req.len());
            Some((req, peer, request))
        }
        // Nothing queued after all, or interrupted (then it is reported again).
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        Err(e) => {
            if logs.admit() {
                tracing::warn!(parent: span, error = %e, "recv failed");
            }
            None
        }
    }
}

/// The span a request's events go under: the request's own when it is enabled (debug), else
/// the network's.
fn events_parent<'a>(network: &'a tracing::Span, request: &'a tracing::Span) -> &'a tracing::Span {
    if request.is_disabled() {
        network
    } else {
        request
    }
}

/// Closing an `AF_PACKET` socket waits for an RCU grace period in the kernel: never on a DHCP
/// thread (every network it serves would wait) or a control-plane worker.
fn close_off_worker(sockets: Sockets) {
    drop(tokio::task::spawn_blocking(move || drop(sockets)));
}

/// A network's DHCPv4 state: sockets and the reusable reply buffers.
struct Shell {
    udp: std::net::UdpSocket,
    raw: Arc<OwnedFd>,
    ifindex: u32,
    view: ViewHandle,
    counters: Arc<Counters>,
    reply: Vec<u8>,
    frame: Vec<u8>,
}

impl Shell {
    /// `span` is the parent of this request's events.
    fn handle(
        &mut self,
        req: &[u8],
        peer: SocketAddr,
        link: Link,
        span: &tracing::Span,
        logs: &mut Logs,
    ) {
        Counters::bump(&self.counters.received);
        let current = self.view.load();
        let reply = &mut self.reply;
        // The responder validates everything before use and is fuzzed; catching a panic anyway
        // means a bug there costs one dropped packet, not the namespace's DHCP service.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            v4::respond_from(req, link, &current, reply)
        }));
        drop(current);
        let message = seen::v4_message_type(req);
        Counters::bump(
            &self.counters.by_type[usize::from(message & 0x0f) * usize::from(message < 16)],
        );
        let seen = seen::v4_mac(req).map(|mac| (mac, message));
        let record = |c: &Counters, fate| {
            if let Some((mac, message)) = seen {
                c.seen.record(mac, message, fate);
            }
        };
        match outcome {
            Ok(Outcome::Reply {
                delivery,
                server_ip,
            }) => match self.send(delivery, server_ip) {
                Ok(()) => {
                    Counters::bump(&self.counters.replied);
                    record(&self.counters, Fate::Answered);
                }
                Err(e) => {
                    Counters::bump(&self.counters.send_errors);
                    record(&self.counters, Fate::SendFailed);
                    if logs.admit() {
                        tracing::warn!(parent: span, error = %e, ?delivery, "sending reply failed");
                    }
                }
            },
            Ok(Outcome::Ignored(reason)) => {
                Counters::bump(&self.counters.ignored);
                match reason {
                    Ignore::UnknownClient { .. } => {
                        Counters::bump(&self.counters.unknown_client);
                        record(&self.counters, Fate::UnknownMac);
                    }
                    Ignore::OtherServer { .. } => {
                        Counters::bump(&self.counters.other_server);
                        record(&self.counters, Fate::OtherServer);
                    }
                    _ => record(&self.counters, Fate::Ignored),
                }
                match reason {
                    Ignore::Release { .. } | Ignore::Decline { .. } => {
                        if logs.admit() {
                            tracing::info!(parent: span, "{reason}")
                        }
                    }
                    _ => tracing::debug!(parent: span, "not answered: {reason}"),
                }
            }
            Ok(Outcome::Malformed(why)) => {
                Counters::bump(&self.counters.malformed);
                record(&self.counters, Fate::Malformed);
                tracing::debug!(parent: span, "dropped malformed packet: {why}");
            }
            Err(_) => {
                Counters::bump(&self.counters.malformed);
                if logs.admit() {
                    tracing::error!(parent: span, %peer, "responder panicked; packet dropped");
                }
            }
        }
    }

    /// One send per reply, by the socket its [`netio::Destination`] calls for.
    fn send(&mut self, delivery: Delivery, server_ip: Ipv4Addr) -> io::Result<()> {
        let (mac, dst) = match netio::Destination::from(delivery) {
            netio::Destination::Udp(to) => return self.send_udp(to),
            netio::Destination::Frame { mac, ip } => (mac, ip),
        };
        netio::build_udp4_frame(server_ip, dst, &self.reply, &mut self.frame);
        let (raw, ifindex, frame) = (&*self.raw, self.ifindex, &self.frame);
        dgram::send_now(raw, || netio::send_l2(raw, ifindex, mac, frame))
    }

    fn send_udp(&self, to: SocketAddrV4) -> io::Result<()> {
        let udp = &self.udp;
        dgram::send_now(udp, || udp.send_to(&self.reply, to)).map(drop)
    }
}

/// Recently seen frames (source address and [`netio::tag`] → MAC) from the layer-2 listener;
/// a fixed ring, so learning costs no allocation. Only the last few matter: the datagram being
/// answered arrived a moment ago, and its frame was queued before it.
struct MacCache {
    entries: [netio::Sniffed; MacCache::SIZE],
    next: usize,
}

impl MacCache {
    const SIZE: usize = 32;

    fn new() -> Self {
        MacCache {
            entries: [netio::Sniffed {
                src: Ipv6Addr::UNSPECIFIED,
                tag: [0; 4],
                mac: [0; 6],
            }; Self::SIZE],
            next: 0,
        }
    }

    fn learn(&mut self, seen: netio::Sniffed) {
        self.entries[self.next] = seen;
        self.next = (self.next + 1) % Self::SIZE;
    }

    /// The MAC of the newest frame seen from `src` with `tag`.
    fn get(&self, src: Ipv6Addr, tag: [u8; 4]) -> Option<MacAddr> {
        (0..Self::SIZE)
            .map(|i| self.entries[(self.next + Self::SIZE - 1 - i) % Self::SIZE])
            .find(|e| e.src == src && e.tag == tag && !src.is_unspecified())
            .map(|e| MacAddr(e.mac))
    }

    /// Takes in everything the listener queued (bounded: a flood cannot stall the loop).
    fn drain(&mut self, sniffer: &OwnedFd) {
        for _ in 0..64 {
            match netio::recv_sniffed(sniffer) {
                Ok(Some(seen)) => self.learn(seen),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The frames a network's requests came in, as far as its listener saw them.
struct Frames {
    /// The packet socket, when it listens ([`netio::sniff`]).
    sniffer: Option<Arc<OwnedFd>>,
    macs: MacCache,
}

impl Frames {
    /// What was seen of the frame of the datagram from `src` with `tag`.
    fn link(&mut self, src: Ipv6Addr, tag: [u8; 4]) -> Link {
        let Some(sniffer) = &self.sniffer else {
            return Link::Unknown;
        };
        self.macs.drain(sniffer);
        match self.macs.get(src, tag) {
            Some(mac) => Link::Seen(mac),
            None => Link::Missed,
        }
    }
}

/// A network's DHCPv6 state.
struct Shell6 {
    udp: std::net::UdpSocket,
    view: ViewHandle,
    counters: Arc<Counters>,
    reply: Vec<u8>,
}

impl Shell6 {
    /// `span` is the parent of this request's events.
    fn handle(
        &mut self,
        req: &[u8],
        peer: SocketAddrV6,
        link: Link,
        span: &tracing::Span,
        logs: &mut Logs,
    ) {
        Counters::bump(&self.counters.received);
        let message = req.first().copied().unwrap_or(0);
        Counters::bump(
            &self.counters.by_type[usize::from(message & 0x0f) * usize::from(message < 16)],
        );
        let src = v6::Source {
            addr: *peer.ip(),
            link,
        };
        let current = self.view.load();
        let reply = &mut self.reply;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            v6::respond(req, &src, current.v6(), reply)
        }));
        drop(current);
        match outcome {
            Ok(v6::Outcome::Reply {
                delivery,
                request,
                reply,
                client,
            }) => {
                let to = SocketAddrV6::new(*peer.ip(), delivery.port(), 0, peer.scope_id());
                let udp = &self.udp;
                match dgram::send_now(udp, || udp.send_to(&self.reply, to)) {
                    Ok(_) => {
                        Counters::bump(&self.counters.replied);
                        if let Some(mac) = client {
                            self.counters.seen.record(mac.0, request, Fate::Answered);
                        }
                        let (req, rep) = (v6::name(request), v6::name(reply));
                        match (request, client) {
                            (msg6::RELEASE | msg6::DECLINE, Some(mac)) => {
                                if logs.admit() {
                                    tracing::info!(parent: span, "{req} from {mac} answered")
                                }
                            }
                            (_, Some(mac)) => {
                                tracing::debug!(parent: span, "{req} from {mac}: {rep} sent")
                            }
                            (_, None) => tracing::debug!(parent: span, "{req}: {rep} sent"),
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                        // Our link-local address is still tentative (duplicate address
                        // detection, ~1 s after the device came up); the client retransmits.
                        Counters::bump(&self.counters.send_errors);
                        tracing::debug!(parent: span, %to, "no usable link-local source address yet");
                    }
                    Err(e) => {
                        Counters::bump(&self.counters.send_errors);
                        if logs.admit() {
                            tracing::warn!(parent: span, error = %e, %to, "sending DHCPv6 reply failed");
                        }
                    }
                }
            }
            Ok(v6::Outcome::Ignored(reason)) => {
                Counters::bump(&self.counters.ignored);
                match reason {
                    v6::Ignore::UnknownClient { msg, mac } => {
                        Counters::bump(&self.counters.unknown_client);
                        if let Some(mac) = mac {
                            self.counters.seen.record(mac.0, msg, Fate::UnknownMac);
                        }
                    }
                    v6::Ignore::OtherServer { .. } => Counters::bump(&self.counters.other_server),
                    _ => {}
                }
                tracing::debug!(parent: span, "not answered: {reason}");
            }
            Ok(v6::Outcome::Malformed(why)) => {
                Counters::bump(&self.counters.malformed);
                tracing::debug!(parent: span, "dropped malformed DHCPv6 packet: {why}");
            }
            Err(_) => {
                Counters::bump(&self.counters.malformed);
                if logs.admit() {
                    tracing::error!(parent: span, %peer, "DHCPv6 responder panicked; packet dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_as_one_line() {
        let c = Counters::default();
        Counters::bump(&c.received);
        Counters::bump(&c.received);
        Counters::bump(&c.replied);
        Counters::bump(&c.ignored);
        assert_eq!(
            c.to_string(),
            "received 2, replied 1, ignored 1, malformed 0, send errors 0"
        );
    }

    #[test]
    fn mac_cache_keeps_the_newest_entries() {
        let mut c = MacCache::new();
        let ip = |i: u16| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i);
        let seen = |i: u16, tag: u8, mac: u8| netio::Sniffed {
            src: ip(i),
            tag: [tag; 4],
            mac: [mac; 6],
        };
        assert_eq!(c.get(Ipv6Addr::UNSPECIFIED, [0; 4]), None);
        c.learn(seen(1, 7, 1));
        c.learn(seen(1, 7, 2));
        c.learn(seen(1, 8, 3));
        assert_eq!(c.get(ip(1), [7; 4]), Some(MacAddr([2; 6])), "newest wins");
        assert_eq!(c.get(ip(1), [8; 4]), Some(MacAddr([3; 6])), "by datagram");
        assert_eq!(c.get(ip(1), [9; 4]), None);
        for i in 2..(MacCache::SIZE as u16 + 2) {
            c.learn(seen(i, 7, i as u8));
        }
        assert_eq!(c.get(ip(1), [7; 4]), None, "evicted");
        assert_eq!(c.get(ip(5), [7; 4]), Some(MacAddr([5; 6])));
    }
}
