//! The `[oslo_messaging_rabbit]` options this agent reads, with oslo.config's conversions and
//! the combinations oslo refuses at start-up (docs/reference/oslo-messaging-rabbit.md §2.3–§2.5,
//! §3.1).

/// What is wrong with an `[oslo_messaging_rabbit]` option or option combination.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    /// oslo refuses unknown query keys (`NoSuchOptError`).
    #[error("unknown [oslo_messaging_rabbit] option {0:?}")]
    Unknown(String),
    /// The value does not convert to the option's type or is out of range.
    #[error("invalid value {value:?} for [oslo_messaging_rabbit] {option}: expected {expected}")]
    Invalid {
        /// Option name.
        option: String,
        /// The rejected value.
        value: String,
        /// What the option accepts.
        expected: &'static str,
    },
    /// `_get_queue_arguments` raises on this combination.
    #[error("rabbit_quorum_queue and rabbit_ha_queues are both enabled; a queue is quorum or HA (mirrored), not both")]
    QuorumAndHa,
    /// `Connection.__init__` raises on this combination.
    #[error("rabbit_stream_fanout needs rabbit_qos_prefetch_count greater than 0")]
    StreamNeedsPrefetch,
    /// `Connection.__init__` raises on this combination.
    #[error("rabbit_stream_fanout needs rabbit_transient_quorum_queue = true")]
    StreamNeedsTransientQuorum,
}

/// `rabbit_login_method`: the SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// `PLAIN`
    Plain,
    /// `AMQPLAIN` (oslo's default)
    AmqPlain,
    /// `EXTERNAL` (client certificate)
    External,
    /// `RABBIT-CR-DEMO`
    RabbitCrDemo,
}

impl LoginMethod {
    /// The value of lapin's `auth_mechanism` URI parameter.
    pub fn lapin_name(self) -> &'static str {
        match self {
            LoginMethod::Plain => "plain",
            LoginMethod::AmqPlain => "amqplain",
            LoginMethod::External => "external",
            LoginMethod::RabbitCrDemo => "rabbit-cr-demo",
        }
    }
}

/// `kombu_failover_strategy`: how the next broker is picked after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverStrategy {
    /// Next host in (once-shuffled) order.
    RoundRobin,
    /// A random host each time.
    Shuffle,
}

/// The `[oslo_messaging_rabbit]` options this agent honours, with oslo's defaults.
///
/// Names and types are oslo's, so the same `neutron.conf` works. Options that only tune the
/// Python implementation are accepted (and type-checked) but not stored; see [`Self::set`].
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitOptions {
    /// Topic queues and the control exchange are durable (also forced by quorum queues).
    pub amqp_durable_queues: bool,
    /// Topic queues and the control exchange are auto-delete.
    pub amqp_auto_delete: bool,
    /// Connect with TLS (the port stays 5672 unless the URL says otherwise).
    pub ssl: bool,
    /// `TLSv1`, `TLSv1_2`, ...; empty means the library default.
    pub ssl_version: String,
    /// Client key (PEM) for mutual TLS.
    pub ssl_key_file: String,
    /// Client certificate (PEM) for mutual TLS.
    pub ssl_cert_file: String,
    /// CA bundle; when set the broker certificate (and, since oslo 18.1, its name) is checked.
    pub ssl_ca_file: String,
    /// Deprecated in oslo (always on); kept so configs that set it still load.
    pub ssl_enforce_hostname_verification: bool,
    /// Extra delay (s) before reconnecting after a recoverable error.
    pub kombu_reconnect_delay: f64,
    /// How long (s) a reply is retried while the caller's reply queue is missing.
    pub kombu_missing_consumer_retry_timeout: i64,
    /// Broker selection after a failure.
    pub kombu_failover_strategy: FailoverStrategy,
    /// SASL mechanism.
    pub rabbit_login_method: LoginMethod,
    /// First reconnect interval (s).
    pub rabbit_retry_interval: i64,
    /// Seconds added to the interval per attempt.
    pub rabbit_retry_backoff: i64,
    /// Cap of the reconnect interval (s).
    pub rabbit_interval_max: i64,
    /// Legacy `x-ha-policy: all` queue argument.
    pub rabbit_ha_queues: bool,
    /// Quorum topic queues (implies durable).
    pub rabbit_quorum_queue: bool,
    /// Quorum reply and fanout queues (and durable fanout exchange).
    pub rabbit_transient_quorum_queue: bool,
    /// `x-delivery-limit` for quorum queues; 0 leaves it out.
    pub rabbit_quorum_delivery_limit: i64,
    /// `x-max-in-memory-length` for quorum queues; 0 leaves it out.
    pub rabbit_quorum_max_memory_length: i64,
    /// `x-max-in-memory-bytes` for quorum queues; 0 leaves it out.
    pub rabbit_quorum_max_memory_bytes: i64,
    /// `x-expires` (s) of reply and fanout queues, or stream `x-max-age`; 0 leaves it out.
    pub rabbit_transient_queues_ttl: i64,
    /// `basic.qos` prefetch on listening channels; 0 sends no `basic.qos`.
    pub rabbit_qos_prefetch_count: i64,
    /// Requested heartbeat (s); 0 asks for none.
    pub heartbeat_timeout_threshold: i64,
    /// Heartbeat checks per threshold.
    pub heartbeat_rate: i64,
    /// Consumer argument `x-cancel-on-ha-failover: true`.
    pub enable_cancel_on_failover: bool,
    /// Stable `<hostname>:<processname>:<n>` names instead of uuids for reply/fanout queues.
    pub use_queue_manager: bool,
    /// Queue-manager hostname; `None` means the system hostname.
    pub hostname: Option<String>,
    /// Queue-manager process name; `None` means the program name.
    pub processname: Option<String>,
    /// One shared stream queue `<topic>_fanout` instead of per-process fanout queues.
    pub rabbit_stream_fanout: bool,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        RabbitOptions {
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            ssl: false,
            ssl_version: String::new(),
            ssl_key_file: String::new(),
            ssl_cert_file: String::new(),
            ssl_ca_file: String::new(),
            ssl_enforce_hostname_verification: true,
            kombu_reconnect_delay: 1.0,
            kombu_missing_consumer_retry_timeout: 60,
            kombu_failover_strategy: FailoverStrategy::RoundRobin,
            rabbit_login_method: LoginMethod::AmqPlain,
            rabbit_retry_interval: 1,
            rabbit_retry_backoff: 2,
            rabbit_interval_max: 30,
            rabbit_ha_queues: false,
            rabbit_quorum_queue: false,
            rabbit_transient_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: 0,
            heartbeat_timeout_threshold: 60,
            heartbeat_rate: 3,
            enable_cancel_on_failover: false,
            use_queue_manager: false,
            hostname: None,
            processname: None,
            rabbit_stream_fanout: false,
        }
    }
}

