//! `transport_url` as oslo parses it (`TransportURL.parse`, `_transform_transport_url`;
//! docs/reference/oslo-messaging-rabbit.md §2.1), and printed with every password hidden.

use std::fmt;

use super::endpoint::BrokerEndpoint;
use super::options::{OptionError, RabbitOptions};
use super::secret::Secret;

/// The port oslo uses when a host has none, **even with `ssl = true`** (§2.1).
pub const DEFAULT_PORT: u16 = 5672;
/// kombu's fallback user and password when the URL has none.
pub const DEFAULT_CREDENTIAL: &str = "guest";
/// kombu's fallback host when the URL has no host at all (`rabbit://`).
pub const DEFAULT_HOST: &str = "localhost";

/// What is wrong with a `transport_url`. Never contains the URL itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is empty or only whitespace.
    #[error("transport_url is empty")]
    Empty,
    /// There is no `scheme:` prefix.
    #[error(
        "transport_url has no scheme; expected rabbit://[user:pass@]host[:port][,...]/[vhost]"
    )]
    MissingScheme,
    /// The scheme names a driver other than rabbit.
    #[error("transport_url scheme {0:?} is not supported; use rabbit:// (or its alias kombu://)")]
    UnsupportedScheme(String),
    /// A host entry (1-based) has credentials but no hostname.
    #[error("transport_url host #{index}: the hostname is empty")]
    EmptyHost {
        /// 1-based position in the comma-separated host list.
        index: usize,
    },
    /// A host entry (1-based) opens an IPv6 literal with `[` and never closes it.
    #[error("transport_url host #{index}: '[' of an IPv6 address is not closed by ']'")]
    UnclosedIpv6 {
        /// 1-based position in the comma-separated host list.
        index: usize,
    },
    /// A host entry's port is not a number in 0..=65535.
    #[error("transport_url host #{index}: the port is not a number between 0 and 65535")]
    InvalidPort {
        /// 1-based position in the comma-separated host list.
        index: usize,
    },
}

/// One `[user:pass@]host[:port]` entry of the URL, as oslo parses it (no defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportHost {
    /// Not percent-decoded (oslo does not decode it either). IPv6 without brackets.
    pub hostname: String,
    /// `None` when absent, empty or 0 (oslo then uses 5672).
    pub port: Option<u16>,
    /// Percent-decoded.
    pub username: Option<String>,
    /// Percent-decoded.
    pub password: Option<Secret>,
}

impl TransportHost {
    /// oslo counts a host "with credentials" only when both user and password are given.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() && self.password.is_some()
    }
}

/// A parsed `transport_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportUrl {
    /// The driver, i.e. the lower-cased scheme: `rabbit` or its alias `kombu`.
    pub driver: String,
    /// In URL order. oslo shuffles them once per connection object; that is the caller's job.
    pub hosts: Vec<TransportHost>,
    /// The path minus its leading `/`, percent-decoded; `None` when there is no path.
    /// `Some("")` and `None` both mean the broker's default vhost `/` (see [`Self::effective_vhost`]).
    pub virtual_host: Option<String>,
    /// The query as Python's `parse_qs` reads it: `+` is a space, values are percent-decoded,
    /// empty values are dropped, repeated keys are joined with `,` (first-seen order).
    pub query: Vec<(String, String)>,
}

impl TransportUrl {
    /// Parses a `transport_url` the way oslo.messaging does.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        // urlsplit strips surrounding whitespace and drops tabs and newlines anywhere.
        let cleaned: String = url
            .trim()
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        if cleaned.is_empty() {
            return Err(UrlError::Empty);
        }
        let (scheme, rest) = split_scheme(&cleaned).ok_or(UrlError::MissingScheme)?;
        let driver = scheme.to_ascii_lowercase();
        if driver != "rabbit" && driver != "kombu" {
            return Err(UrlError::UnsupportedScheme(driver));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (netloc, rest) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                after.split_at(end)
            }
            None => ("", rest),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let virtual_host = path.strip_prefix('/').map(percent_decode);

