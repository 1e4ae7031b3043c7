//! `dhcp-floor`: the least CPU a DHCPv4 server with one receive and one send per packet spends
//! on this machine, for `scripts/bench-dnsmasq.sh` to set beside the agent's CPU per DORA.
//!
//! One thread blocked in `recv_from` on the network's DHCP device, answering with the agent's
//! own responder (`dhcp::v4::respond`) and view, replying with one send: no `epoll`, no
//! runtime, no tracing, no counters, nothing else a served network needs (stopping, reloads,
//! DHCPv6). Run inside the network's namespace (`ip netns exec`) once the agent has plumbed it
//! and stopped without tearing it down. What the agent spends per DORA above this is what its
//! design costs; the rest is the kernel's and the machine's.

use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::netio;
use neutron_dhcp::dhcp::v4::{self, Outcome};
use neutron_dhcp::serve::poller::{self, Epoll};
use neutron_dhcp::standalone::netfile::NetworksFile;
use neutron_dhcp::view::NetworkView;

#[derive(Parser, Debug)]
#[command(name = "dhcp-floor")]
struct Cli {
    /// The agent's networks file.
    #[arg(long)]
    networks_file: PathBuf,
    /// The network to serve.
    #[arg(long)]
    network_id: String,
    /// The DHCP device in this namespace.
    #[arg(long)]
    interface: String,
    /// The agent's `host`: which DHCP port in the file is ours.
    #[arg(long, default_value = "bench")]
    host: String,
    /// Sleep in `epoll_wait` and receive without blocking, as a multiplexing server must: the
    /// difference to the plain floor is what `epoll` itself costs per request.
    #[arg(long)]
    epoll: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = NetworksFile::load(&cli.networks_file, &cli.host)?;
    let desired = file
        .networks()
        .iter()
        .find(|d| d.network.id == cli.network_id)
        .with_context(|| format!("network {} is not in the file", cli.network_id))?;
    let view = NetworkView::build(
        &desired.network,
        &desired.own_port_id,
        &ServeConfig::default(),
    );
    let ifindex =
        netio::ifindex(&cli.interface).with_context(|| format!("no device {}", cli.interface))?;
    let udp = netio::bind_udp4(&cli.interface).context("cannot bind the DHCP port")?;
    udp.set_nonblocking(cli.epoll)?;
    let poller = if cli.epoll {
        let epoll = Epoll::new().context("cannot create epoll")?;
        epoll
            .add(udp.as_fd(), 0)
            .context("cannot watch the socket")?;
        Some(epoll)
    } else {
        None
    };
    let mut ready = [poller::NO_EVENT];
    let packet = netio::packet_socket().context("cannot open the packet socket")?;
    // The bench waits for this line before it starts the load.
    println!("ready");

    let mut buf = [0u8; 1536];
    let mut reply = Vec::with_capacity(1500);
    let mut frame = Vec::with_capacity(1500 + netio::FRAME_OVERHEAD);
    loop {
        if let Some(p) = &poller {
            p.wait(&mut ready, -1).context("epoll_wait failed")?;
        }
        let n = match udp.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context("recv failed"),
        };
        let Outcome::Reply {
            delivery,
            server_ip,
        } = v4::respond(&buf[..n], &view, &mut reply)
        else {
            continue;
        };
        let (mac, dst) = match netio::Destination::from(delivery) {
            netio::Destination::Udp(to) => {
                report(udp.send_to(&reply, to).map(drop));
                continue;
            }
            netio::Destination::Frame { mac, ip } => (mac, ip),
        };
        netio::build_udp4_frame(server_ip, dst, &reply, &mut frame);
        report(netio::send_l2(&packet, ifindex, mac, &frame));
    }
}

fn report(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        eprintln!("dhcp-floor: send failed: {e}");
    }
}
