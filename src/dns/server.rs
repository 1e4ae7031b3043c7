//! The DNS I/O shell of one namespace: port 53 on the DHCP port's addresses.
//!
//! - **UDP** (nearly all DNS traffic) is served like DHCP: each socket is a job on the DNS
//!   threads ([`threads`], `epoll` loops of their own): one `recvmmsg` takes the queued
//!   queries, each is a lookup in the view the DHCP threads read ([`ViewHandle`], swapped on
//!   every change, never locked), one `sendmmsg` sends the replies ([`super::batch`]); the
//!   buffers are the thread's, so an idle network costs no buffer.
//! - **TCP** and **forwarding** are rare and wait on peers: they run as tokio tasks. Their
//!   sockets are made inside the namespace, so forwarded queries leave through the tenant
//!   network as dnsmasq's do ([`super::forward`]).
//! - Only clients on the DHCP port's subnets (and IPv6 link-local ones) are answered, as
//!   dnsmasq's `--local-service` does; others are dropped and counted.
//!
//! The sockets are bound with `IP_FREEBIND`, like dnsmasq's `--bind-dynamic`: an IPv6 address
//! still in duplicate address detection is listened on at once.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::tcp::{read_message, write_message};
use ipnetwork::IpNetwork;
use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{self, Answered, Outcome, Transport};
use super::batch::{Batch, BATCH};
use super::forward::Forwarder;
use crate::serve::threads;
use crate::view::cache::ViewHandle;

pub const DNS_PORT: u16 = 53;

/// The isolated-metadata addresses the device may carry: not the DHCP port's, not listened on.
const METADATA_V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254));
const METADATA_V6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(
    0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe,
));

/// An idle TCP client is closed after this (dnsmasq: `TCP_TIMEOUT`, a few seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP clients served at once per listener; more wait in the kernel's accept queue.
const TCP_CLIENTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        source: crate::device::DeviceError,
    },
    #[error("namespace {namespace}: cannot serve DNS on {addr}: {source}")]
    Socket {
        namespace: String,
        addr: SocketAddr,
        source: io::Error,
    },
}

/// Per-namespace DNS counters; relaxed atomics, never a lock.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub local: AtomicU64,
    pub refused: AtomicU64,
    pub forwarded: AtomicU64,
    pub errors: AtomicU64,
    pub malformed: AtomicU64,
    pub not_local_client: AtomicU64,
    pub send_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "received {}, local {}, refused {}, forwarded {}, errors {}, malformed {}, \
             non-local clients {}, send errors {}",
            n(&self.received),
            n(&self.local),
            n(&self.refused),
            n(&self.forwarded),
            n(&self.errors),
            n(&self.malformed),
            n(&self.not_local_client),
            n(&self.send_errors)
        )
    }
}

/// The addresses the DNS service of a network listens on: the DHCP port's (the plan's
/// addresses without the metadata ones), and the subnets its clients must come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub addresses: Vec<IpAddr>,
    pub subnets: Vec<IpNetwork>,
}

impl Listen {
    pub fn of(addresses: &[IpNetwork]) -> Listen {
        let own: Vec<IpNetwork> = addresses
            .iter()
            .copied()
            .filter(|a| a.ip() != METADATA_V4 && a.ip() != METADATA_V6)
            .collect();
        let mut subnets: Vec<IpNetwork> = own
            .iter()
            .filter_map(|a| IpNetwork::new(a.network(), a.prefix()).ok())
            .collect();
        // The device always has a link-local address, hence this attached subnet.
        if let Ok(ll) = IpNetwork::new(
            IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
            10,
        ) {
            subnets.push(ll);
        }
        Listen {
            addresses: own.iter().map(IpNetwork::ip).collect(),
            subnets,
        }
    }

    fn allows(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.subnets.iter().any(|s| s.contains(peer))
    }
}

/// Sockets of one namespace's DNS service, opened inside it, not served yet.
pub struct DnsSockets {
    namespace: String,
    listen: Listen,
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
}

impl DnsSockets {
    /// Opens UDP and TCP port 53 on every address of `listen`, in the calling thread's
    /// namespace (a namespace worker or batch thread).
    pub fn open_here(namespace: &str, listen: Listen) -> Result<DnsSockets, DnsError> {
        let mut udp = Vec::with_capacity(listen.addresses.len());
        let mut tcp = Vec::with_capacity(listen.addresses.len());
        for &ip in &listen.addresses {
            let addr = SocketAddr::new(ip, DNS_PORT);
            let err = |source| DnsError::Socket {
                namespace: namespace.to_owned(),
                addr,
                source,
            };
            udp.push(bind(addr, Type::DGRAM).map_err(err)?.into());
            tcp.push(bind(addr, Type::STREAM).map_err(err)?.into());
        }
        Ok(DnsSockets {
            namespace: namespace.to_owned(),
            listen,
            udp,
            tcp,
        })
    }

