//! The I/O shell: one network's metadata listeners, inside its namespace, forwarding to the
//! metadata agent's UNIX socket in the agent's own namespace.
//!
//! The listening sockets are opened by a namespace worker ([`crate::device::netns`]), the
//! same plumbing as the DHCP sockets, then handed to the tokio runtime: a socket keeps its
//! namespace, so the agent serves every network from one process and a few tasks. Each
//! request gets a fresh connection to the metadata agent (haproxy's `option
//! http-server-close`), so a metadata agent that restarts is used again at the next request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::decision::{Decision, Keyed, Switches};
use super::forward::{self, KeyHeader};
use super::ratelimit::RateLimiter;
use super::stall::WriteStallTimeout;
use crate::config::{AgentConfig, MetadataTimeouts, RateLimitOptions};
use crate::device::plan::{METADATA_V4, METADATA_V6};

/// `METADATA_PORT`.
pub const METADATA_PORT: u16 = 80;
/// Pending connections the kernel holds per listener while all connection slots are busy.
const BACKLOG: i32 = 1024;

/// Everything a network's proxy needs from the configuration, shared by all networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    pub switches: Switches,
    /// `metadata_proxy_socket`.
    pub socket: PathBuf,
    pub timeouts: MetadataTimeouts,
    pub rate_limit: Option<RateLimitOptions>,
    pub max_connections: usize,
}

impl ProxySettings {
    pub fn from_config(cfg: &AgentConfig) -> ProxySettings {
        ProxySettings {
            switches: Switches {
                force_metadata: cfg.serve.force_metadata,
                enable_isolated_metadata: cfg.serve.enable_isolated_metadata,
                enable_metadata_network: cfg.metadata.enable_metadata_network,
            },
            socket: cfg.metadata.proxy_socket.clone(),
            timeouts: cfg.metadata.timeouts,
            rate_limit: cfg.metadata.rate_limit,
            max_connections: cfg.metadata.max_connections_per_network,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("namespace {namespace}: cannot listen on {addr}: {source}")]
    Listen {
        namespace: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        source: crate::device::DeviceError,
    },
    #[error("id {0:?} cannot be sent in an HTTP header")]
    BadId(String),
}

/// Per-network request counters; relaxed atomics.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub requests: AtomicU64,
    /// Requests hyper could not parse (answered 400, or 431 for oversized heads).
    pub bad_requests: AtomicU64,
    /// Denied by `[metadata_rate_limiting]` (429).
    pub rate_limited: AtomicU64,
    /// The metadata agent could not be reached (503).
    pub unavailable: AtomicU64,
    /// The metadata agent did not answer within `timeout_server` (504).
    pub timeouts: AtomicU64,
    /// The metadata agent's answer was broken (502).
    pub bad_gateway: AtomicU64,
    /// Answers the metadata agent gave, by status class (index 0: 1xx ... 4: 5xx).
    pub upstream_classes: [AtomicU64; 5],
}

/// The label values of [`ProxyCounters::upstream_classes`].
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl std::fmt::Display for ProxyCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "requests {}, bad requests {}, rate limited {}, agent unavailable {}, agent timeouts {}, bad gateway {}",
            n(&self.requests),
            n(&self.bad_requests),
            n(&self.rate_limited),
            n(&self.unavailable),
            n(&self.timeouts),
            n(&self.bad_gateway)
        )
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the tasks of one network's proxy share.
struct Shared {
    network_id: String,
    key: KeyHeader,
    socket: PathBuf,
    timeouts: MetadataTimeouts,
    limiter: Option<RateLimiter>,
    counters: Arc<ProxyCounters>,
    /// Connection slots of this network, shared by its IPv4 and IPv6 listeners.
    slots: Arc<Semaphore>,
}

/// A running proxy; dropping it stops it (listeners closed, open connections cut).
pub struct MetadataProxy {
    pub decision: Decision,
    pub counters: Arc<ProxyCounters>,
    /// Whether `[fe80::a9fe:a9fe]:80` is served (wanted and the address could be bound).
    pub ipv6_listening: bool,
    tasks: JoinSet<()>,
}

