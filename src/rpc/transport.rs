//! The AMQP transport of the agent: one supervised broker connection carrying the DHCP agent's
//! RPC server (casts from neutron-server), the reply queue and the publisher for calls
//! (docs/reference/oslo-messaging-rabbit.md §2.4, §2.5, §3, §10.3).
//!
//! ```text
//! start(cfg) ──▶ supervisor task ── connect (hosts shuffled once, round-robin, kombu back-off)
//!                   │                 declare: dhcp_agent, dhcp_agent.<host>, dhcp_agent_fanout_<uuid>,
//!                   │                          reply_<uuid> (names kept across reconnects)
//!                   │                 consume ──▶ server::serve ──▶ TransportEvent::Cast
//!                   │                         ──▶ client::consume_replies ──▶ waiting RpcClient::call
//!                   └── on loss: publisher withdrawn, kombu_reconnect_delay, reconnect,
//!                                TransportEvent::Reconnected
//! ```
//!
//! Contract notes (differences from the first sketch of this API):
//! * [`RpcClient::cast_fanout`] and [`RpcClient::reply_queue`] were added.
//! * [`TransportHandle::wait_connected`] was added (tests and start-up logging use it).
//! * When no connection comes up within a call's timeout the call fails with
//!   [`RpcError::NotConnected`], not `Timeout`: nothing was sent, so nothing timed out.
//! * Dropping the [`TransportHandle`] does not stop the transport; call
//!   [`TransportHandle::shutdown`].
//!
//! [`RpcError::NotConnected`]: crate::rpc::client::RpcError::NotConnected

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::rpc::amqp::{self, AmqpError, Publisher};
use crate::rpc::client::{self, RpcClient, Shared};
use crate::rpc::oslo::{Uuid4, DHCP_AGENT_ENDPOINT};
use crate::rpc::server::{self, Dispatcher};
use crate::rpc::topology::{
    dhcp_agent_server_plan, queue_manager_suffix, reply_listener_plan, reply_queue_name,
    ListenerPlan, StreamOffset, DEFAULT_CONTROL_EXCHANGE,
};
use crate::rpc::url::{
    BrokerEndpoint, FailoverStrategy, OptionError, RabbitOptions, TransportUrl, UrlError,
};

// The events were defined here first; their old path keeps working.
pub use crate::rpc::event::TransportEvent;

/// oslo's `rpc_response_timeout` default.
pub const DEFAULT_RPC_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// oslo options of `[oslo_messaging_rabbit]` that are checked (a bad value is an error, as in
/// oslo) but have no effect here: connection pools, a deprecated FIPS switch, the removed
/// `heartbeat_in_pthread`, jitter, compression, and `direct_mandatory_flag` (replies are always
/// mandatory). The same names as `url.rs`'s list of ignored options.
const ACCEPTED_NOT_USED: &[&str] = &[
    "rpc_conn_pool_size",
    "conn_pool_min_size",
    "conn_pool_ttl",
    "ssl_enforce_fips_mode",
    "heartbeat_in_pthread",
    "kombu_reconnect_splay",
    "kombu_compression",
    "direct_mandatory_flag",
];
/// Events buffered for the agent before the RPC server stops consuming.
const EVENT_QUEUE: usize = 1024;
/// How long closing a connection may take at shutdown or after a loss.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the transport needs, validated.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// `[DEFAULT] transport_url`, parsed. Its `Display` hides passwords.
    pub url: TransportUrl,
    /// `[oslo_messaging_rabbit]`, with the URL query applied and validated.
    pub rabbit: RabbitOptions,
    /// `[DEFAULT] control_exchange` (`neutron`).
    pub control_exchange: String,
    /// `[DEFAULT] rpc_response_timeout` (60 s).
    pub rpc_response_timeout: Duration,
    /// `[DEFAULT] host`: the server name of the `dhcp_agent.<host>` queue.
    pub host: String,
}

