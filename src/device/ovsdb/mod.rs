//! A small native OVSDB client: JSON-RPC 1.0 over a stream socket (RFC 7047), enough to read
//! and change a few rows of the `Open_vSwitch` database — no `ovs-vsctl` subprocesses.
//!
//! - [`Remote`] parses Neutron's `[OVS] ovsdb_connection` (`tcp:HOST:PORT` or `unix:PATH`).
//! - [`Ovsdb`] is the shared, cheap-to-clone handle: it opens one short [`Session`] per plug or
//!   unplug and remembers failures, so while ovsdb-server is unreachable or too slow, callers
//!   fail fast with a clear error and attempts are spaced out with exponential back-off instead
//!   of every caller waiting out its own timeout.
//! - [`Session`] sends one request at a time and reads the reply out of the byte stream; it
//!   answers the server's `echo` requests (RFC 7047 §4.1.11) while it waits and ignores
//!   notifications. Every call is bounded by `ovsdb_timeout`: a silent server is an error,
//!   never a hang.
//!
//! The `Open_vSwitch` schema operations the interface driver needs live in [`vswitch`].

pub mod vswitch;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpStream, UnixStream};
use tracing::{debug, info, warn};

/// The database of ovs-vswitchd.
pub const DATABASE: &str = "Open_vSwitch";

/// First pause after a failure; doubled on every further failure up to [`BACKOFF_MAX`].
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A reply larger than this is not something our few selects can produce.
const MAX_MESSAGE: usize = 16 << 20;

