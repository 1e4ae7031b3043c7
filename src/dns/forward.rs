//! Forwarding what is not the network's own name to the upstream servers
//! (`dnsmasq_dns_servers`, or resolv.conf's with `dnsmasq_local_resolv`), from inside the
//! network's namespace: the upstream may be reachable only through the tenant network.
//!
//! - **UDP**: one task per network that forwards, started on its first forwarded query and
//!   ended after a minute without any (so an idle network holds no socket or buffer). A query
//!   goes out with a fresh random id to one server at a time; after [`TRY_TIMEOUT`] without an
//!   answer it goes to the next server (at least two tries in all), then the client gets
//!   SERVFAIL. An answer is taken only from the server the query went to, with its id and
//!   its question: spoofed or late answers are dropped and counted. The query is forwarded
//!   as received, id aside, so EDNS passes through; a truncated answer reaches the client as
//!   such, which then asks over TCP.
//! - **TCP** (a TCP client's query): a connection per query from inside the namespace, each
//!   server in turn.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::Query;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::answer::{id_and_question, servfail};
use super::tcp::{read_message, write_message};

/// How long one upstream server is given to answer before the next is tried.
pub const TRY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Queries in flight per network (dnsmasq's `dns-forward-max` default is 150).
const MAX_PENDING: usize = 150;
/// A forwarding task with nothing to do for this long ends, closing its sockets.
const IDLE: Duration = Duration::from_secs(60);
/// Largest UDP answer taken from upstream.
const UDP_MAX: usize = 65535;

/// Counters of the upstream side.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    /// Answers dropped: not from the server asked, unknown id, or another question.
    pub unmatched: AtomicU64,
    /// Queries that got SERVFAIL after every try timed out.
    pub timed_out: AtomicU64,
    /// Queries dropped because too many were in flight.
    pub overflow: AtomicU64,
}

/// A network's upstream side, shared by its UDP jobs and TCP tasks.
pub struct Forwarder {
    namespace: String,
    upstreams: Arc<[SocketAddr]>,
    rt: tokio::runtime::Handle,
    span: tracing::Span,
    pub counters: Arc<ForwardCounters>,
    /// The UDP task's queue; replaced when the task has ended (idle).
    queue: Mutex<Option<mpsc::Sender<UdpRequest>>>,
}

/// A UDP query to forward and where its answer goes.
struct UdpRequest {
    query: Vec<u8>,
    client: SocketAddr,
    via: Arc<std::net::UdpSocket>,
}

impl Forwarder {
    pub fn new(
        network_id: &str,
        namespace: &str,
        upstreams: Arc<[SocketAddr]>,
        rt: tokio::runtime::Handle,
    ) -> Forwarder {
        Forwarder {
            namespace: namespace.to_owned(),
            upstreams,
            rt,
            span: tracing::info_span!(parent: None, "dns-forward", network_id = %network_id),
            counters: Arc::default(),
            queue: Mutex::new(None),
        }
    }

