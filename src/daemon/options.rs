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
