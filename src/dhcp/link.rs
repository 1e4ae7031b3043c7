//! What the I/O shell knows of the link-layer sender of a datagram, for the responders to
//! decide whom they answer.
//!
//! In Neutron, port security pins each VM port's frames to the port's MAC; what a message says
//! about its sender (a DUID-LL, `chaddr`, a relay's option 79) is whatever the sender chose to
//! write. So where the shell saw the frame, its source MAC is who the sender is.

use crate::model::MacAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The frame was seen; this is its source MAC.
    Seen(MacAddr),
    /// The shell watches the link, yet did not see the frame (lost to a full queue under a
    /// flood): the sender cannot be vouched for.
    Missed,
    /// The shell did not look (DHCPv4 requests that are not relayed: answered by `chaddr`, as
    /// dnsmasq does) or cannot (no packet socket): messages are taken at their word.
    Unknown,
}