/// Valid oslo options that only tune the Python implementation: accepted, type-checked, unused.
const IGNORED_OPTIONS: &[(&str, Kind)] = &[
    ("rpc_conn_pool_size", Kind::Int { min: Some(1) }),
    ("conn_pool_min_size", Kind::Int { min: None }),
    ("conn_pool_ttl", Kind::Int { min: None }),
    ("ssl_enforce_fips_mode", Kind::Bool),
    ("heartbeat_in_pthread", Kind::Bool),
    (
        "kombu_reconnect_splay",
        Kind::Float {
            min: 0.0,
            max: f64::MAX,
        },
    ),
    // Our publisher never compresses; what peers send is their setting, not ours.
    ("kombu_compression", Kind::Str),
    ("direct_mandatory_flag", Kind::Bool),
];

/// oslo.config value types.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int { min: Option<i64> },
    Float { min: f64, max: f64 },
    Str,
}

impl RabbitOptions {
    /// Sets one option from its string form (config file or URL query), with oslo.config's
    /// conversions: booleans are `true/1/on/yes` or `false/0/off/no` (any case), integers and
    /// floats are trimmed, and range limits and choices are checked.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), OptionError> {
        let invalid = |expected: &'static str| OptionError::Invalid {
            option: name.to_string(),
            value: value.to_string(),
            expected,
        };
        let b = || {
            parse_bool(value).ok_or_else(|| invalid("a boolean (true/false, 1/0, yes/no, on/off)"))
        };
        let int = |min: Option<i64>| -> Result<i64, OptionError> {
            let n = value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("an integer"))?;
            match min {
                Some(m) if n < m => Err(invalid(if m == 0 {
                    "an integer >= 0"
                } else {
                    "an integer >= 1"
                })),
                _ => Ok(n),
            }
        };
        match name {
            "amqp_durable_queues" => self.amqp_durable_queues = b()?,
            "amqp_auto_delete" => self.amqp_auto_delete = b()?,
            "ssl" => self.ssl = b()?,
            "ssl_version" => self.ssl_version = value.to_string(),
            "ssl_key_file" => self.ssl_key_file = value.to_string(),
            "ssl_cert_file" => self.ssl_cert_file = value.to_string(),
            "ssl_ca_file" => self.ssl_ca_file = value.to_string(),
            "ssl_enforce_hostname_verification" => self.ssl_enforce_hostname_verification = b()?,
            "kombu_reconnect_delay" => {
                self.kombu_reconnect_delay = parse_float(value, 0.0, 4.5)
                    .ok_or_else(|| invalid("a number between 0 and 4.5"))?
            }
            "kombu_missing_consumer_retry_timeout" | "kombu_reconnect_timeout" => {
                self.kombu_missing_consumer_retry_timeout = int(None)?
            }
            "kombu_failover_strategy" => {
                self.kombu_failover_strategy = match value {
                    "round-robin" => FailoverStrategy::RoundRobin,
                    "shuffle" => FailoverStrategy::Shuffle,
                    _ => return Err(invalid("round-robin or shuffle")),
                }
            }
            "rabbit_login_method" => {
                self.rabbit_login_method = match value {
                    "PLAIN" => LoginMethod::Plain,
                    "AMQPLAIN" => LoginMethod::AmqPlain,
                    "EXTERNAL" => LoginMethod::External,
                    "RABBIT-CR-DEMO" => LoginMethod::RabbitCrDemo,
                    _ => return Err(invalid("PLAIN, AMQPLAIN, EXTERNAL or RABBIT-CR-DEMO")),
                }
            }
            "rabbit_retry_interval" => self.rabbit_retry_interval = int(Some(1))?,
            "rabbit_retry_backoff" => self.rabbit_retry_backoff = int(Some(0))?,
            "rabbit_interval_max" => self.rabbit_interval_max = int(Some(1))?,
            "rabbit_ha_queues" => self.rabbit_ha_queues = b()?,
            "rabbit_quorum_queue" => self.rabbit_quorum_queue = b()?,
            "rabbit_transient_quorum_queue" => self.rabbit_transient_quorum_queue = b()?,
            "rabbit_quorum_delivery_limit" => self.rabbit_quorum_delivery_limit = int(None)?,
            "rabbit_quorum_max_memory_length" | "rabbit_quroum_max_memory_length" => {
                self.rabbit_quorum_max_memory_length = int(None)?
            }
            "rabbit_quorum_max_memory_bytes" | "rabbit_quroum_max_memory_bytes" => {
                self.rabbit_quorum_max_memory_bytes = int(None)?
            }
            "rabbit_transient_queues_ttl" => self.rabbit_transient_queues_ttl = int(Some(0))?,
            "rabbit_qos_prefetch_count" => self.rabbit_qos_prefetch_count = int(None)?,
            "heartbeat_timeout_threshold" => self.heartbeat_timeout_threshold = int(None)?,
            "heartbeat_rate" => self.heartbeat_rate = int(None)?,
            "enable_cancel_on_failover" => self.enable_cancel_on_failover = b()?,
            "use_queue_manager" => self.use_queue_manager = b()?,
            "hostname" => self.hostname = Some(value.to_string()),
            "processname" => self.processname = Some(value.to_string()),
            "rabbit_stream_fanout" => self.rabbit_stream_fanout = b()?,
            _ => {
                let Some((_, kind)) = IGNORED_OPTIONS.iter().find(|(n, _)| *n == name) else {
                    return Err(OptionError::Unknown(name.to_string()));
                };
                match *kind {
                    Kind::Bool => {
                        b()?;
                    }
                    Kind::Int { min } => {
                        int(min)?;
                    }
                    Kind::Float { min, max } => {
                        parse_float(value, min, max).ok_or_else(|| invalid("a number >= 0"))?;
                    }
                    Kind::Str => {}
                }
            }
        }
        Ok(())
    }

    /// The start-up checks oslo makes (`Connection.__init__`, `_get_queue_arguments`).
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.rabbit_quorum_queue && self.rabbit_ha_queues {
            return Err(OptionError::QuorumAndHa);
        }
        if self.rabbit_stream_fanout && self.rabbit_qos_prefetch_count <= 0 {
            return Err(OptionError::StreamNeedsPrefetch);
        }
        if self.rabbit_stream_fanout && !self.rabbit_transient_quorum_queue {
            return Err(OptionError::StreamNeedsTransientQuorum);
        }
        Ok(())
    }

    /// `Connection.durable`: the control exchange and topic queues are durable when asked, and
    /// always with quorum queues.
    pub fn durable(&self) -> bool {
        self.amqp_durable_queues || self.rabbit_quorum_queue
    }
}

/// oslo.config's `types.Boolean`.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// oslo.config's `types.Float` with a range.
fn parse_float(value: &str, min: f64, max: f64) -> Option<f64> {
    let v = value.trim().parse::<f64>().ok()?;
    (v.is_finite() && v >= min && v <= max).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_combinations_oslo_refuses() {
        let mut o = RabbitOptions {
            rabbit_quorum_queue: true,
            rabbit_ha_queues: true,
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionError::QuorumAndHa));
        o = RabbitOptions {
            rabbit_stream_fanout: true,
            rabbit_transient_quorum_queue: true,
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionError::StreamNeedsPrefetch));
        o.rabbit_qos_prefetch_count = 10;
        assert_eq!(o.validate(), Ok(()));
        o.rabbit_transient_quorum_queue = false;
        assert_eq!(o.validate(), Err(OptionError::StreamNeedsTransientQuorum));
    }
}