    /// [`DnsSockets::open_here`] from any task: on a namespace worker.
    pub async fn open(namespace: &str, listen: Listen) -> Result<DnsSockets, DnsError> {
        let ns = namespace.to_owned();
        crate::device::in_netns(namespace, move || DnsSockets::open_here(&ns, listen))
            .await
            .map_err(|source| DnsError::Namespace {
                namespace: namespace.to_owned(),
                source,
            })?
    }
}

fn bind(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    let (domain, proto) = match (addr, ty) {
        (SocketAddr::V4(_), Type::DGRAM) => (Domain::IPV4, Protocol::UDP),
        (SocketAddr::V4(_), _) => (Domain::IPV4, Protocol::TCP),
        (SocketAddr::V6(_), Type::DGRAM) => (Domain::IPV6, Protocol::UDP),
        (SocketAddr::V6(_), _) => (Domain::IPV6, Protocol::TCP),
    };
    let s = Socket::new(domain, ty, Some(proto))?;
    s.set_reuse_address(true)?;
    match addr {
        SocketAddr::V4(_) => s.set_freebind_v4(true)?,
        SocketAddr::V6(_) => {
            s.set_only_v6(true)?;
            s.set_freebind_v6(true)?;
        }
    }
    s.bind(&addr.into())?;
    if ty == Type::STREAM {
        s.listen(64)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The DNS threads; named `dns-io-<n>`.
static THREADS: threads::Pool<UdpJob> = threads::Pool::new("dns-io");

/// A network's running DNS service; [`DnsService::stop`] ends it.
pub struct DnsService {
    pub listen: Listen,
    pub counters: Arc<Counters>,
    /// The upstream side's counters (timeouts, unmatched answers, overflow).
    pub forward: Arc<crate::dns::forward::ForwardCounters>,
    udp: Vec<threads::Served<UdpJob>>,
    tcp: Vec<tokio::task::AbortHandle>,
}

impl DnsService {
    /// Serves the sockets: UDP on the DNS threads, TCP (and forwarding, when asked for) as
    /// tasks of `rt`. `upstreams`: where names that are not the network's go (empty:
    /// REFUSED).
    pub fn serve(
        network_id: &str,
        sockets: DnsSockets,
        view: ViewHandle,
        upstreams: Arc<[SocketAddr]>,
        rt: &tokio::runtime::Handle,
    ) -> Result<DnsService, DnsError> {
        let DnsSockets {
            namespace,
            listen,
            udp,
            tcp,
        } = sockets;
        let counters = Arc::new(Counters::default());
        let forwarder = Arc::new(Forwarder::new(
            network_id,
            &namespace,
            upstreams,
            rt.clone(),
        ));
        let forward = forwarder.counters.clone();
        let shared = Arc::new(Shared {
            view,
            listen: listen.clone(),
            forwarder,
            counters: counters.clone(),
            span: tracing::info_span!(parent: None, "dns", network_id = %network_id),
        });
        let mut served = Vec::with_capacity(udp.len());
        for sock in udp {
            let job = UdpJob {
                sock: Arc::new(sock),
                shared: shared.clone(),
            };
            let addr = job.sock.local_addr();
            served.push(THREADS.serve(job).map_err(|source| DnsError::Socket {
                namespace: namespace.clone(),
                addr: addr.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], DNS_PORT))),
                source,
            })?);
        }
        let mut tasks = Vec::with_capacity(tcp.len());
        for listener in tcp {
            let _entered = rt.enter();
            let addr = listener.local_addr();
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|source| DnsError::Socket {
                    namespace: namespace.clone(),
                    addr: addr.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], DNS_PORT))),
                    source,
                })?;
            tasks.push(rt.spawn(accept(listener, shared.clone())).abort_handle());
        }
        tracing::debug!(network_id, addresses = ?listen.addresses, "DNS serving started");
        Ok(DnsService {
            listen,
            counters,
            forward,
            udp: served,
            tcp: tasks,
        })
    }

    /// Stops serving and closes the sockets (also those of TCP clients).
    pub async fn stop(self) {
        for t in &self.tcp {
            t.abort();
        }
        for served in self.udp {
            // The job comes back to be dropped here: closing a UDP socket is quick.
            drop(served.stop().await);
        }
    }
}

/// What the UDP jobs and TCP tasks of one network share.
struct Shared {
    view: ViewHandle,
    listen: Listen,
    forwarder: Arc<Forwarder>,
    counters: Arc<Counters>,
    span: tracing::Span,
}

/// One UDP socket of a network on a DNS thread.
struct UdpJob {
    sock: Arc<std::net::UdpSocket>,
    shared: Arc<Shared>,
}

thread_local! {
    /// The DNS thread's datagram buffers, shared by all the networks it serves.
    static BUFFERS: RefCell<Batch> = RefCell::new(Batch::new());
}