/// Where ovsdb-server listens (`[OVS] ovsdb_connection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl FromStr for Remote {
    type Err = OvsdbError;

    /// `tcp:HOST:PORT` (an IPv6 host in brackets: `tcp:[::1]:6640`) or `unix:PATH`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let invalid = |reason: &'static str| OvsdbError::InvalidRemote {
            remote: s.to_owned(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            return Ok(Remote::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected tcp:HOST:PORT"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(invalid("empty host"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("port is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(invalid("port is not a number from 1 to 65535"));
            }
            return Ok(Remote::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        if s.starts_with("ssl:") {
            return Err(invalid(
                "ssl: connections are not supported; use tcp: or unix:",
            ));
        }
        Err(invalid("expected tcp:HOST:PORT or unix:PATH"))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Remote::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    #[error("invalid ovsdb_connection {remote:?}: {reason}")]
    InvalidRemote {
        remote: String,
        reason: &'static str,
    },
    #[error("cannot connect to ovsdb-server at {remote}: {source}")]
    Connect {
        remote: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "ovsdb-server at {remote} is unavailable (last error: {last_error}); \
         next attempt in {retry_in:.1?}"
    )]
    BackingOff {
        remote: String,
        last_error: String,
        retry_in: Duration,
    },
    #[error("ovsdb-server at {remote} did not answer {what} within {timeout:?}")]
    Timeout {
        remote: String,
        what: String,
        timeout: Duration,
    },
    #[error("ovsdb-server at {remote}: connection failed during {what}: {source}")]
    Io {
        remote: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("ovsdb-server at {remote}: protocol error during {what}: {reason}")]
    Protocol {
        remote: String,
        what: String,
        reason: String,
    },
    #[error("ovsdb-server at {remote}: {what} failed: {error}{}", details_suffix(.details))]
    Failed {
        remote: String,
        what: String,
        error: String,
        details: String,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

impl OvsdbError {
    /// The server could not be reached or did not answer in time (as opposed to a request it
    /// answered with an error): worth backing off for.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OvsdbError::Connect { .. }
                | OvsdbError::BackingOff { .. }
                | OvsdbError::Timeout { .. }
                | OvsdbError::Io { .. }
        )
    }
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// Shared handle to one ovsdb-server: its address, the per-call timeout and the back-off
/// state. Clones share the back-off state.
#[derive(Clone, Debug)]
pub struct Ovsdb {
    remote: Remote,
    timeout: Duration,
    backoff: Arc<Mutex<Backoff>>,
}

impl Ovsdb {
    pub fn new(remote: Remote, timeout: Duration) -> Ovsdb {
        Ovsdb {
            remote,
            timeout,
            backoff: Arc::new(Mutex::new(Backoff::default())),
        }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session. Fails at once while a previous failure's back-off runs; otherwise one
    /// connection attempt bounded by the timeout.
    pub async fn session(&self) -> Result<Session, OvsdbError> {
        {
            let st = self.state();
            if let Some(at) = st.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(OvsdbError::BackingOff {
                        remote: self.remote.to_string(),
                        last_error: st.last_error.clone(),
                        retry_in: at - now,
                    });
                }
            }
        }
        let res = tokio::time::timeout(self.timeout, Stream::connect(&self.remote)).await;
        let stream = match res {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                let e = OvsdbError::Connect {
                    remote: self.remote.to_string(),
                    source,
                };
                self.failed(&e);
                return Err(e);
            }
            Err(_) => {
                let e = OvsdbError::Timeout {
                    remote: self.remote.to_string(),
                    what: "the connection".into(),
                    timeout: self.timeout,
                };
                self.failed(&e);
                return Err(e);
            }
        };
        debug!(remote = %self.remote, "connected to ovsdb-server");
        Ok(Session {
            db: self.clone(),
            stream,
            buf: Vec::new(),
            next_id: 1,
            broken: false,
        })
    }

    fn failed(&self, e: &OvsdbError) {
        let mut st = self.state();
        st.failures = st.failures.saturating_add(1);
        let delay = BACKOFF_INITIAL
            .saturating_mul(1u32 << (st.failures - 1).min(16))
            .min(BACKOFF_MAX);
        st.retry_at = Some(Instant::now() + delay);
        st.last_error = e.to_string();
        warn!(remote = %self.remote, error = %e, retry_in = ?delay, "ovsdb-server unavailable; backing off");
    }

    fn succeeded(&self) {
        let mut st = self.state();
        if st.failures > 0 {
            info!(remote = %self.remote, "ovsdb-server reachable again");
        }
        *st = Backoff::default();
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn connect(remote: &Remote) -> io::Result<Stream> {
        match remote {
            Remote::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Remote::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let res = match self {
                Stream::Tcp(s) => {
                    s.writable().await?;
                    s.try_write(data)
                }
                Stream::Unix(s) => {
                    s.writable().await?;
                    s.try_write(data)
                }
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let res = match self {
                Stream::Tcp(s) => {
                    s.readable().await?;
                    s.try_read(buf)
                }
                Stream::Unix(s) => {
                    s.readable().await?;
                    s.try_read(buf)
                }
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// One connection to ovsdb-server, used for the few requests of one operation and then
/// dropped. After an I/O error or a timeout it refuses further requests.
pub struct Session {
    db: Ovsdb,
    stream: Stream,
    /// Bytes received but not yet parsed (at most one partial JSON value after a parse).
    buf: Vec<u8>,
    next_id: u64,
    broken: bool,
}

impl Session {
    pub fn remote(&self) -> &Remote {
        &self.db.remote
    }

    /// `transact` on the `Open_vSwitch` database; returns one result per operation. An
    /// operation error (or the commit error the server appends after the operations) is an
    /// [`OvsdbError::Failed`] naming `what`.
    pub async fn transact(
        &mut self,
        what: &str,
        ops: Vec<Value>,
    ) -> Result<Vec<Value>, OvsdbError> {
        let n_ops = ops.len();
        let mut params = Vec::with_capacity(n_ops + 1);
        params.push(Value::String(DATABASE.into()));
        params.extend(ops);
        let result = self.call(what, "transact", Value::Array(params)).await?;
        let Value::Array(results) = result else {
            return Err(self.protocol(what, "transact result is not an array"));
        };
        for (i, r) in results.iter().enumerate() {
            if let Some(err) = r.get("error").filter(|e| !e.is_null()) {
                let details = r
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let place = if i < n_ops {
                    format!("operation {} of {n_ops}", i + 1)
                } else {
                    "commit".to_owned()
                };
                return Err(OvsdbError::Failed {
                    remote: self.db.remote.to_string(),
                    what: what.to_owned(),
                    error: format!("{} in {place}", err.as_str().unwrap_or("error")),
                    details,
                });
            }
        }
        if results.len() < n_ops {
            return Err(self.protocol(what, "fewer results than operations"));
        }
        Ok(results)
    }

    /// One JSON-RPC request and its response, bounded by the timeout.
    pub async fn call(
        &mut self,
        what: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, OvsdbError> {
        if self.broken {
            return Err(OvsdbError::Io {
                remote: self.db.remote.to_string(),
                what: what.to_owned(),
                source: io::Error::new(io::ErrorKind::NotConnected, "session already failed"),
            });
        }
        let timeout = self.db.timeout;
        let res = tokio::time::timeout(timeout, self.call_inner(what, method, params)).await;
        let res = match res {
            Ok(r) => r,
            Err(_) => Err(OvsdbError::Timeout {
                remote: self.db.remote.to_string(),
                what: what.to_owned(),
                timeout,
            }),
        };
        match &res {
            Ok(_) => self.db.succeeded(),
            Err(e) if e.is_unavailable() => {
                self.broken = true;
                self.db.failed(e);
            }
            Err(OvsdbError::Protocol { .. }) => self.broken = true,
            Err(_) => {}
        }
        res
    }

    async fn call_inner(
        &mut self,
        what: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, OvsdbError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"method": method, "params": params, "id": id});
        self.send(what, &request).await?;
        loop {
            let msg = self.next_message(what).await?;
            if let Some(m) = msg.get("method").and_then(Value::as_str) {
                // A request or notification from the server.
                let req_id = msg.get("id").cloned().unwrap_or(Value::Null);
                if m == "echo" && !req_id.is_null() {
                    let params = msg.get("params").cloned().unwrap_or_else(|| json!([]));
                    let reply = json!({"result": params, "error": null, "id": req_id});
                    self.send(what, &reply).await?;
                } else {
                    debug!(remote = %self.db.remote, method = m, "ignoring ovsdb-server message");
                }
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                debug!(remote = %self.db.remote, "ignoring reply to another request");
                continue;
            }
            if let Some(err) = msg.get("error").filter(|e| !e.is_null()) {
                let (error, details) = match err {
                    Value::String(s) => (s.clone(), String::new()),
                    other => (
                        other
                            .get("error")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| other.to_string()),
                        other
                            .get("details")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                };
                return Err(OvsdbError::Failed {
                    remote: self.db.remote.to_string(),
                    what: what.to_owned(),
                    error,
                    details,
                });
            }
            return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    async fn send(&mut self, what: &str, msg: &Value) -> Result<(), OvsdbError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| self.protocol(what, &e.to_string()))?;
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|source| OvsdbError::Io {
                remote: self.db.remote.to_string(),
                what: what.to_owned(),
                source,
            })
    }

    /// The next complete JSON value of the stream, reading as much as it takes.
    async fn next_message(&mut self, what: &str) -> Result<Value, OvsdbError> {
        loop {
            if let Some(v) = self.parse_buffered(what)? {
                return Ok(v);
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(self.protocol(what, "message too large"));
            }
            let mut chunk = [0u8; 8192];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|source| OvsdbError::Io {
                    remote: self.db.remote.to_string(),
                    what: what.to_owned(),
                    source,
                })?;
            if n == 0 {
                return Err(OvsdbError::Io {
                    remote: self.db.remote.to_string(),
                    what: what.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "ovsdb-server closed the connection",
                    ),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Takes one complete value off the front of the buffer, if there is one.
    fn parse_buffered(&mut self, what: &str) -> Result<Option<Value>, OvsdbError> {
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match values.next() {
            None => {
                // Only whitespace so far.
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(v)) => {
                let used = values.byte_offset();
                self.buf.drain(..used);
                if !v.is_object() {
                    return Err(self.protocol(what, "message is not a JSON object"));
                }
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(self.protocol(what, &format!("invalid JSON: {e}"))),
        }
    }

    fn protocol(&self, what: &str, reason: &str) -> OvsdbError {
        OvsdbError::Protocol {
            remote: self.db.remote.to_string(),
            what: what.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OVSDB values (RFC 7047 §5.1)
// ---------------------------------------------------------------------------------------------

/// `["uuid", "<uuid>"]` → the uuid.
pub fn as_uuid(v: &Value) -> Option<&str> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// `["uuid", u]` for a where clause or a reference.
pub fn uuid_atom(u: &str) -> Value {
    json!(["uuid", u])
}

/// The elements of a set column: `["set", [..]]`, or a single atom for a one-element set.
pub fn set_elems(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ => vec![v],
    }
}

/// An optional integer column (`min: 0, max: 1`): the integer, or `None` for the empty set.
pub fn opt_int(v: &Value) -> Option<i64> {
    set_elems(v).first().and_then(|x| x.as_i64())
}

/// A string-to-string map column.
pub fn as_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, Value::Array(pairs)]) = v.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for p in pairs {
                if let Some([Value::String(k), Value::String(val)]) =
                    p.as_array().map(Vec::as_slice)
                {
                    out.insert(k.clone(), val.clone());
                }
            }
        }
    }
    out
}

/// A string-to-string map value.
pub fn map_value<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// A set value of strings.
pub fn string_set<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    let items: Vec<Value> = items.into_iter().map(|s| json!(s)).collect();
    json!(["set", items])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[test]
    fn remotes_parse_and_display() {
        assert_eq!(
            "tcp:127.0.0.1:6640".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "127.0.0.1".into(),
                port: 6640
            }
        );
        let v6: Remote = "tcp:[::1]:6641".parse().unwrap();
        assert_eq!(
            v6,
            Remote::Tcp {
                host: "::1".into(),
                port: 6641
            }
        );
        assert_eq!(v6.to_string(), "tcp:[::1]:6641");
        assert_eq!(
            " unix:/run/openvswitch/db.sock ".parse::<Remote>().unwrap(),
            Remote::Unix("/run/openvswitch/db.sock".into())
        );
        assert_eq!(
            "unix:/x/db.sock".parse::<Remote>().unwrap().to_string(),
            "unix:/x/db.sock"
        );
        for bad in [
            "",
            "tcp:",
            "tcp:1.2.3.4",
            "tcp::6640",
            "tcp:h:0",
            "tcp:h:99999",
            "unix:",
            "ssl:h:6640",
            "ptcp:6640",
        ] {
            let e = bad.parse::<Remote>().unwrap_err().to_string();
            assert!(e.contains("invalid ovsdb_connection"), "{bad}: {e}");
        }
        assert!("ssl:h:1"
            .parse::<Remote>()
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn values() {
        let u = json!(["uuid", "6f1d7d65-4c4a-4a8f-8a2e-3e0c1f1b2c3d"]);
        assert_eq!(as_uuid(&u), Some("6f1d7d65-4c4a-4a8f-8a2e-3e0c1f1b2c3d"));
        assert_eq!(as_uuid(&json!(["named-uuid", "x"])), None);
        assert_eq!(set_elems(&json!(["set", [1, 2]])).len(), 2);
        assert_eq!(set_elems(&u).len(), 1);
        assert_eq!(opt_int(&json!(["set", []])), None);
        assert_eq!(opt_int(&json!(4095)), Some(4095));
        let m = as_map(&json!([
            "map",
            [["iface-id", "p1"], ["attached-mac", "fa:16:3e:00:00:01"]]
        ]));
        assert_eq!(m.get("iface-id").map(String::as_str), Some("p1"));
        assert_eq!(m.len(), 2);
        assert!(as_map(&json!(["set", []])).is_empty());
        assert_eq!(map_value([("a", "1")]), json!(["map", [["a", "1"]]]));
        assert_eq!(string_set(["a", "b"]), json!(["set", ["a", "b"]]));
    }

    /// A scripted server on a unix socket: for every request it receives, calls `answer`
    /// with the request and writes back whatever chunks it returns.
    async fn fake_server<F>(
        answer: F,
    ) -> (
        tempfile::TempDir,
        Remote,
        tokio::task::JoinHandle<Vec<Value>>,
    )
    where
        F: Fn(&Value) -> Vec<Vec<u8>> + Send + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let stream = Stream::Unix(sock);
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return seen,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                    let Some(Ok(v)) = it.next() else { break };
                    let used = it.byte_offset();
                    buf.drain(..used);
                    for c in answer(&v) {
                        stream.write_all(&c).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    seen.push(v);
                }
            }
        });
        (dir, Remote::Unix(path), task)
    }

    #[tokio::test]
    async fn transact_reads_fragmented_replies_and_answers_echo() {
        let (_dir, remote, server) = fake_server(|req| {
            if req.get("method").and_then(Value::as_str) == Some("transact") {
                let id = req["id"].clone();
                // An echo request first, then the reply split in three pieces.
                let reply = serde_json::to_vec(&json!({
                    "id": id, "error": null,
                    "result": [{"rows": [{"name": "br-int"}]}, {"count": 1}]
                }))
                .unwrap();
                let (a, rest) = reply.split_at(7);
                let (b, c) = rest.split_at(rest.len() / 2);
                vec![
                    br#"{"id":"echo","method":"echo","params":[]}  "#.to_vec(),
                    br#"{"id":null,"method":"update","params":[null,{}]}"#.to_vec(),
                    a.to_vec(),
                    b.to_vec(),
                    c.to_vec(),
                ]
            } else {
                vec![]
            }
        })
        .await;
        let db = Ovsdb::new(remote, Duration::from_secs(5));
        let mut s = db.session().await.unwrap();
        let res = s
            .transact(
                "test",
                vec![
                    json!({"op": "select", "table": "Bridge", "where": []}),
                    json!({"op":"comment","comment":"x"}),
                ],
            )
            .await
            .unwrap();
        assert_eq!(res[0]["rows"][0]["name"], "br-int");
        drop(s);
        let seen = server.await.unwrap();
        assert_eq!(seen[0]["method"], "transact");
        assert_eq!(seen[0]["params"][0], DATABASE);
        assert_eq!(seen[1], json!({"result": [], "error": null, "id": "echo"}));
    }

    #[tokio::test]
    async fn operation_and_commit_errors_name_the_operation() {
        let (_dir, remote, _server) = fake_server(|req| {
            let id = req["id"].clone();
            let body = json!({"id": id, "error": null, "result": [
                {"uuid": ["uuid", "a"]}, {"count": 0},
                {"error": "constraint violation", "details": "Transaction causes multiple rows in \"Port\" table to have identical values"}
            ]});
            vec![serde_json::to_vec(&body).unwrap()]
        })
        .await;
        let db = Ovsdb::new(remote, Duration::from_secs(5));
        let mut s = db.session().await.unwrap();
        let e = s
            .transact("add port tapx", vec![json!({}), json!({})])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("add port tapx failed: constraint violation in commit"),
            "{e}"
        );
        assert!(e.contains("identical values"), "{e}");
        // An answered error is not an outage: no back-off.
        assert!(db.session().await.is_ok());
    }

    #[tokio::test]
    async fn unreachable_server_fails_fast_then_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::Unix(dir.path().join("missing.sock"));
        let db = Ovsdb::new(remote, Duration::from_secs(5));
        let started = Instant::now();
        let e = db.session().await.err().unwrap();
        assert!(matches!(e, OvsdbError::Connect { .. }), "{e}");
        assert!(e.to_string().contains("missing.sock"), "{e}");
        let e = db.session().await.err().unwrap();
        assert!(matches!(e, OvsdbError::BackingOff { .. }), "{e}");
        assert!(e.to_string().contains("next attempt in"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // Clones share the state.
        assert!(db.clone().session().await.is_err());
    }

    #[tokio::test]
    async fn silent_server_times_out_instead_of_hanging() {
        let (_dir, remote, _server) = fake_server(|_| vec![]).await;
        let db = Ovsdb::new(remote, Duration::from_millis(300));
        let mut s = db.session().await.unwrap();
        let started = Instant::now();
        let e = s.transact("list bridges", vec![]).await.unwrap_err();
        assert!(matches!(e, OvsdbError::Timeout { .. }), "{e}");
        assert!(
            e.to_string().contains("did not answer list bridges within"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(s.transact("again", vec![]).await.is_err());
        assert!(matches!(
            db.session().await.err().unwrap(),
            OvsdbError::BackingOff { .. }
        ));
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let (_dir, remote, _server) = fake_server(|_| vec![b"[1,2,3] ".to_vec()]).await;
        let db = Ovsdb::new(remote, Duration::from_secs(5));
        let mut s = db.session().await.unwrap();
        let e = s.transact("x", vec![]).await.unwrap_err();
        assert!(matches!(e, OvsdbError::Protocol { .. }), "{e}");
        let (_dir2, remote, _server) = fake_server(|_| vec![b"{\"id\": 1, !!".to_vec()]).await;
        let db = Ovsdb::new(remote, Duration::from_secs(5));
        let e = db
            .session()
            .await
            .unwrap()
            .transact("x", vec![])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
    }
}