impl MetadataProxy {
    /// Opens the listeners in the network's namespace and serves them.
    ///
    /// The IPv6 listener is best effort, as in Neutron (an address that failed DAD is not
    /// served): a failure is logged and the network is served on IPv4.
    pub async fn start(
        network_id: &str,
        namespace: &str,
        ifname: &str,
        decision: Decision,
        settings: &ProxySettings,
    ) -> Result<MetadataProxy, MetadataError> {
        let key = KeyHeader::new(&decision.keyed).ok_or_else(|| {
            MetadataError::BadId(match &decision.keyed {
                Keyed::Network(id) | Keyed::Router(id) => id.clone(),
            })
        })?;
        let want_v6 = decision.ipv6;
        let dev = ifname.to_owned();
        let (v4, v6) = crate::device::netns::in_netns(namespace, move || {
            (listen_v4(), want_v6.then(|| listen_v6(&dev)))
        })
        .await
        .map_err(|source| MetadataError::Namespace {
            namespace: namespace.to_owned(),
            source,
        })?;
        let listen_err = |addr: SocketAddr| {
            let namespace = namespace.to_owned();
            move |source| MetadataError::Listen {
                namespace,
                addr,
                source,
            }
        };
        let v4 = v4
            .and_then(TcpListener::from_std)
            .map_err(listen_err(v4_addr()))?;
        let v6 = match v6.map(|r| r.and_then(TcpListener::from_std)) {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                tracing::warn!(%network_id, %namespace, interface = %ifname, error = %e, "cannot listen on [fe80::a9fe:a9fe]:80; metadata is served on IPv4 only");
                None
            }
            None => None,
        };
        let counters = Arc::new(ProxyCounters::default());
        let shared = Arc::new(Shared {
            network_id: network_id.to_owned(),
            key,
            socket: settings.socket.clone(),
            timeouts: settings.timeouts,
            limiter: settings.rate_limit.map(RateLimiter::new),
            counters: counters.clone(),
            slots: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        });
        let mut tasks = JoinSet::new();
        let ipv6_listening = v6.is_some();
        for listener in std::iter::once(v4).chain(v6) {
            let span = tracing::info_span!("metadata", network_id = %network_id);
            tasks.spawn(accept_loop(listener, shared.clone()).instrument(span));
        }
        tracing::info!(
            %network_id,
            %namespace,
            keyed = ?decision.keyed,
            ipv6 = ipv6_listening,
            socket = %settings.socket.display(),
            "metadata proxy listening"
        );
        Ok(MetadataProxy {
            decision,
            counters,
            ipv6_listening,
            tasks,
        })
    }

    /// Closes the listeners and cuts open connections; returns the final counters. Returns
    /// once the listening sockets are closed, so a new proxy can bind the same address.
    pub async fn stop(mut self) -> Arc<ProxyCounters> {
        self.tasks.shutdown().await;
        self.counters.clone()
    }
}

fn v4_addr() -> SocketAddr {
    SocketAddrV4::new(METADATA_V4, METADATA_PORT).into()
}

/// A listener that also binds while the address is not (yet) on the device: the agent
/// starts the proxy right after plumbing, and an IPv6 address is tentative until DAD is done.
fn listen_v4() -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_freebind_v4(true)?;
    s.bind(&v4_addr().into())?;
    finish(s)
}

/// `bind [fe80::a9fe:a9fe]:80 interface <dhcp device>`.
fn listen_v6(ifname: &str) -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.set_freebind_v6(true)?;
    s.bind_device(Some(ifname.as_bytes()))?;
    s.bind(&SocketAddr::from(SocketAddrV6::new(METADATA_V6, METADATA_PORT, 0, 0)).into())?;
    finish(s)
}