/// A configuration error. Names the option; never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `[DEFAULT] transport_url` does not parse.
    #[error("[DEFAULT] {0}")]
    Url(#[from] UrlError),
    /// An `[oslo_messaging_rabbit]` option (from the file or the URL query) is invalid.
    #[error(transparent)]
    Rabbit(#[from] OptionError),
    /// A `[DEFAULT]` option is invalid.
    #[error("invalid value {value:?} for [DEFAULT] {option}: expected {expected}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A TLS option is unusable.
    #[error("[oslo_messaging_rabbit] {option}: {reason}")]
    Tls {
        /// The option.
        option: &'static str,
        /// What is wrong (may name the file, never its content).
        reason: String,
    },
}

impl TransportConfig {
    /// Builds the configuration from the merged config files: `[DEFAULT] transport_url`,
    /// `control_exchange`, `rpc_response_timeout`, the `[oslo_messaging_rabbit]` pairs, and the
    /// agent's host. As in oslo, the URL query overrides the section, and its unknown keys are
    /// errors; unknown keys in the section are ignored (oslo.config ignores unregistered
    /// options), with a warning.
    pub fn from_parts(
        transport_url: &str,
        control_exchange: Option<&str>,
        rpc_response_timeout: Option<&str>,
        rabbit_section: &[(String, String)],
        host: &str,
    ) -> Result<TransportConfig, TransportError> {
        let url = TransportUrl::parse(transport_url)?;
        let mut rabbit = RabbitOptions::default();
        for (name, value) in rabbit_section {
            match rabbit.set(name, value) {
                Err(OptionError::Unknown(_)) => {
                    tracing::warn!("ignoring unknown option [oslo_messaging_rabbit] {name}");
                }
                Ok(()) if ACCEPTED_NOT_USED.contains(&name.as_str()) => {
                    // Same message as the other sections' options we do not use.
                    tracing::debug!(
                        section = %"oslo_messaging_rabbit",
                        key = %name,
                        "ignoring option not used by this agent"
                    );
                }
                other => other?,
            }
        }
        url.apply_query(&mut rabbit)?;
        rabbit.validate()?;
        check_tls(&rabbit)?;

        let control_exchange = match control_exchange.map(str::trim) {
            None | Some("") => DEFAULT_CONTROL_EXCHANGE.to_string(),
            Some(e) => e.to_string(),
        };
        let rpc_response_timeout = match rpc_response_timeout.map(str::trim) {
            None | Some("") => DEFAULT_RPC_RESPONSE_TIMEOUT,
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    return Err(TransportError::Invalid {
                        option: "rpc_response_timeout",
                        value: v.to_string(),
                        expected: "an integer >= 1 (seconds)",
                    })
                }
            },
        };
        if host.trim().is_empty() {
            return Err(TransportError::Invalid {
                option: "host",
                value: host.to_string(),
                expected: "a non-empty host name",
            });
        }
        Ok(TransportConfig {
            url,
            rabbit,
            control_exchange,
            rpc_response_timeout,
            host: host.to_string(),
        })
    }
}

/// Fails early on TLS files that cannot be read (they are read again at each connection).
fn check_tls(opts: &RabbitOptions) -> Result<(), TransportError> {
    if !opts.ssl {
        return Ok(());
    }
    if opts.ssl_cert_file.is_empty() != opts.ssl_key_file.is_empty() {
        return Err(TransportError::Tls {
            option: "ssl_cert_file",
            reason: "ssl_cert_file and ssl_key_file must be set together".into(),
        });
    }
    for (option, path) in [
        ("ssl_ca_file", &opts.ssl_ca_file),
        ("ssl_cert_file", &opts.ssl_cert_file),
        ("ssl_key_file", &opts.ssl_key_file),
    ] {
        if !path.is_empty() {
            std::fs::metadata(path).map_err(|e| TransportError::Tls {
                option,
                reason: format!("{path:?}: {e}"),
            })?;
        }
    }
    if !opts.ssl_version.is_empty() {
        tracing::warn!(
            ssl_version = %opts.ssl_version,
            "[oslo_messaging_rabbit] ssl_version is ignored: TLS 1.2 or 1.3 is negotiated"
        );
    }
    Ok(())
}

/// Stops the transport; tells whether it is connected.
pub struct TransportHandle {
    stop: watch::Sender<bool>,
    connected: watch::Receiver<Option<Arc<Publisher>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl TransportHandle {
    /// True while a connection is up with every queue declared and consumed.
    pub fn is_connected(&self) -> bool {
        self.connected.borrow().is_some()
    }

    /// [`Self::is_connected`] as a probe that outlives `&self` (the status endpoint's).
    pub fn connected_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let rx = self.connected.clone();
        move || rx.borrow().is_some()
    }

    /// Waits until connected, at most `timeout`; returns [`Self::is_connected`].
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        self.is_connected()
    }

    /// Stops consuming, deletes the fanout queue (as oslo's listener does), closes the
    /// connection and waits for the supervisor to end. Pending calls fail with `NotConnected`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!("AMQP supervisor ended abnormally: {e}");
        }
    }
}

