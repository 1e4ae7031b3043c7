//! The one error of configuration handling: every variant names the file (and, for a value,
//! the section and key) so an operator can find what to fix.

use std::path::{Path, PathBuf};

/// An error of some layer that validated an option's value itself (the interface driver, the
/// `[OVS]` options, the messaging options): config cannot name those layers' types, being
/// below them.
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: [{section}] {key} = {value:?}: {reason}")]
    Invalid {
        path: PathBuf,
        section: String,
        key: String,
        value: String,
        reason: String,
    },
    /// A value the layer that uses it refused (see [`crate::config::RawConfig::refused`]);
    /// `file` is `None` when the value is the default.
    #[error("{}: invalid [{section}] {key}: {source}", shown(file.as_deref()))]
    Refused {
        file: Option<PathBuf>,
        section: String,
        key: String,
        source: SourceError,
    },
    /// A messaging option the transport refused (see
    /// [`crate::config::RawConfig::refused_messaging`]); its error never contains the URL's
    /// password.
    #[error(
        "{}: invalid messaging configuration ([{section}] {key}): {source}",
        shown(file.as_deref())
    )]
    Messaging {
        file: Option<PathBuf>,
        section: String,
        key: String,
        source: SourceError,
    },
}

/// The file an option came from, or `<defaults>` when no file set it.
pub(crate) fn shown(file: Option<&Path>) -> String {
    file.map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string())
}
