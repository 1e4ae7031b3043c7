//! oslo.log's options (`[DEFAULT] debug`, `log_file`, `log_dir`): read before the rest of the
//! configuration is typed, so that the debug logs of that typing (the ignored options) are not
//! lost.

use std::path::PathBuf;

use super::error::ConfigError;
use super::raw::RawConfig;

/// oslo.log's file name when only a log directory is given (`<binary>.log`).
const LOG_FILE_IN_DIR: &str = "neutron-dhcp-agent.log";

/// Where and how much to log: the command line wins over `[DEFAULT]` in the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingOptions {
    pub debug: bool,
    /// `None`: the log goes to stderr.
    pub file: Option<PathBuf>,
}

/// The command line's logging options (`--debug`, `--log-file`, `--log-dir`).
#[derive(Clone, Debug, Default)]
pub struct LoggingArgs {
    pub debug: bool,
    pub log_file: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
}

impl LoggingOptions {
    /// The command line's options over the files' `[DEFAULT]` ones; a relative log file is in
    /// the log directory when one is set, and a log directory alone means
    /// `<dir>/neutron-dhcp-agent.log`, as oslo.log does.
    pub fn from_raw(raw: &RawConfig, args: &LoggingArgs) -> Result<LoggingOptions, ConfigError> {
        let get = |key: &str| {
            raw.get("DEFAULT", key)
                .map(|v| (v.value.trim().to_owned(), v))
                .filter(|(v, _)| !v.is_empty())
        };
        let debug = match get("debug") {
            _ if args.debug => true,
            None => false,
            Some((v, raw_value)) => match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        path: raw_value.path.clone(),
                        section: "DEFAULT".into(),
                        key: "debug".into(),
                        value: v,
                        reason: "expected a boolean".into(),
                    })
                }
            },
        };
        let dir = args
            .log_dir
            .clone()
            .or_else(|| get("log_dir").map(|(v, _)| PathBuf::from(v)));
        let file = args
            .log_file
            .clone()
            .or_else(|| get("log_file").map(|(v, _)| PathBuf::from(v)));
        let file = match (dir, file) {
            (Some(dir), Some(file)) => Some(dir.join(file)),
            (Some(dir), None) => Some(dir.join(LOG_FILE_IN_DIR)),
            (None, file) => file,
        };
        Ok(LoggingOptions { debug, file })
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn options(text: &str, args: &LoggingArgs) -> Result<LoggingOptions, ConfigError> {
        let mut raw = RawConfig::default();
        raw.parse_str(text, Path::new("/etc/neutron/neutron.conf"))?;
        LoggingOptions::from_raw(&raw, args)
    }

    #[test]
    fn the_command_line_wins_and_a_directory_alone_names_the_file() {
        let none = LoggingArgs::default();
        let o = options(
            "[DEFAULT]\ndebug = True\nlog_dir = /var/log/neutron\n",
            &none,
        )
        .unwrap();
        assert!(o.debug);
        assert_eq!(
            o.file,
            Some(PathBuf::from("/var/log/neutron/neutron-dhcp-agent.log"))
        );
        let args = LoggingArgs {
            debug: true,
            log_file: Some("a.log".into()),
            log_dir: None,
        };
        let o = options("[DEFAULT]\ndebug = nonsense\nlog_dir = /l\n", &args).unwrap();
        assert!(o.debug);
        assert_eq!(o.file, Some(PathBuf::from("/l/a.log")));
        assert_eq!(options("", &none).unwrap().file, None);
    }

    #[test]
    fn a_bad_debug_value_names_file_section_and_key() {
        let e = options("[DEFAULT]\ndebug = perhaps\n", &LoggingArgs::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/neutron/neutron.conf: [DEFAULT] debug = \"perhaps\": expected a boolean"
        );
    }
}
