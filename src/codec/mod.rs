//! DHCP option tables and their encodings (DHCPv4 in [`options`], DHCPv6 in [`options6`]):
//! names and codes as dnsmasq knows them, values parsed from Neutron's `extra_dhcp_opts` and
//! encoded for the wire. Pure: the views encode with it, the responders and the explain
//! endpoint decode with it.

pub mod options;
pub mod options6;