/// Starts the transport in the background (needs a tokio runtime) and returns at once. The
/// connection is retried forever; the returned client waits for it.
pub fn start(cfg: TransportConfig) -> (RpcClient, mpsc::Receiver<TransportEvent>, TransportHandle) {
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (publisher_tx, publisher_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let names = QueueNames::new(&cfg.rabbit);
    let shared = Arc::new(Shared::new(
        reply_queue_name(&names.reply_suffix),
        cfg.control_exchange.clone(),
        cfg.rabbit.clone(),
        cfg.rpc_response_timeout,
        publisher_rx.clone(),
    ));
    let supervisor = Supervisor {
        shared: Arc::clone(&shared),
        publisher: publisher_tx,
        events: events_tx,
        stop: stop_rx,
        dispatcher: Dispatcher::new(std::slice::from_ref(&DHCP_AGENT_ENDPOINT)),
        connection_name: names.connection_name,
        fanout_suffix: names.fanout_suffix,
        cfg,
    };
    let task = tokio::spawn(supervisor.run());
    (
        RpcClient::new(shared),
        events_rx,
        TransportHandle {
            stop: stop_tx,
            connected: publisher_rx,
            task,
        },
    )
}

/// The per-process names: uuid4 hex suffixes, or oslo's queue-manager names
/// (`<hostname>:<processname>:<n>`) with `use_queue_manager`.
struct QueueNames {
    reply_suffix: String,
    fanout_suffix: String,
    connection_name: String,
}

impl QueueNames {
    fn new(opts: &RabbitOptions) -> Self {
        let process = opts.processname.clone().unwrap_or_else(|| {
            std::env::args()
                .next()
                .and_then(|a| a.rsplit('/').next().map(str::to_string))
                .unwrap_or_else(|| "neutron-dhcp-agent".to_string())
        });
        let connection_name = format!(
            "{process}:{}:{}",
            std::process::id(),
            Uuid4::random().hyphenated()
        );
        if opts.use_queue_manager {
            let host = opts
                .hostname
                .clone()
                .unwrap_or_else(crate::config::system_hostname);
            QueueNames {
                fanout_suffix: queue_manager_suffix(&host, &process, 1),
                reply_suffix: queue_manager_suffix(&host, &process, 2),
                connection_name,
            }
        } else {
            QueueNames {
                reply_suffix: Uuid4::random().hex(),
                fanout_suffix: Uuid4::random().hex(),
                connection_name,
            }
        }
    }
}

/// kombu's reconnect schedule: the hosts are tried in turn without pause; after each full
/// round the pause grows from `rabbit_retry_interval` by `rabbit_retry_backoff` up to
/// `rabbit_interval_max` (1, 3, 5, ... 29, 30, 30 s with the defaults).
#[derive(Debug, Clone)]
pub struct Backoff {
    start: u64,
    step: u64,
    max: u64,
    hosts: usize,
    failures: usize,
    next: u64,
}

impl Backoff {
    /// A schedule for `hosts` brokers.
    pub fn new(opts: &RabbitOptions, hosts: usize) -> Self {
        let secs = |v: i64| u64::try_from(v).unwrap_or(0);
        let start = secs(opts.rabbit_retry_interval).max(1);
        Backoff {
            start,
            step: secs(opts.rabbit_retry_backoff),
            max: secs(opts.rabbit_interval_max).max(1),
            hosts: hosts.max(1),
            failures: 0,
            next: start,
        }
    }

    /// The pause after one more failed attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures += 1;
        if self.failures % self.hosts != 0 {
            return Duration::ZERO;
        }
        let delay = self.next.min(self.max);
        self.next = self.next.saturating_add(self.step);
        Duration::from_secs(delay)
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.next = self.start;
    }
}

/// One live connection with everything declared; its consumers run separately.
struct Session {
    conn: Arc<Connection>,
    server_channel: Channel,
    reply_channel: Channel,
    publisher: Arc<Publisher>,
}