impl threads::Job for UdpJob {
    fn sources(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.sock.as_fd()]
    }

    /// The DHCP threads' receive buffer is not used: a DNS thread takes several datagrams at
    /// once into its own batch buffers.
    fn ready(&mut self, _source: usize, _rx: &mut [u8]) -> Option<std::time::Instant> {
        BUFFERS.with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                self.handle(&mut b);
            }
        });
        None
    }
}

impl UdpJob {
    /// Answers what one `recvmmsg` takes, with one `sendmmsg`.
    fn handle(&self, batch: &mut Batch) {
        let s = &*self.shared;
        let fd = self.sock.as_raw_fd();
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(parent: &s.span, error = %e, "recv failed");
                return;
            }
        };
        let mut send = [0usize; BATCH];
        let mut sends = 0;
        let view = s.view.load();
        let forwarding = s.forwarder.enabled();
        for i in 0..n {
            Counters::bump(&s.counters.received);
            let (req, peer, reply) = batch.query(i);
            let Some(peer) = peer.filter(|p| s.listen.allows(p.ip())) else {
                Counters::bump(&s.counters.not_local_client);
                tracing::debug!(parent: &s.span, ?peer, "query from a client not on the network's subnets ignored");
                continue;
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer::respond(req, view.dns(), forwarding, Transport::Udp, reply)
            }));
            match outcome {
                Ok(Outcome::Reply(kind)) => {
                    s.count(kind);
                    send[sends] = i;
                    sends += 1;
                }
                Ok(Outcome::Forward) => {
                    Counters::bump(&s.counters.forwarded);
                    s.forwarder.forward_udp(req, peer, &self.sock);
                }
                Ok(Outcome::Malformed(why)) => {
                    Counters::bump(&s.counters.malformed);
                    tracing::debug!(parent: &s.span, %peer, "dropped malformed DNS query: {why}");
                }
                Err(_) => {
                    Counters::bump(&s.counters.malformed);
                    tracing::error!(parent: &s.span, %peer, "DNS responder panicked; query dropped");
                }
            }
        }
        drop(view);
        let (failed, error) = batch.send(fd, &send[..sends]);
        if failed > 0 {
            s.counters
                .send_errors
                .fetch_add(failed as u64, Ordering::Relaxed);
            tracing::debug!(parent: &s.span, failed, error = ?error, "sending DNS replies failed");
        }
    }
}

impl Shared {
    fn count(&self, kind: Answered) {
        let c = &self.counters;
        Counters::bump(match kind {
            Answered::Local => &c.local,
            Answered::Refused => &c.refused,
            Answered::Error => &c.errors,
        });
    }
}

/// Accepts TCP clients of one listener; its clients end with it (the join set is dropped).
async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut clients = tokio::task::JoinSet::new();
    loop {
        while clients.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(parent: &shared.span, error = %e, "cannot accept a DNS client");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !shared.listen.allows(peer.ip()) {
            Counters::bump(&shared.counters.not_local_client);
            continue;
        }
        if clients.len() >= TCP_CLIENTS {
            // Wait for one to finish rather than let a flood of connections grow without bound.
            let _ = clients.join_next().await;
        }
        clients.spawn(serve_tcp(stream, peer, shared.clone()));
    }
}

/// One TCP client: length-prefixed queries until it closes or idles (RFC 7766).
async fn serve_tcp(mut stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut out = Vec::new();
    loop {
        let Some(req) = read_message(&mut stream, TCP_IDLE).await else {
            return;
        };
        Counters::bump(&shared.counters.received);
        let outcome = {
            let view = shared.view.load();
            let forwarding = shared.forwarder.enabled();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer::respond(&req, view.dns(), forwarding, Transport::Tcp, &mut out)
            }))
        };
        let reply = match outcome {
            Ok(Outcome::Reply(kind)) => {
                shared.count(kind);
                std::mem::take(&mut out)
            }
            Ok(Outcome::Forward) => {
                Counters::bump(&shared.counters.forwarded);
                shared.forwarder.forward_tcp(&req).await
            }
            Ok(Outcome::Malformed(why)) => {
                Counters::bump(&shared.counters.malformed);
                tracing::debug!(parent: &shared.span, %peer, "dropped malformed DNS query over TCP: {why}");
                return;
            }
            Err(_) => {
                Counters::bump(&shared.counters.malformed);
                tracing::error!(parent: &shared.span, %peer, "DNS responder panicked; TCP client closed");
                return;
            }
        };
        if reply.is_empty() || write_message(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_on_the_dhcp_ports_addresses_and_answers_its_subnets() {
        let addrs: Vec<IpNetwork> = ["10.0.0.2/24", "fd00::2/64", "169.254.169.254/32"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let l = Listen::of(&addrs);
        assert_eq!(
            l.addresses,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fd00::2".parse().unwrap()
            ]
        );
        for ok in ["10.0.0.77", "fd00::1234", "fe80::1", "::ffff:10.0.0.9"] {
            assert!(l.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["10.0.1.1", "192.168.0.1", "fd01::1", "169.254.169.254"] {
            assert!(!l.allows(no.parse().unwrap()), "{no}");
        }
    }
}
