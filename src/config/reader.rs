//! Typed option reads (booleans, bounded integers and floats, strings) over [`RawConfig`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::ConfigError;
use super::raw::{group_key, RawConfig, RawValue};

/// Typed reads of the merged files, with oslo.config's `$state_path` substitution; a bad value
/// is an error naming the file, the section (as written) and the key.
pub(super) struct Reader<'a> {
    pub(super) raw: &'a RawConfig,
    defaults: HashMap<&'static str, String>,
}

impl Reader<'_> {
    /// A reader with oslo.config's defaults for substitution (`$state_path`).
    pub(super) fn new(raw: &RawConfig) -> Reader<'_> {
        let mut defaults = HashMap::new();
        defaults.insert("state_path", "/var/lib/neutron".to_owned());
        Reader { raw, defaults }
    }

    pub(super) fn string(&self, section: &str, key: &str) -> Option<(String, &RawValue)> {
        self.raw
            .get(section, key)
            .map(|v| (self.raw.interpolate(&v.value, &self.defaults), v))
    }

    pub(super) fn invalid(
        &self,
        section: &str,
        key: &str,
        raw: &RawValue,
        reason: String,
    ) -> ConfigError {
        // The section as the operator wrote it (`[agent]`), so it can be found in the file.
        let section = if group_key(&raw.section) == group_key(section) {
            raw.section.as_str()
        } else {
            section
        };
        ConfigError::Invalid {
            path: raw.path.clone(),
            section: section.to_owned(),
            key: key.to_owned(),
            value: raw.value.clone(),
            reason,
        }
    }

    pub(super) fn boolean(
        &self,
        section: &str,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(self.invalid(section, key, raw, "expected a boolean".into())),
        }
    }

    pub(super) fn int(
        &self,
        section: &str,
        key: &str,
        default: i64,
        min: i64,
    ) -> Result<i64, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| self.invalid(section, key, raw, "expected an integer".into()))?;
        if n < min {
            return Err(self.invalid(section, key, raw, format!("must be >= {min}")));
        }
        Ok(n)
    }

    pub(super) fn float(
        &self,
        section: &str,
        key: &str,
        default: f64,
        min: f64,
    ) -> Result<f64, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| self.invalid(section, key, raw, "expected a number".into()))?;
        // Also bounds it for Duration::from_secs_f64 (a century is plenty for any interval).
        if !n.is_finite() || n < min || n > 3.2e9 {
            return Err(self.invalid(
                section,
                key,
                raw,
                format!("must be between {min} and 3.2e9"),
            ));
        }
        Ok(n)
    }

    pub(super) fn opt_string(&self, section: &str, key: &str) -> Option<String> {
        self.string(section, key)
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty())
    }
}

/// Only reachable if a value vanished between two reads of the same map; kept as an error
/// rather than a panic so config handling can never abort the daemon.
pub(super) fn unreachable_missing(key: &str) -> ConfigError {
    ConfigError::Syntax {
        path: PathBuf::new(),
        line: 0,
        reason: format!("internal: option {key} disappeared while validating"),
    }
}