impl Session {
    /// Best effort and bounded: deletes the fanout queue if asked (oslo does at shutdown),
    /// closes every channel, then the connection. Closing explicitly, in order, keeps lapin
    /// from racing a dropped channel's close against the connection's.
    async fn close(self, delete_fanout: Option<&str>) {
        let work = async {
            if !self.conn.status().connected() {
                return;
            }
            if let Some(queue) = delete_fanout.and_then(|q| amqp::short("queue name", q).ok()) {
                let deleted = self
                    .server_channel
                    .queue_delete(queue, QueueDeleteOptions::default())
                    .await;
                if let Err(e) = deleted {
                    tracing::debug!("cannot delete the fanout queue: {e}");
                }
            }
            for ch in [&self.server_channel, &self.reply_channel] {
                if ch.status().connected() {
                    let _ = ch.close(200, "OK".into()).await;
                }
            }
            self.publisher.close().await;
            if let Err(e) = self.conn.close(200, "OK".into()).await {
                tracing::debug!("closing the AMQP connection: {e}");
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, work).await;
    }
}

struct Supervisor {
    cfg: TransportConfig,
    shared: Arc<Shared>,
    publisher: watch::Sender<Option<Arc<Publisher>>>,
    events: mpsc::Sender<TransportEvent>,
    stop: watch::Receiver<bool>,
    dispatcher: Dispatcher,
    connection_name: String,
    fanout_suffix: String,
}

impl Supervisor {
    async fn run(mut self) {
        let (server_plan, reply_plan) = match self.plans() {
            Ok(p) => p,
            Err(e) => {
                // TransportConfig::from_parts validated the options; this cannot happen.
                tracing::error!("cannot plan the AMQP topology: {e}");
                return;
            }
        };
        let mut endpoints = self.cfg.url.endpoints();
        shuffle(&mut endpoints);
        let mut backoff = Backoff::new(&self.cfg.rabbit, endpoints.len());
        let mut next_host = 0usize;
        let mut lost = false;
        let mut attempt = 0u64;
        let mut stop = self.stop.clone();
        loop {
            let endpoint = match self.cfg.rabbit.kombu_failover_strategy {
                FailoverStrategy::RoundRobin => &endpoints[next_host % endpoints.len()],
                FailoverStrategy::Shuffle => &endpoints[random_below(endpoints.len())],
            };
            attempt += 1;
            let span = tracing::info_span!("amqp_connection", broker = %endpoint, attempt);
            let opened = tokio::select! {
                s = self.open(endpoint, &server_plan, &reply_plan).instrument(span.clone()) => s,
                () = stopped(&mut stop) => return,
            };
            let (session, server_consumers, reply_consumer) = match opened {
                Ok(s) => s,
                Err(e) => {
                    let delay = backoff.next_delay();
                    span.in_scope(|| {
                        tracing::error!(
                            "AMQP server on {endpoint} is unreachable: {e}; trying again in {delay:?}"
                        )
                    });
                    next_host += 1;
                    if !self.sleep(delay).await {
                        return;
                    }
                    continue;
                }
            };
            backoff.reset();
            span.in_scope(|| tracing::info!("connected to the AMQP server on {endpoint}"));
            self.publisher
                .send_replace(Some(Arc::clone(&session.publisher)));
            if lost {
                tokio::select! {
                    _ = self.events.send(TransportEvent::Reconnected) => {}
                    () = stopped(&mut stop) => {}
                }
            }

            let reply_timeout = secs(self.cfg.rabbit.kombu_missing_consumer_retry_timeout);
            let reason = tokio::select! {
                r = server::serve(server_consumers, &mut self.dispatcher, &self.events, &session.publisher, reply_timeout) => Some(r),
                r = client::consume_replies(reply_consumer, &self.shared) => Some(r),
                () = stopped(&mut stop) => None,
            };
            self.publisher.send_replace(None);
            let Some(reason) = reason else {
                span.in_scope(|| tracing::info!("AMQP transport shutting down"));
                // The shared stream queue is not ours to delete.
                let fanout = server_plan.consumers.last().filter(|c| !c.stream);
                session.close(fanout.map(|c| c.queue.name.as_str())).await;
                return;
            };
            span.in_scope(|| tracing::warn!("lost the AMQP connection to {endpoint}: {reason}"));
            session.close(None).await;
            lost = true;
            let delay = Duration::from_secs_f64(self.cfg.rabbit.kombu_reconnect_delay);
            if !self.sleep(delay).await {
                return;
            }
        }
    }

    fn plans(&self) -> Result<(ListenerPlan, ListenerPlan), OptionError> {
        Ok((
            dhcp_agent_server_plan(
                &self.cfg.rabbit,
                &self.cfg.control_exchange,
                &self.cfg.host,
                &self.fanout_suffix,
            )?,
            reply_listener_plan(&self.cfg.rabbit, &self.shared.reply_queue)?,
        ))
    }

