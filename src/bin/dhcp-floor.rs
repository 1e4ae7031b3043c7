//! `dhcp-floor`: the least CPU a DHCPv4 server with one receive and one send per packet spends
//! on this machine, for `scripts/bench-dnsmasq.sh` to set beside the agent's CPU per DORA.
//!
//! One thread blocked in `recv_from` on the network's DHCP device, answering with the agent's
//! own responder (`dhcp::v4::respond`) and view, replying with one send: no `epoll`, no
//! runtime, no tracing, no counters, nothing else a served network needs (stopping, reloads,
//! DHCPv6). Run inside the network's namespace (`ip netns exec`) once the agent has plumbed it
//! and stopped without tearing it down. What the agent spends per DORA above this is what its
//! design costs; the rest is the kernel's and the machine's.

use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dhcp::netio;
use neutron_dhcp::dhcp::v4::{self, Outcome};
use neutron_dhcp::netfile::NetworksFile;
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
        Some(Epoll::on(&udp)?)
    } else {
        None
    };
    let packet = netio::packet_socket().context("cannot open the packet socket")?;
    // The bench waits for this line before it starts the load.
    println!("ready");

    let mut buf = [0u8; 1536];
    let mut reply = Vec::with_capacity(1500);
    let mut frame = Vec::with_capacity(1500 + netio::FRAME_OVERHEAD);
    loop {
        if let Some(p) = &poller {
            p.wait()?;
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

/// A level-triggered epoll instance watching one socket for input.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn on(socket: &impl AsRawFd) -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 has no preconditions; the fd it returns is owned here.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned open and is owned by nothing else.
        let epoll = Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: both fds are open; ev is a valid epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                epoll.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(epoll)
    }

    fn wait(&self) -> std::io::Result<()> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: the buffer holds one event, as passed.
        let rc = unsafe { libc::epoll_wait(self.0.as_raw_fd(), ev.as_mut_ptr(), 1, -1) };
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn report(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        eprintln!("dhcp-floor: send failed: {e}");
    }
}