fn finish(s: socket2::Socket) -> io::Result<std::net::TcpListener> {
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Accepts while a connection slot is free; beyond the cap, clients wait in the backlog (as
/// with haproxy's `maxconn`), so a flood of idle connections on one network costs the
/// agent a bounded number of descriptors. Connection tasks live in this task's set: stopping
/// the proxy cuts them too.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok(slot) = shared.slots.clone().acquire_owned().await else {
            return; // never closed
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                // Inside the network's span (this task's), one span per client connection.
                let span = tracing::debug_span!("client", client = %peer.ip());
                conns.spawn(
                    async move {
                        serve_connection(stream, peer.ip(), &shared).await;
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // EMFILE and the like: back off instead of spinning; the client is retried.
                tracing::warn!(error = %e, "metadata proxy cannot accept a connection");
                drop(slot);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, client: IpAddr, shared: &Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(handle(req, client, &shared).await) }
    });
    // A request head must arrive within timeout_http_request, and a kept-alive connection
    // must start its next request within timeout_http_keep_alive (hyper runs the same timer
    // while it waits for a head): a client that trickles bytes cannot hold a slot longer.
    let head_timeout = shared
        .timeouts
        .http_request
        .min(shared.timeouts.http_keep_alive);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(
            TokioIo::new(WriteStallTimeout::new(stream, shared.timeouts.client)),
            svc,
        );
    if let Err(e) = conn.await {
        if e.is_parse() || e.is_parse_too_large() {
            bump(&shared.counters.bad_requests);
            tracing::info!(%client, error = %e, "bad metadata request");
        } else {
            tracing::debug!(%client, error = %e, "metadata connection ended");
        }
    }
}

type ProxyBody = Either<Upstream, Full<Bytes>>;

async fn handle(
    mut req: Request<Incoming>,
    client: IpAddr,
    shared: &Shared,
) -> Response<ProxyBody> {
    let started = Instant::now();
    bump(&shared.counters.requests);
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    if let Some(limiter) = &shared.limiter {
        if !limiter.allow(client, started) {
            bump(&shared.counters.rate_limited);
            tracing::info!(%client, %method, %path, "metadata request rate limited");
            return error_response(StatusCode::TOO_MANY_REQUESTS);
        }
    }
    forward::to_upstream(req.headers_mut(), client, &shared.key);
    *req.version_mut() = hyper::Version::HTTP_11;
    if let Ok(uri) = path.parse() {
        // An absolute-form target (`GET http://169.254.169.254/...`) goes on in origin form.
        *req.uri_mut() = uri;
    }
    let response = match forward(req, shared).await {
        Ok(mut resp) => {
            let class = usize::from(resp.status().as_u16() / 100).clamp(1, 5) - 1;
            bump(&shared.counters.upstream_classes[class]);
            forward::to_client(resp.headers_mut());
            resp.map(Either::Left)
        }
        Err(status) => {
            let counter = match status {
                StatusCode::SERVICE_UNAVAILABLE => &shared.counters.unavailable,
                StatusCode::GATEWAY_TIMEOUT => &shared.counters.timeouts,
                _ => &shared.counters.bad_gateway,
            };
            bump(counter);
            error_response(status)
        }
    };
    tracing::debug!(
        network_id = %shared.network_id,
        %client,
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "metadata request"
    );
    response
}