    /// Connects, declares and starts every consumer: the session, the server's consumers and
    /// the reply consumer.
    async fn open(
        &self,
        endpoint: &BrokerEndpoint,
        server_plan: &ListenerPlan,
        reply_plan: &ListenerPlan,
    ) -> Result<(Session, Vec<Consumer>, Consumer), AmqpError> {
        let conn =
            Arc::new(amqp::connect(endpoint, &self.cfg.rabbit, &self.connection_name).await?);
        let (reply_channel, mut reply) =
            amqp::start_consumers(&conn, reply_plan, &StreamOffset::Last).await?;
        let (server_channel, server_consumers) =
            amqp::start_consumers(&conn, server_plan, &self.dispatcher.stream_offset).await?;
        let reply_consumer = reply.pop().ok_or(AmqpError::EmptyPlan)?;
        let session = Session {
            publisher: Arc::new(Publisher::new(Arc::clone(&conn))),
            conn,
            server_channel,
            reply_channel,
        };
        Ok((session, server_consumers, reply_consumer))
    }

    /// Sleeps `delay`; false when asked to stop meanwhile.
    async fn sleep(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stopped(&mut self.stop) => false,
        }
    }
}

/// Resolves when a stop was requested; never if the handle was dropped without one.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn secs(v: i64) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}

/// A random number below `n` (n > 0); not cryptographic.
fn random_below(n: usize) -> usize {
    rand::random_range(0..n.max(1))
}

/// Fisher-Yates: oslo shuffles the host list once per connection object.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, random_below(i + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_kombu_with_one_host() {
        let mut b = Backoff::new(&RabbitOptions::default(), 1);
        let got: Vec<u64> = (0..18).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(
            got,
            vec![1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 30, 30, 30]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_pauses_only_after_a_full_round_of_hosts() {
        let mut b = Backoff::new(&RabbitOptions::default(), 3);
        let got: Vec<u64> = (0..9).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, vec![0, 0, 1, 0, 0, 3, 0, 0, 5]);
    }

    #[test]
    fn shuffle_keeps_every_host() {
        let mut v: Vec<u32> = (0..20).collect();
        shuffle(&mut v);
        v.sort_unstable();
        assert_eq!(v, (0..20).collect::<Vec<_>>());
    }

    fn parts(
        url: &str,
        timeout: Option<&str>,
        section: &[(&str, &str)],
    ) -> Result<TransportConfig, TransportError> {
        let section: Vec<(String, String)> = section
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TransportConfig::from_parts(url, None, timeout, &section, "host1")
    }

    #[test]
    fn from_parts_defaults_and_overrides() {
        let cfg = match parts(
            "rabbit://u:secret@h1:5672,u:secret@h2/vh?heartbeat_timeout_threshold=30",
            None,
            &[
                ("heartbeat_timeout_threshold", "10"),
                ("amqp_durable_queues", "true"),
                ("some_future_option", "x"),
            ],
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.control_exchange, "neutron");
        assert_eq!(cfg.rpc_response_timeout, Duration::from_secs(60));
        assert_eq!(
            cfg.rabbit.heartbeat_timeout_threshold, 30,
            "the URL query wins"
        );
        assert!(cfg.rabbit.amqp_durable_queues);
        assert_eq!(cfg.url.endpoints().len(), 2);
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn from_parts_errors_name_the_option_and_hide_passwords() {
        let err = |r: Result<TransportConfig, TransportError>| match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let e = err(parts("rabbit://u:secret@h/?bogus=1", None, &[]));
        assert!(e.contains("bogus") && !e.contains("secret"), "{e}");
        let e = err(parts("rabbit://u:secret@h:99999/", None, &[]));
        assert!(e.contains("transport_url") && !e.contains("secret"), "{e}");
        let e = err(parts("rabbit://h/", Some("soon"), &[]));
        assert!(e.contains("rpc_response_timeout"), "{e}");
        let e = err(parts(
            "rabbit://h/",
            None,
            &[("rabbit_retry_interval", "x")],
        ));
        assert!(e.contains("rabbit_retry_interval"), "{e}");
        let e = err(parts(
            "rabbit://h/?ssl=1",
            None,
            &[("ssl_ca_file", "/nonexistent/ca.pem")],
        ));
        assert!(e.contains("ssl_ca_file"), "{e}");
    }
}
