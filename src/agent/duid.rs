//! The DHCPv6 server DUID of a network, kept in `$state_path/dhcp/<net>/duid` so that it stays
//! the same across restarts and DHCP port changes (clients' Renews name it).

use std::path::Path;

use crate::model::MacAddr;
use crate::view::v6::ServerDuid;

const DUID_FILE: &str = crate::migrate::DUID_FILE;

/// Reads the persisted server DUID (dnsmasq's lease-file notation, `00:03:00:01:<mac>`), or
/// takes the one dnsmasq used for this network (the `duid` line of the Python agent's `leases`
/// file: clients' Renews name it), or else derives a DUID-LL from `mac`, and writes it. A
/// damaged file is replaced rather than trusted.
pub(super) fn load_or_create_duid(dir: &Path, mac: MacAddr) -> std::io::Result<ServerDuid> {
    let path = dir.join(DUID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        match text.trim().parse::<ServerDuid>() {
            Ok(duid) => return Ok(duid),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring malformed DUID file")
            }
        }
    }
    let duid = match crate::migrate::dnsmasq_server_duid(dir) {
        Some(d) => {
            tracing::info!(duid = %d, "keeping dnsmasq's DHCPv6 server DUID");
            d
        }
        None => ServerDuid::from_mac(mac),
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, format!("{duid}\n"))?;
    Ok(duid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duid_is_created_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net-1");
        let a: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let b: MacAddr = "fa:16:3e:00:00:02".parse().unwrap();
        let first = load_or_create_duid(&net, a).unwrap();
        assert_eq!(first.as_bytes(), [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(
            std::fs::read_to_string(net.join(DUID_FILE)).unwrap(),
            "00:03:00:01:fa:16:3e:00:00:01\n"
        );
        // A new DHCP port (new MAC) keeps the persisted identity.
        assert_eq!(load_or_create_duid(&net, b).unwrap(), first);
        std::fs::write(net.join(DUID_FILE), "garbage").unwrap();
        assert_eq!(
            load_or_create_duid(&net, b).unwrap().as_bytes(),
            [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2]
        );
    }

    #[test]
    fn dnsmasq_duid_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net-1");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("leases"),
            "duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n0 fa:16:3e:0a:00:11 10.90.0.11 * *\n",
        )
        .unwrap();
        let a: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let duid = load_or_create_duid(&net, a).unwrap();
        assert_eq!(
            duid.to_string(),
            "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1"
        );
        // Persisted as ours: a later lease file (ours rewritten for dnsmasq) does not change it.
        std::fs::write(
            net.join("leases"),
            "duid 00:01:00:01:00:00:00:01:fa:16:3e:00:00:09\n",
        )
        .unwrap();
        assert_eq!(load_or_create_duid(&net, a).unwrap(), duid);
    }
}