/// One request over a fresh connection to the metadata agent; the error is the status the
/// client gets.
async fn forward(
    req: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<Upstream>, StatusCode> {
    let t = shared.timeouts;
    let (mut sender, conn) = connect_upstream(shared).await?;
    // The connection is driven by this request's own task: while the answer's head is awaited
    // here, then by the answer's body as the client takes it. No task per request, no hand-off
    // between threads.
    let mut conn = Some(conn);
    let mut send = std::pin::pin!(sender.send_request(req));
    let head = std::future::poll_fn(|cx| {
        drive(&mut conn, cx);
        send.as_mut().poll(cx)
    });
    match tokio::time::timeout(t.server, head).await {
        Ok(Ok(resp)) => Ok(resp.map(|body| Upstream {
            body,
            conn,
            timeout: t.server,
            stalled: None,
            waiting: false,
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bad answer from the metadata agent");
            Err(StatusCode::BAD_GATEWAY)
        }
        Err(_) => {
            tracing::warn!(timeout = ?t.server, "the metadata agent did not answer in time");
            Err(StatusCode::GATEWAY_TIMEOUT)
        }
    }
}

type UpstreamConn = hyper::client::conn::http1::Connection<TokioIo<UnixStream>, Incoming>;

/// Polls the metadata agent's connection (reading its answer, writing the request body) until
/// it is done.
fn drive(conn: &mut Option<UpstreamConn>, cx: &mut std::task::Context<'_>) {
    if let Some(c) = conn.as_mut() {
        if let std::task::Poll::Ready(r) = Pin::new(c).poll(cx) {
            *conn = None;
            if let Err(e) = r {
                tracing::debug!(error = %e, "metadata agent connection ended");
            }
        }
    }
}

/// The metadata agent's answer body; polling it also drives the connection it comes from, so
/// dropping it (the client went away) closes that connection too. A metadata agent that
/// stops sending in the middle of an answer for `timeout_server` (haproxy's server-side
/// inactivity timeout) makes it fail, which cuts the client's connection: the client sees a
/// truncated answer instead of waiting forever.
pub struct Upstream {
    body: Incoming,
    conn: Option<UpstreamConn>,
    timeout: Duration,
    /// Armed at the first `Pending` after a frame (or the head).
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
}

impl hyper::body::Body for Upstream {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        drive(&mut this.conn, cx);
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                let sleep = this
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    // Timed from when the metadata agent owes us data, not while the client
                    // was slow to ask for more.
                    sleep.as_mut().reset(deadline);
                    this.waiting = true;
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    tracing::warn!(timeout = ?this.timeout, "the metadata agent stopped sending its answer");
                    this.conn = None;
                    return Poll::Ready(Some(Err("metadata agent answer stalled".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// haproxy's `retries 3` of Neutron's config: connection attempts after the first.
const RETRIES: u32 = 3;

/// Connects to the metadata agent like haproxy: each attempt within `timeout_connect`, up to
/// [`RETRIES`] more after a failure, each after haproxy's turn-around pause of
/// `min(timeout_connect, 1 s)`, so a metadata agent that is restarting is waited for briefly
/// instead of failing the request at once.
async fn connect_upstream(
    shared: &Shared,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Incoming>,
        hyper::client::conn::http1::Connection<TokioIo<UnixStream>, Incoming>,
    ),
    StatusCode,
> {
    let t = shared.timeouts;
    let mut attempt = 0;
    loop {
        let connect = async {
            let stream = UnixStream::connect(&shared.socket).await?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(io::Error::other)
        };
        let error = match tokio::time::timeout(t.connect, connect).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {:?}", t.connect),
        };
        if attempt == RETRIES {
            tracing::warn!(socket = %shared.socket.display(), %error, attempts = attempt + 1, "metadata agent unavailable");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        attempt += 1;
        tracing::debug!(socket = %shared.socket.display(), %error, attempt, "cannot reach the metadata agent; retrying");
        tokio::time::sleep(t.connect.min(Duration::from_secs(1))).await;
    }
}

/// haproxy's own error pages, so clients see what they saw from Neutron's proxies.
fn error_response(status: StatusCode) -> Response<ProxyBody> {
    let text = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            "You have sent too many requests in a given amount of time."
        }
        StatusCode::SERVICE_UNAVAILABLE => "No server is available to handle this request.",
        StatusCode::GATEWAY_TIMEOUT => "The server didn't respond in time.",
        _ => "The server returned an invalid or incomplete response.",
    };
    let body = format!(
        "<html><body><h1>{} {}</h1>\n{text}\n</body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    resp
}
