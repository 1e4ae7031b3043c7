//! One broker to connect to, with oslo's and kombu's defaults applied, and the AMQP URI lapin
//! connects with (docs/reference/oslo-messaging-rabbit.md §2.1, §10.1).

use std::fmt;

use super::options::RabbitOptions;
use super::secret::Secret;

/// Where and how to connect to one broker, every default applied.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// Hostname or IP (IPv6 without brackets).
    pub host: String,
    /// Always explicit; oslo never switches to 5671 for TLS.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// The vhost as the broker names it (`/` by default).
    pub vhost: String,
}

impl BrokerEndpoint {
    /// An AMQP URI for lapin (`amqp[s]://user:pass@host:port/<vhost>?heartbeat=..&auth_mechanism=..`).
    ///
    /// User, password and vhost are percent-encoded, so the default vhost becomes `%2F` (lapin
    /// reads `amqp://h:5672/` as the empty vhost, §10.1). The scheme is `amqps` when
    /// `ssl` is on; the port stays explicit. A `heartbeat_timeout_threshold` of 0 cannot disable
    /// heartbeats in lapin if the broker asks for them. It is a [`Secret`] because it embeds
    /// the password.
    pub fn amqp_uri(&self, opts: &RabbitOptions) -> Secret {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        Secret::new(format!(
            "{}://{}:{}@{}:{}/{}?heartbeat={}&auth_mechanism={}",
            if opts.ssl { "amqps" } else { "amqp" },
            percent_encode(&self.username),
            percent_encode(self.password.expose()),
            host,
            self.port,
            percent_encode(&self.vhost),
            opts.heartbeat_timeout_threshold
                .clamp(0, i64::from(u16::MAX)),
            opts.rabbit_login_method.lapin_name(),
        ))
    }
}

impl fmt::Debug for BrokerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerEndpoint({self})")
    }
}

impl fmt::Display for BrokerEndpoint {
    /// `user:***@host:port/vhost`: enough to find the broker in a log, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}:***@[{}]:{}/{}",
                self.username, self.host, self.port, self.vhost
            )
        } else {
            write!(
                f,
                "{}:***@{}:{}/{}",
                self.username, self.host, self.port, self.vhost
            )
        }
    }
}

/// Encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
