//! oslo.messaging's `transport_url` and the `[oslo_messaging_rabbit]` options its query can
//! override (docs/reference/oslo-messaging-rabbit.md §2.1, §2.3, §3.1).
//!
//! The parser follows `oslo_messaging.transport.TransportURL.parse` and
//! `impl_rabbit.Connection._transform_transport_url`, because the operator writes one URL for
//! neutron-server and for us, and both must end up on the same broker, vhost and credentials.
//!
//! Nothing here prints a password: [`Secret`] redacts itself in `Debug` and `Display`, and no
//! error echoes any part of the URL's netloc (a malformed one can contain a password).
//!
//! * [`transport_url`]: the URL itself, parsed and printed without passwords.
//! * [`endpoint`]: one broker to connect to, every default applied, and lapin's URI for it.
//! * [`options`]: the `[oslo_messaging_rabbit]` options, with oslo.config's conversions.
//! * [`secret`]: the string type that keeps passwords out of logs.
//!
//! Everything public is re-exported here, so `crate::rpc::url::X` is the path to use.

pub mod endpoint;
pub mod options;
pub mod secret;
pub mod transport_url;

pub use endpoint::BrokerEndpoint;
pub use options::{FailoverStrategy, LoginMethod, OptionError, RabbitOptions};
pub use secret::Secret;
pub use transport_url::{
    TransportHost, TransportUrl, UrlError, DEFAULT_CREDENTIAL, DEFAULT_HOST, DEFAULT_PORT,
};
