//! The options whose syntax a layer above config checks (the interface driver and `[OVS]` by
//! the device layer, the messaging options by the transport), checked before anything starts;
//! each refusal is mapped, by its typed variant, to the section and key config names in the
//! error.

use crate::config::{AgentConfig, ConfigError, RawConfig};
use crate::device::ovs::InvalidOvsOption;
use crate::device::{DeviceConfig, DeviceManager, InterfaceDriver, OvsConfig};
use crate::rpc::transport::{TransportConfig, TransportError};
use crate::rpc::url::OptionError;

/// The device manager for `[DEFAULT] interface_driver`, with the `[OVS]` options checked when
/// it is `openvswitch`.
pub(super) fn device_manager(
    cfg: &AgentConfig,
    raw: &RawConfig,
) -> Result<DeviceManager, ConfigError> {
    let driver: InterfaceDriver =
        raw.parse_as("DEFAULT", "interface_driver", &cfg.interface_driver)?;
    let ovs = OvsConfig {
        integration_bridge: cfg.ovs.integration_bridge.clone(),
        ovsdb_connection: cfg.ovs.ovsdb_connection.clone(),
        ovsdb_timeout: cfg.ovs.ovsdb_timeout,
        datapath_type: cfg.ovs.datapath_type.clone(),
        use_veth: cfg.ovs.use_veth,
    };
    if driver == InterfaceDriver::Openvswitch {
        ovs.check().map_err(|InvalidOvsOption { option, source }| {
            raw.refused("OVS", option.key(), source)
        })?;
    }
    Ok(DeviceManager::new(DeviceConfig {
        driver,
        veth_bridge: cfg.veth_bridge.clone(),
        enable_isolated_metadata: cfg.serve.enable_isolated_metadata,
        force_metadata: cfg.serve.force_metadata,
        ovs,
    }))
}

/// The messaging configuration, validated.
pub(super) fn transport_config(
    cfg: &AgentConfig,
    transport_url: &str,
    raw: &RawConfig,
) -> Result<TransportConfig, ConfigError> {
    // TransportError never contains the URL's password; neither does TransportUrl's Display.
    TransportConfig::from_parts(
        transport_url,
        cfg.neutron.control_exchange.as_deref(),
        cfg.neutron.rpc_response_timeout.as_deref(),
        &cfg.neutron.rabbit,
        &cfg.host,
    )
    .map_err(|e| {
        let (section, key) = messaging_option(&e);
        let key = key.to_owned();
        raw.refused_messaging(section, &key, e)
    })
}

/// The section and key of the option a messaging error is about.
fn messaging_option(e: &TransportError) -> (&'static str, &str) {
    let rabbit = "oslo_messaging_rabbit";
    match e {
        TransportError::Url(_) => ("DEFAULT", "transport_url"),
        TransportError::Invalid { option, .. } => ("DEFAULT", option),
        TransportError::Tls { option, .. } => (rabbit, option),
        TransportError::Rabbit(o) => match o {
            OptionError::Invalid { option, .. } => (rabbit, option.as_str()),
            // Only the URL query can name an unknown option (the section's are ignored).
            OptionError::Unknown(_) => ("DEFAULT", "transport_url"),
            OptionError::QuorumAndHa => (rabbit, "rabbit_quorum_queue"),
            OptionError::StreamNeedsPrefetch | OptionError::StreamNeedsTransientQuorum => {
                (rabbit, "rabbit_stream_fanout")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parsed(text: &str) -> (AgentConfig, RawConfig) {
        let mut raw = RawConfig::default();
        raw.parse_str(text, Path::new("/etc/neutron/dhcp_agent.ini"))
            .unwrap();
        (AgentConfig::from_raw(&raw).unwrap(), raw)
    }

    fn device_error(text: &str) -> String {
        let (cfg, raw) = parsed(text);
        device_manager(&cfg, &raw).unwrap_err().to_string()
    }

    #[test]
    fn device_refusals_name_the_file_section_and_key() {
        assert_eq!(
            device_error("[DEFAULT]\ninterface_driver = linuxbrige\n"),
            "/etc/neutron/dhcp_agent.ini: invalid [DEFAULT] interface_driver: unknown \
             interface_driver \"linuxbrige\" (supported: veth, openvswitch)"
        );
        let e = device_error("[OVS]\novsdb_connection = tcp:no-port\n");
        assert!(
            e.starts_with("/etc/neutron/dhcp_agent.ini: invalid [OVS] ovsdb_connection: "),
            "{e}"
        );
        let e = device_error("[OVS]\nintegration_bridge = br-int-far-too-long\n");
        assert!(
            e.starts_with("/etc/neutron/dhcp_agent.ini: invalid [OVS] integration_bridge: "),
            "{e}"
        );
        // The veth driver does not use [OVS].
        let (cfg, raw) =
            parsed("[DEFAULT]\ninterface_driver = veth\n[OVS]\novsdb_connection = x\n");
        assert!(device_manager(&cfg, &raw).is_ok());
    }

    #[test]
    fn messaging_refusals_name_the_section_and_key() {
        let url = "rabbit://u:secret@h:99999/";
        let (cfg, raw) = parsed(&format!("[DEFAULT]\ntransport_url = {url}\n"));
        let e = transport_config(&cfg, url, &raw).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "/etc/neutron/dhcp_agent.ini: invalid messaging configuration \
                 ([DEFAULT] transport_url): "
            ),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        let url = "rabbit://u:p@h:5672/";
        let (cfg, raw) = parsed(&format!(
            "[DEFAULT]\ntransport_url = {url}\n[oslo_messaging_rabbit]\nssl = sometimes\n"
        ));
        let e = transport_config(&cfg, url, &raw).unwrap_err().to_string();
        assert!(
            e.contains("invalid messaging configuration ([oslo_messaging_rabbit] ssl)"),
            "{e}"
        );
    }
}