    /// Whether there is anywhere to forward to.
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Forwards a UDP query; its answer goes to `client` through `via` (the socket the query
    /// came in on, so that it leaves from the address the client asked).
    pub fn forward_udp(&self, query: &[u8], client: SocketAddr, via: &Arc<std::net::UdpSocket>) {
        let mut req = UdpRequest {
            query: query.to_vec(),
            client,
            via: via.clone(),
        };
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..2 {
            let tx = queue.get_or_insert_with(|| self.start());
            match tx.try_send(req) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    bump(&self.counters.overflow);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(r)) => {
                    // The task ended (idle): start another.
                    *queue = None;
                    req = r;
                }
            }
        }
    }

    fn start(&self) -> mpsc::Sender<UdpRequest> {
        let (tx, rx) = mpsc::channel(MAX_PENDING);
        let task = UdpTask {
            namespace: self.namespace.clone(),
            upstreams: self.upstreams.clone(),
            counters: self.counters.clone(),
            span: self.span.clone(),
            pending: HashMap::new(),
        };
        self.rt.spawn(task.run(rx));
        tx
    }

    /// Forwards a TCP client's query over TCP; the answer, or SERVFAIL if no server gave one.
    pub async fn forward_tcp(&self, query: &[u8]) -> Vec<u8> {
        let Some((header, question)) = id_and_question(query) else {
            return Vec::new();
        };
        for &server in self.upstreams.iter() {
            let exchange = self.tcp_exchange(server, query, &question);
            match tokio::time::timeout(TRY_TIMEOUT * 2, exchange).await {
                Ok(Ok(mut reply)) => {
                    reply[..2].copy_from_slice(&header.metadata.id.to_be_bytes());
                    return reply;
                }
                Ok(Err(e)) => {
                    tracing::debug!(parent: &self.span, %server, error = %e, "TCP forward failed")
                }
                Err(_) => tracing::debug!(parent: &self.span, %server, "TCP forward timed out"),
            }
        }
        bump(&self.counters.timed_out);
        let mut out = Vec::new();
        servfail(query, &mut out);
        out
    }

    async fn tcp_exchange(
        &self,
        server: SocketAddr,
        query: &[u8],
        question: &Query,
    ) -> std::io::Result<Vec<u8>> {
        let domain = Domain::for_address(server);
        let opened = crate::device::in_netns(&self.namespace, move || {
            let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            s.set_nonblocking(true)?;
            Ok::<std::net::TcpStream, std::io::Error>(s.into())
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut stream = tokio::net::TcpSocket::from_std_stream(opened)
            .connect(server)
            .await?;
        let id: u16 = rand::random();
        let mut out = query.to_vec();
        out[..2].copy_from_slice(&id.to_be_bytes());
        write_message(&mut stream, &out).await?;
        let reply = read_message(&mut stream, TRY_TIMEOUT * 2)
            .await
            .ok_or_else(|| std::io::Error::other("no answer"))?;
        match id_and_question(&reply) {
            Some((h, q)) if h.metadata.id == id && q == *question => Ok(reply),
            _ => {
                bump(&self.counters.unmatched);
                Err(std::io::Error::other("answer does not match the query"))
            }
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A query in flight upstream, keyed by the id it went out with.
struct Pending {
    client_id: u16,
    client: SocketAddr,
    via: Arc<std::net::UdpSocket>,
    /// As forwarded (with the upstream id).
    query: Vec<u8>,
    question: Query,
    server: usize,
    tries: usize,
    deadline: Instant,
}

struct UdpTask {
    namespace: String,
    upstreams: Arc<[SocketAddr]>,
    counters: Arc<ForwardCounters>,
    span: tracing::Span,
    pending: HashMap<u16, Pending>,
}

/// The upstream sockets of one network: IPv4 and IPv6, each if some server needs it.
struct Upstream {
    v4: Option<tokio::net::UdpSocket>,
    v6: Option<tokio::net::UdpSocket>,
}

impl Upstream {
    async fn open(namespace: &str, upstreams: &[SocketAddr]) -> std::io::Result<Upstream> {
        let mut up = Upstream { v4: None, v6: None };
        for v6 in [false, true] {
            if !upstreams.iter().any(|s| s.is_ipv6() == v6) {
                continue;
            }
            let std = crate::device::in_netns(namespace, move || {
                let any: SocketAddr = if v6 {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                };
                let s = Socket::new(Domain::for_address(any), Type::DGRAM, Some(Protocol::UDP))?;
                s.set_nonblocking(true)?;
                s.bind(&any.into())?;
                Ok::<std::net::UdpSocket, std::io::Error>(s.into())
            })
            .await
            .map_err(std::io::Error::other)??;
            let sock = tokio::net::UdpSocket::from_std(std)?;
            if v6 {
                up.v6 = Some(sock);
            } else {
                up.v4 = Some(sock);
            }
        }
        Ok(up)
    }

    fn for_server(&self, server: SocketAddr) -> Option<&tokio::net::UdpSocket> {
        if server.is_ipv6() {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }
}

/// Waits until `sock` is readable; forever if there is no such socket.
async fn readable(sock: Option<&tokio::net::UdpSocket>) -> std::io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

impl UdpTask {
    async fn run(mut self, mut rx: mpsc::Receiver<UdpRequest>) {
        let up = match Upstream::open(&self.namespace, &self.upstreams).await {
            Ok(up) => up,
            Err(e) => {
                tracing::error!(parent: &self.span, error = %e, "cannot open the upstream DNS sockets in the namespace; answering SERVFAIL");
                let mut out = Vec::new();
                while let Ok(Some(r)) = tokio::time::timeout(IDLE, rx.recv()).await {
                    if servfail(&r.query, &mut out) {
                        let _ = r.via.send_to(&out, r.client);
                    }
                }
                return;
            }
        };
        let mut buf = vec![0u8; UDP_MAX];
        let mut idle_since = Instant::now();
        loop {
            let next = self.pending.values().map(|p| p.deadline).min();
            let wake = next.unwrap_or(idle_since + IDLE);
            tokio::select! {
                req = rx.recv() => match req {
                    Some(r) => self.start(&up, r).await,
                    None => return,
                },
                r = readable(up.v4.as_ref()) => {
                    if r.is_ok() { self.drain(up.v4.as_ref(), &mut buf); }
                }
                r = readable(up.v6.as_ref()) => {
                    if r.is_ok() { self.drain(up.v6.as_ref(), &mut buf); }
                }
                () = tokio::time::sleep_until(wake) => {
                    if next.is_none() {
                        // Idle: end; the next forwarded query starts a new task.
                        return;
                    }
                    self.expire(&up).await;
                }
            }
            if self.pending.is_empty() {
                idle_since = Instant::now();
            }
        }
    }

    fn fresh_id(&self) -> u16 {
        loop {
            let id: u16 = rand::random();
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    async fn start(&mut self, up: &Upstream, r: UdpRequest) {
        let Some((header, question)) = id_and_question(&r.query) else {
            return;
        };
        if self.pending.len() >= MAX_PENDING {
            bump(&self.counters.overflow);
            return;
        }
        let p = Pending {
            client_id: header.metadata.id,
            client: r.client,
            via: r.via,
            query: r.query,
            question,
            server: 0,
            tries: 0,
            deadline: Instant::now(),
        };
        self.send(up, p).await;
    }

    /// Sends `p` to its server with a new id and files it under that id.
    async fn send(&mut self, up: &Upstream, mut p: Pending) {
        let id = self.fresh_id();
        p.query[..2].copy_from_slice(&id.to_be_bytes());
        p.tries += 1;
        p.deadline = Instant::now() + TRY_TIMEOUT;
        let server = self.upstreams[p.server];
        match up.for_server(server) {
            Some(sock) => {
                if let Err(e) = sock.send_to(&p.query, server).await {
                    tracing::debug!(parent: &self.span, %server, error = %e, "forwarding failed");
                    // Tried again (elsewhere) when the deadline passes.
                }
            }
            None => tracing::debug!(parent: &self.span, %server, "no socket for this server"),
        }
        self.pending.insert(id, p);
    }

    /// Takes every answer queued on `sock`.
    fn drain(&mut self, sock: Option<&tokio::net::UdpSocket>, buf: &mut [u8]) {
        let Some(sock) = sock else {
            return;
        };
        while let Ok((n, from)) = sock.try_recv_from(buf) {
            self.answer(&mut buf[..n], from);
        }
    }

    fn answer(&mut self, answer: &mut [u8], from: SocketAddr) {
        let matched = id_and_question(answer).and_then(|(h, q)| {
            let p = self.pending.get(&h.metadata.id)?;
            (self.upstreams[p.server] == from && p.question == q).then_some(h.metadata.id)
        });
        let Some(p) = matched.and_then(|id| self.pending.remove(&id)) else {
            bump(&self.counters.unmatched);
            tracing::debug!(parent: &self.span, %from, "dropped an upstream answer that matches no query");
            return;
        };
        answer[..2].copy_from_slice(&p.client_id.to_be_bytes());
        let via = &*p.via;
        if let Err(e) = crate::serve::dgram::send_now(via, || via.send_to(answer, p.client)) {
            tracing::debug!(parent: &self.span, client = %p.client, error = %e, "cannot pass an answer on");
        }
    }

    /// Queries whose server did not answer in time: to the next server, or SERVFAIL.
    async fn expire(&mut self, up: &Upstream) {
        let now = Instant::now();
        let expired: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        let tries = self.upstreams.len().max(2);
        let mut out = Vec::new();
        for id in expired {
            let Some(mut p) = self.pending.remove(&id) else {
                continue;
            };
            if p.tries < tries {
                p.server = (p.server + 1) % self.upstreams.len();
                self.send(up, p).await;
                continue;
            }
            bump(&self.counters.timed_out);
            p.query[..2].copy_from_slice(&p.client_id.to_be_bytes());
            if servfail(&p.query, &mut out) {
                let _ = p.via.send_to(&out, p.client);
            }
        }
    }
}
