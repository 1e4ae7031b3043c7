//! The INI reader: oslo.config's dialect, the merge of several files, and where each value
//! came from (so that every error can name the file, section and key).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, SourceError};

/// Where a raw value came from, so a validation error can point at it.
#[derive(Clone, Debug)]
pub(super) struct RawValue {
    pub(super) value: String,
    pub(super) path: PathBuf,
    /// The section name as written in that file (`[agent]` or `[AGENT]`).
    pub(super) section: String,
}

/// oslo.config's group-name rule (`_normalize_group_name`): group names are case-insensitive
/// (`[agent]` is `[AGENT]`, `[ovs]` is `[OVS]`), except that only `DEFAULT` is the default group.
pub(super) fn group_key(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_lowercase()
    }
}

/// The merged contents of all config files: later files override earlier ones, like oslo.config.
#[derive(Default, Debug)]
pub struct RawConfig {
    values: HashMap<(String, String), RawValue>,
}

impl RawConfig {
    /// Reads `--config-file`s in order, then every `*.conf` of each `--config-dir` in name order.
    pub fn load(files: &[PathBuf], dirs: &[PathBuf]) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        for f in files {
            raw.parse_file(f)?;
        }
        for d in dirs {
            let entries = std::fs::read_dir(d).map_err(|source| ConfigError::Read {
                path: d.clone(),
                source,
            })?;
            let mut confs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            confs.sort();
            for f in confs {
                raw.parse_file(&f)?;
            }
        }
        Ok(raw)
    }

    fn parse_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.parse_str(&text, path)
    }

    /// oslo.config's INI dialect: `[section]`, `key = value` or `key: value`, `#`/`;` comments,
    /// indented continuation lines, matching surrounding quotes stripped.
    pub fn parse_str(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let mut section: Option<String> = None;
        let mut last_key: Option<(String, String)> = None;
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let syntax = |reason: &str| ConfigError::Syntax {
                path: path.to_owned(),
                line: lineno,
                reason: reason.to_owned(),
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let key = last_key
                    .as_ref()
                    .ok_or_else(|| syntax("continuation line without a key"))?;
                if let Some(v) = self.values.get_mut(key) {
                    v.value.push('\n');
                    v.value.push_str(trimmed);
                }
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| syntax("section header without closing ]"))?
                    .trim();
                if name.is_empty() {
                    return Err(syntax("empty section name"));
                }
                section = Some(name.to_owned());
                last_key = None;
                continue;
            }
            let sect = section
                .clone()
                .ok_or_else(|| syntax("option outside of any [section]"))?;
            let split = trimmed
                .find(['=', ':'])
                .ok_or_else(|| syntax("expected 'key = value'"))?;
            let key = trimmed[..split].trim().replace('-', "_");
            if key.is_empty() {
                return Err(syntax("empty option name"));
            }
            let value = unquote(trimmed[split + 1..].trim()).to_owned();
            let k = (group_key(&sect), key);
            self.values.insert(
                k.clone(),
                RawValue {
                    value,
                    path: path.to_owned(),
                    section: sect,
                },
            );
            last_key = Some(k);
        }
        Ok(())
    }

    /// All `(key, value)` pairs of one section, for option groups parsed elsewhere
    /// (e.g. `[oslo_messaging_rabbit]` by the RPC layer), sorted by key.
    pub fn section(&self, section: &str) -> Vec<(String, String)> {
        let section = group_key(section);
        let mut out: Vec<(String, String)> = self
            .values
            .iter()
            .filter(|((s, _), _)| *s == section)
            .map(|((_, k), v)| (k.clone(), v.value.clone()))
            .collect();
        out.sort();
        out
    }

    pub(super) fn get(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.values.get(&(group_key(section), key.to_owned()))
    }

    /// The file that set `[section] key` last (the one in effect), for error messages about
    /// options validated elsewhere (e.g. `[oslo_messaging_rabbit]` by the RPC layer).
    pub fn origin(&self, section: &str, key: &str) -> Option<&Path> {
        self.get(section, key).map(|v| v.path.as_path())
    }

    /// Every value with its group (normalized, see [`group_key`]) and key, in no order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, &str, &RawValue)> {
        self.values
            .iter()
            .map(|((section, key), v)| (section.as_str(), key.as_str(), v))
    }

    /// `[section] key` refused by the layer that uses it (the interface driver, `[OVS]`): the
    /// error names the file that set it, the section and the key, with that layer's error.
    pub fn refused(&self, section: &str, key: &str, source: impl Into<SourceError>) -> ConfigError {
        ConfigError::Refused {
            file: self.origin(section, key).map(Path::to_owned),
            section: section.to_owned(),
            key: key.to_owned(),
            source: source.into(),
        }
    }

    /// `value` (of `[section] key`) parsed into the type the layer that uses it defines,
    /// which config cannot name; a refusal is [`RawConfig::refused`].
    pub fn parse_as<T>(&self, section: &str, key: &str, value: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        value.parse().map_err(|e| self.refused(section, key, e))
    }

    /// A messaging option the transport refused. An `[oslo_messaging_rabbit]` value may come
    /// from the transport_url query instead, so without a file that set `[section] key` the
    /// error names the one that set the URL.
    pub fn refused_messaging(
        &self,
        section: &str,
        key: &str,
        source: impl Into<SourceError>,
    ) -> ConfigError {
        ConfigError::Messaging {
            file: self
                .origin(section, key)
                .or_else(|| self.origin("DEFAULT", "transport_url"))
                .map(Path::to_owned),
            section: section.to_owned(),
            key: key.to_owned(),
            source: source.into(),
        }
    }

    /// The raw value of `[section] key` as the file in effect wrote it (not interpolated).
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.get(section, key).map(|v| v.value.as_str())
    }

    /// `$name` / `${name}` substitution from `[DEFAULT]`, as oslo.config does for `$state_path`;
    /// `$$` is a literal `$` (how a password containing `$` is written for oslo.config).
    pub(super) fn interpolate(&self, value: &str, defaults: &HashMap<&str, String>) -> String {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], &inner[end + 1..]),
                    None => ("", after),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            let resolved = self
                .get("DEFAULT", name)
                .map(|v| v.value.clone())
                .or_else(|| defaults.get(name).cloned());
            match (name.is_empty(), resolved) {
                (false, Some(v)) => out.push_str(&v),
                _ => {
                    out.push('$');
                    rest = after;
                    continue;
                }
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{cfg, AgentConfig};

    #[test]
    fn later_files_override_earlier() {
        let mut raw = RawConfig::default();
        raw.parse_str(
            "[DEFAULT]\ndns_domain = a\nhost = h1\n",
            Path::new("neutron.conf"),
        )
        .unwrap();
        raw.parse_str("[DEFAULT]\ndns_domain = b\n", Path::new("dhcp_agent.ini"))
            .unwrap();
        let c = AgentConfig::from_raw(&raw).unwrap();
        assert_eq!(c.serve.dns_domain, "b");
        assert_eq!(c.host, "h1");
    }

    #[test]
    fn group_names_are_case_insensitive_like_oslo_config() {
        let c = cfg(
            "[agent]\nreport_interval = 7\navailability_zone = az9\n[ovs]\n\
             integration_bridge = br-x\n[Oslo_Messaging_Rabbit]\namqp_durable_queues = true\n",
        )
        .unwrap();
        assert_eq!(c.neutron.report_interval, Duration::from_secs(7));
        assert_eq!(c.neutron.availability_zone, "az9");
        assert_eq!(c.ovs.integration_bridge, "br-x");
        assert_eq!(
            c.neutron.rabbit,
            vec![("amqp_durable_queues".to_string(), "true".to_string())]
        );
        // Only DEFAULT is the default group: [default] is another (unused) group.
        let c = cfg("[default]\ndns_domain = x\n").unwrap();
        assert_eq!(c.serve.dns_domain, "openstacklocal");
        // Errors name the section as written.
        let e = cfg("[agent]\nreport_interval = soon\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[agent] report_interval"), "{e}");
        // A later [AGENT] overrides an earlier [agent].
        let c = cfg("[agent]\nreport_interval = 7\n[AGENT]\nreport_interval = 8\n").unwrap();
        assert_eq!(c.neutron.report_interval, Duration::from_secs(8));
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar_and_origin_names_the_file() {
        let mut raw = RawConfig::default();
        raw.parse_str(
            "[DEFAULT]\ntransport_url = rabbit://u:pa$$word@h/\nstate_path = /s\n",
            Path::new("/etc/neutron/neutron.conf"),
        )
        .unwrap();
        raw.parse_str(
            "[DEFAULT]\nhost = $state_path$$\n",
            Path::new("/x/dhcp_agent.ini"),
        )
        .unwrap();
        let c = AgentConfig::from_raw(&raw).unwrap();
        assert_eq!(c.transport_url.as_deref(), Some("rabbit://u:pa$word@h/"));
        assert_eq!(c.host, "/s$");
        assert_eq!(
            raw.origin("DEFAULT", "transport_url"),
            Some(Path::new("/etc/neutron/neutron.conf"))
        );
        assert_eq!(
            raw.origin("DEFAULT", "host"),
            Some(Path::new("/x/dhcp_agent.ini"))
        );
        assert_eq!(raw.origin("DEFAULT", "nothing"), None);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = cfg("[DEFAULT]\njust words\n").unwrap_err().to_string();
        assert!(e.contains("dhcp_agent.ini:2"), "{e}");
        assert!(cfg("key = v\n").is_err());
        assert!(cfg("[DEFAULT\n").is_err());
    }

    #[test]
    fn continuation_lines_and_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "[DEFAULT]\ndns_domain = z\n").unwrap();
        std::fs::write(dir.path().join("a.conf"), "[DEFAULT]\ndns_domain = y\n").unwrap();
        std::fs::write(
            dir.path().join("ignored.ini"),
            "[DEFAULT]\ndns_domain = q\n",
        )
        .unwrap();
        let raw = RawConfig::load(&[], &[dir.path().to_owned()]).unwrap();
        assert_eq!(AgentConfig::from_raw(&raw).unwrap().serve.dns_domain, "z");
        let mut raw = RawConfig::default();
        raw.parse_str("[DEFAULT]\nhost = a\n  b\n", Path::new("x"))
            .unwrap();
        assert_eq!(AgentConfig::from_raw(&raw).unwrap().host, "a\nb");
    }

    #[test]
    fn refusals_of_other_layers_name_the_file_that_set_the_option() {
        let mut raw = RawConfig::default();
        raw.parse_str(
            "[DEFAULT]\ntransport_url = rabbit://h/?x=1\n",
            Path::new("/etc/neutron/neutron.conf"),
        )
        .unwrap();
        let e = raw.parse_as::<u8>("DEFAULT", "interface_driver", "x");
        assert_eq!(
            e.unwrap_err().to_string(),
            "<defaults>: invalid [DEFAULT] interface_driver: invalid digit found in string"
        );
        // A messaging option without a file of its own came from the transport_url query.
        let e = raw.refused_messaging("oslo_messaging_rabbit", "x", "bad");
        assert_eq!(
            e.to_string(),
            "/etc/neutron/neutron.conf: invalid messaging configuration \
             ([oslo_messaging_rabbit] x): bad"
        );
    }
}