        let mut hosts = Vec::new();
        for (i, entry) in netloc.split(',').enumerate() {
            if entry.is_empty() {
                continue;
            }
            hosts.push(parse_host(entry, i + 1)?);
        }
        Ok(TransportUrl {
            driver,
            hosts,
            virtual_host,
            query: parse_query(query),
        })
    }

    /// The vhost the broker sees: kombu maps an empty or missing path to `/` (§2.1).
    pub fn effective_vhost(&self) -> &str {
        match self.virtual_host.as_deref() {
            None | Some("") => "/",
            Some(v) => v,
        }
    }

    /// True when some hosts carry credentials and others do not. oslo only logs a warning;
    /// the hosts without credentials then log in as guest.
    pub fn mixed_credentials(&self) -> bool {
        let with = self.hosts.iter().filter(|h| h.has_credentials()).count();
        with > 0 && with < self.hosts.len()
    }

    /// One endpoint per host with oslo's and kombu's defaults applied (port 5672, guest/guest,
    /// `localhost` when the URL has no host), in URL order.
    pub fn endpoints(&self) -> Vec<BrokerEndpoint> {
        let vhost = self.effective_vhost().to_string();
        if self.hosts.is_empty() {
            return vec![BrokerEndpoint {
                host: DEFAULT_HOST.to_string(),
                port: DEFAULT_PORT,
                username: DEFAULT_CREDENTIAL.to_string(),
                password: Secret::new(DEFAULT_CREDENTIAL),
                vhost,
            }];
        }
        self.hosts
            .iter()
            .map(|h| BrokerEndpoint {
                host: h.hostname.clone(),
                port: h.port.unwrap_or(DEFAULT_PORT),
                username: h
                    .username
                    .clone()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| DEFAULT_CREDENTIAL.to_string()),
                password: h
                    .password
                    .clone()
                    .filter(|p| !p.expose().is_empty())
                    .unwrap_or_else(|| Secret::new(DEFAULT_CREDENTIAL)),
                vhost: vhost.clone(),
            })
            .collect()
    }

    /// Applies the query (`?rabbit_quorum_queue=true&ssl=1`) over options read from the config
    /// files, as oslo's `ConfigOptsProxy` does. Unknown keys are an error, like in oslo.
    pub fn apply_query(&self, opts: &mut RabbitOptions) -> Result<(), OptionError> {
        for (name, value) in &self.query {
            opts.set(name, value)?;
        }
        Ok(())
    }
}

impl fmt::Display for TransportUrl {
    /// The URL with every password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.driver)?;
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if let Some(user) = &h.username {
                f.write_str(user)?;
                if h.password.is_some() {
                    f.write_str(":***")?;
                }
                f.write_str("@")?;
            }
            if h.hostname.contains(':') {
                write!(f, "[{}]", h.hostname)?;
            } else {
                f.write_str(&h.hostname)?;
            }
            if let Some(port) = h.port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(vhost) = &self.virtual_host {
            write!(f, "/{vhost}")?;
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// `scheme:` per `urlsplit`: a letter, then letters, digits, `+`, `-`, `.`.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    Some((scheme, rest))
}

/// One `[user[:pass]@]host[:port]` entry, per `TransportURL.parse` + `netutils.parse_host_port`.
fn parse_host(entry: &str, index: usize) -> Result<TransportHost, UrlError> {
    let (userinfo, hostport) = match entry.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, entry),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                Some(percent_decode(user)),
                Some(Secret::new(percent_decode(pass))),
            ),
            None => (Some(percent_decode(u)), None),
        },
    };
    if hostport.is_empty() {
        return Err(UrlError::EmptyHost { index });
    }
    let (hostname, port_text) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (addr, after) = bracketed
            .split_once(']')
            .ok_or(UrlError::UnclosedIpv6 { index })?;
        (addr, after.split_once(':').map(|(_, p)| p))
    } else if hostport.matches(':').count() == 1 {
        let (h, p) = hostport.split_once(':').unwrap_or((hostport, ""));
        (h, Some(p))
    } else {
        // No colon, or an unbracketed IPv6 address, which cannot carry a port.
        (hostport, None)
    };
    if hostname.is_empty() {
        return Err(UrlError::EmptyHost { index });
    }
    let port = match port_text.map(str::trim) {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => return Err(UrlError::InvalidPort { index }),
        },
    };
    Ok(TransportHost {
        hostname: hostname.to_string(),
        port,
        username,
        password,
    })
}

/// Python's `parse_qs(query)` flattened as oslo does (`','.join(values)`).
fn parse_query(query: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let name = percent_decode(&name.replace('+', " "));
        let value = percent_decode(&value.replace('+', " "));
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out
}

