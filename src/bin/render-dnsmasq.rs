//! `render-dnsmasq`: writes what Neutron's Dnsmasq driver would write for one network of a
//! standalone networks file, and prints the dnsmasq command line as JSON.
//!
//! ```text
//! render-dnsmasq --networks-file nets.json [--config-file dhcp_agent.ini ...] \
//!     [--network <id>] --out <dir> [--interface <name>] [--ovs]
//! ```
//!
//! `--out` becomes the network's conf dir: `host`, `addn_hosts`, `opts`, `leases` and
//! `interface` are written there (world-readable: dnsmasq re-reads them after dropping root),
//! and the command line's `--pid-file`, `--dhcp-hostsfile`, ... point into it. The JSON on
//! stdout carries the argv plus what a script needs to build the namespace like the agent does:
//! namespace, interface, the DHCP port's MAC and addresses, and the MTU.
//!
//! Options read from the config files: `[DEFAULT] dhcp_lease_duration`, `dns_domain`,
//! `enable_isolated_metadata`, `force_metadata`, `dhcp_broadcast_reply`, `dhcp_renewal_time`,
//! `dhcp_rebinding_time` (as the agent reads them) and the dnsmasq-only `dnsmasq_config_file`,
//! `dnsmasq_dns_servers`, `dnsmasq_local_resolv`, `dnsmasq_lease_max`, `dnsmasq_base_log_dir`,
//! `dnsmasq_enable_addr6_list`, `dnsmasq_txt_record`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;

use neutron_dhcp::config::{AgentConfig, RawConfig};
use neutron_dhcp::dnsmasq::{interface_name, Dnsmasq, DnsmasqConfig};
use neutron_dhcp::standalone;

#[derive(Parser, Debug)]
#[command(
    name = "render-dnsmasq",
    about = "Render Neutron's dnsmasq files for one network"
)]
struct Cli {
    /// Standalone networks file (a JSON list of get_network_info dicts).
    #[arg(long)]
    networks_file: PathBuf,
    /// Agent configuration files (oslo.config INI), later ones override earlier ones.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
    /// Network id; may be omitted when the file holds exactly one network.
    #[arg(long)]
    network: Option<String>,
    /// Conf dir to write the files into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Interface name inside the namespace (default: `ns-<port[:11]>`, or `tap<port[:11]>`
    /// with `--ovs`).
    #[arg(long)]
    interface: Option<String>,
    /// Render for the OVS driver (not bridged: adds `--bridge-interface`).
    #[arg(long)]
    ovs: bool,
    /// Host name used to pick this agent's DHCP port (default: from the config / system).
    #[arg(long)]
    host: Option<String>,
}

fn parse_bool(key: &str, v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => bail!("[DEFAULT] {key} = {v:?}: expected a boolean"),
    }
}

fn dnsmasq_config(raw: &RawConfig, bridged: bool) -> anyhow::Result<DnsmasqConfig> {
    let mut cfg = DnsmasqConfig {
        bridged,
        ..DnsmasqConfig::default()
    };
    for (key, value) in raw.section("DEFAULT") {
        let v = value.trim();
        match key.as_str() {
            "dnsmasq_config_file" => cfg.dnsmasq_config_file = v.to_string(),
            "dnsmasq_dns_servers" => {
                cfg.dnsmasq_dns_servers = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "dnsmasq_local_resolv" => cfg.dnsmasq_local_resolv = parse_bool(&key, v)?,
            "dnsmasq_lease_max" => {
                cfg.dnsmasq_lease_max = v
                    .parse()
                    .with_context(|| format!("[DEFAULT] dnsmasq_lease_max = {v:?}"))?
            }
            "dnsmasq_base_log_dir" if !v.is_empty() => {
                cfg.dnsmasq_base_log_dir = Some(PathBuf::from(v))
            }
            "dnsmasq_enable_addr6_list" => cfg.dnsmasq_enable_addr6_list = parse_bool(&key, v)?,
            "dnsmasq_txt_record" => cfg.dnsmasq_txt_record = v.to_string(),
            _ => {}
        }
    }
    Ok(cfg)
}

fn write_file(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let raw = RawConfig::load(&cli.config_file, &[])?;
    let agent = AgentConfig::from_raw(&raw)?;
    let host = cli.host.clone().unwrap_or_else(|| agent.host.clone());
    let parsed = standalone::load(&cli.networks_file, &host)?;
    for r in &parsed.rejected {
        eprintln!("render-dnsmasq: skipped: {}", r.error);
    }
    let nets = parsed.networks;
    let desired = match &cli.network {
        Some(id) => nets
            .iter()
            .find(|d| &d.network.id == id)
            .with_context(|| format!("network {id} is not in {}", cli.networks_file.display()))?,
        None if nets.len() == 1 => &nets[0],
        None => bail!(
            "{} holds {} networks; choose one with --network",
            cli.networks_file.display(),
            nets.len()
        ),
    };
    let net = &desired.network;
    let own = desired.own_port();
    let bridged = !cli.ovs;
    let cfg = dnsmasq_config(&raw, bridged)?;
    let ifname = cli
        .interface
        .clone()
        .unwrap_or_else(|| interface_name(&desired.own_port_id, bridged));
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    std::fs::set_permissions(&cli.out, std::fs::Permissions::from_mode(0o755))?;
    let out = std::fs::canonicalize(&cli.out)?;
    let existing = std::fs::read_to_string(out.join("leases")).ok();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dm = Dnsmasq::new(net, &agent.serve, &cfg, &out, &ifname, own);
    let rendered = dm.render(now, existing.as_deref());
    for (name, contents) in rendered.files() {
        write_file(&out, name, contents)?;
    }
    // The device manager's addresses: the DHCP port's IPs on DHCP-enabled local subnets.
    let addresses: Vec<String> = own
        .map(|p| {
            p.fixed_ips
                .iter()
                .filter_map(|f| {
                    let s = net
                        .subnets
                        .iter()
                        .find(|s| s.id == f.subnet_id && s.enable_dhcp)?;
                    Some(format!("{}/{}", f.ip_address, s.cidr.prefix()))
                })
                .collect()
        })
        .unwrap_or_default();
    let gateway = net
        .subnets
        .iter()
        .find(|s| s.enable_dhcp && s.gateway_ip.is_some_and(|g| g.is_ipv4()))
        .and_then(|s| s.gateway_ip)
        .map(|g| g.to_string());
    println!(
        "{}",
        json!({
            "network_id": net.id,
            "namespace": net.namespace(),
            "interface": ifname,
            "conf_dir": out.display().to_string(),
            "pid_file": dm.conf_file("pid").display().to_string(),
            "dhcp_port": {
                "id": desired.own_port_id,
                "mac": own.map(|p| p.mac_address.to_string()),
                "addresses": addresses,
            },
            "metadata_address": agent.serve.enable_isolated_metadata || agent.serve.force_metadata,
            "default_gateway_v4": gateway,
            "mtu": net.mtu,
            "argv": rendered.argv,
        })
    );
    Ok(())
}