/// Python's `urllib.parse.unquote`: `%XX` becomes a byte, anything else stays literal, and the
/// bytes are read as UTF-8 with replacement characters (never an error).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::url::options::LoginMethod;

    fn parse(s: &str) -> TransportUrl {
        match TransportUrl::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn several_hosts_with_their_own_credentials_and_ports() {
        let u =
            parse("rabbit://user:pass@host1:5672,user2:pass2@host2:5673/vhost?heartbeat_rate=4");
        assert_eq!(u.driver, "rabbit");
        assert_eq!(u.hosts.len(), 2);
        assert_eq!(u.hosts[0].hostname, "host1");
        assert_eq!(u.hosts[0].port, Some(5672));
        assert_eq!(u.hosts[0].username.as_deref(), Some("user"));
        assert_eq!(
            u.hosts[0].password.as_ref().map(Secret::expose),
            Some("pass")
        );
        assert_eq!(u.hosts[1].hostname, "host2");
        assert_eq!(u.hosts[1].port, Some(5673));
        assert_eq!(u.hosts[1].username.as_deref(), Some("user2"));
        assert_eq!(
            u.hosts[1].password.as_ref().map(Secret::expose),
            Some("pass2")
        );
        assert_eq!(u.virtual_host.as_deref(), Some("vhost"));
        assert_eq!(
            u.query,
            vec![("heartbeat_rate".to_string(), "4".to_string())]
        );
        assert!(!u.mixed_credentials());
    }

    #[test]
    fn defaults_port_5672_and_guest_even_with_ssl() {
        let u = parse("rabbit://h1,u:p@h2/?ssl=true");
        let eps = u.endpoints();
        assert_eq!(eps[0].host, "h1");
        assert_eq!(eps[0].port, DEFAULT_PORT);
        assert_eq!(eps[0].username, "guest");
        assert_eq!(eps[0].password.expose(), "guest");
        assert_eq!(eps[1].username, "u");
        assert!(u.mixed_credentials());
        let mut opts = RabbitOptions::default();
        u.apply_query(&mut opts).expect("ssl is a valid option");
        assert!(opts.ssl);
        assert!(eps[1]
            .amqp_uri(&opts)
            .expose()
            .starts_with("amqps://u:p@h2:5672/%2F?"));
    }

    #[test]
    fn no_host_means_localhost_guest() {
        for s in ["rabbit://", "rabbit:///", "kombu://"] {
            let eps = parse(s).endpoints();
            assert_eq!(eps.len(), 1, "{s}");
            assert_eq!(
                (eps[0].host.as_str(), eps[0].port),
                (DEFAULT_HOST, DEFAULT_PORT)
            );
            assert_eq!(eps[0].vhost, "/");
        }
    }

    #[test]
    fn user_without_password_is_a_host_without_credentials() {
        let u = parse("rabbit://alice@h");
        assert_eq!(u.hosts[0].username.as_deref(), Some("alice"));
        assert!(u.hosts[0].password.is_none());
        assert!(!u.hosts[0].has_credentials());
        let ep = &u.endpoints()[0];
        assert_eq!(
            (ep.username.as_str(), ep.password.expose()),
            ("alice", "guest")
        );
    }

    #[test]
    fn vhost_rule() {
        // No path, empty path: the broker default "/". `//` and `%2F`: "/" explicitly.
        assert_eq!(parse("rabbit://h").virtual_host, None);
        assert_eq!(parse("rabbit://h").effective_vhost(), "/");
        assert_eq!(parse("rabbit://h/").virtual_host.as_deref(), Some(""));
        assert_eq!(parse("rabbit://h/").effective_vhost(), "/");
        assert_eq!(parse("rabbit://h//").effective_vhost(), "/");
        assert_eq!(parse("rabbit://h/%2F").effective_vhost(), "/");
        assert_eq!(
            parse("rabbit://h/open%20stack").effective_vhost(),
            "open stack"
        );
        assert_eq!(parse("rabbit://h/a/b?x=1#frag").effective_vhost(), "a/b");
        let opts = RabbitOptions::default();
        let uri = parse("rabbit://u:p@h/open%20stack").endpoints()[0].amqp_uri(&opts);
        assert_eq!(
            uri.expose(),
            "amqp://u:p@h:5672/open%20stack?heartbeat=60&auth_mechanism=amqplain"
        );
    }

    #[test]
    fn percent_decoding_of_credentials_but_not_hostname() {
        let u = parse("rabbit://us%40er:p%3Aa%2Fss%25@h%41st:1");
        assert_eq!(u.hosts[0].username.as_deref(), Some("us@er"));
        assert_eq!(
            u.hosts[0].password.as_ref().map(Secret::expose),
            Some("p:a/ss%")
        );
        assert_eq!(u.hosts[0].hostname, "h%41st");
        // Bad escapes stay literal, like Python's unquote.
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        // The password may contain ':' (split on the first) and '@' (split on the last).
        let u = parse("rabbit://u:a:b@c@h");
        assert_eq!(
            u.hosts[0].password.as_ref().map(Secret::expose),
            Some("a:b@c")
        );
        assert_eq!(u.hosts[0].hostname, "h");
        // Re-encoded for lapin.
        let ep = &parse("rabbit://u%20x:p%40ss@h").endpoints()[0];
        assert!(ep
            .amqp_uri(&RabbitOptions::default())
            .expose()
            .starts_with("amqp://u%20x:p%40ss@h:5672/%2F?"));
    }

    #[test]
    fn ipv6_hosts() {
        let u = parse("rabbit://u:p@[fd00::1]:5671,[::1],fe80::2/");
        assert_eq!(u.hosts[0].hostname, "fd00::1");
        assert_eq!(u.hosts[0].port, Some(5671));
        assert_eq!(u.hosts[1].hostname, "::1");
        assert_eq!(u.hosts[1].port, None);
        // Unbracketed IPv6 cannot carry a port: the whole thing is the host.
        assert_eq!(u.hosts[2].hostname, "fe80::2");
        let opts = RabbitOptions::default();
        assert!(u.endpoints()[0]
            .amqp_uri(&opts)
            .expose()
            .starts_with("amqp://u:p@[fd00::1]:5671/"));
        assert_eq!(
            TransportUrl::parse("rabbit://[::1:5672"),
            Err(UrlError::UnclosedIpv6 { index: 1 })
        );
    }

    #[test]
    fn query_follows_parse_qs() {
        let u = parse("rabbit://h/?a=1&b=&c&a=2&d=x+y%21");
        assert_eq!(
            u.query,
            vec![("a".into(), "1,2".into()), ("d".into(), "x y!".into())]
        );
    }

    #[test]
    fn query_overrides_options_and_rejects_unknown_keys() {
        let u = parse(
            "rabbit://h/?rabbit_quorum_queue=TRUE&rabbit_transient_queues_ttl=60&rabbit_qos_prefetch_count=10\
             &rabbit_login_method=PLAIN&kombu_reconnect_delay=2.5&rpc_conn_pool_size=5",
        );
        let mut opts = RabbitOptions::default();
        u.apply_query(&mut opts).expect("valid options");
        assert!(opts.rabbit_quorum_queue && opts.durable());
        assert_eq!(opts.rabbit_transient_queues_ttl, 60);
        assert_eq!(opts.rabbit_qos_prefetch_count, 10);
        assert_eq!(opts.rabbit_login_method, LoginMethod::Plain);
        assert_eq!(opts.kombu_reconnect_delay, 2.5);

        let mut opts = RabbitOptions::default();
        assert_eq!(
            parse("rabbit://h/?no_such_option=1").apply_query(&mut opts),
            Err(OptionError::Unknown("no_such_option".into()))
        );
        for bad in [
            "ssl=maybe",
            "rabbit_transient_queues_ttl=-1",
            "rabbit_retry_interval=0",
            "heartbeat_rate=x",
            "rabbit_login_method=plain",
            "kombu_reconnect_delay=5",
            "rpc_conn_pool_size=0",
        ] {
            let err =
                parse(&format!("rabbit://h/?{bad}")).apply_query(&mut RabbitOptions::default());
            assert!(
                matches!(err, Err(OptionError::Invalid { .. })),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(TransportUrl::parse("  "), Err(UrlError::Empty));
        assert_eq!(
            TransportUrl::parse("//h:5672/"),
            Err(UrlError::MissingScheme)
        );
        assert_eq!(
            TransportUrl::parse("amqp://h/"),
            Err(UrlError::UnsupportedScheme("amqp".into()))
        );
        assert_eq!(
            TransportUrl::parse("rabbit://u:p@/"),
            Err(UrlError::EmptyHost { index: 1 })
        );
        assert_eq!(
            TransportUrl::parse("rabbit://h1,h2:99999/"),
            Err(UrlError::InvalidPort { index: 2 })
        );
        assert_eq!(
            TransportUrl::parse("RABBIT://h").map(|u| u.driver),
            Ok("rabbit".into())
        );
    }

    #[test]
    fn passwords_are_never_printed() {
        let secret = "s3cr3t-P@ss";
        let url = "rabbit://neutron:s3cr3t-P%40ss@h1:5672,nova:s3cr3t-P%40ss@h2/vh";
        let u = parse(url);
        assert_eq!(
            u.hosts[0].password.as_ref().map(Secret::expose),
            Some(secret)
        );
        let eps = u.endpoints();
        let uri = eps[0].amqp_uri(&RabbitOptions::default());
        let shown = [
            format!("{u}"),
            format!("{u:?}"),
            format!("{u:#?}"),
            format!("{}", eps[0]),
            format!("{eps:?}"),
            format!("{uri}"),
            format!("{uri:?}"),
        ];
        for s in &shown {
            assert!(!s.contains("s3cr3t"), "password leaked: {s}");
        }
        assert_eq!(shown[0], "rabbit://neutron:***@h1:5672,nova:***@h2/vh");
        assert_eq!(shown[3], "neutron:***@h1:5672/vh");
        // A malformed netloc (unencoded '/' in the password) must not leak through the error.
        let err = TransportUrl::parse("rabbit://u:zq/cret@h").expect_err("port 'zq' is invalid");
        assert!(!err.to_string().contains("zq"), "{err}");
        let err = TransportUrl::parse("rabbit://u:secret99999").expect_err("port is out of range");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
