//! dhclient asked for (nearly) every DHCPv4 option code, each as raw bytes, so that a hook sees
//! everything a server sends: the differential test (against dnsmasq) and the status test
//! (`explain` against what dhclient received) both compare option by option.
//!
//! Codes dhclient itself interprets keep their names: 1, 3, 28, 51, 54, 58, 59 (it needs their
//! types), 12 and 15 (it discards "suspect" raw host and domain names). Protocol codes (50, 52,
//! 53, 55, 57, 61) and 175 (iPXE's, sent by the client) are not requested.
//!
//! Declared from a test file with `#[path = "common/dhclient.rs"] mod dhclient;`.

#![allow(dead_code)]

pub const NAMED: [(u8, &str); 9] = [
    (1, "subnet-mask"),
    (3, "routers"),
    (12, "host-name"),
    (15, "domain-name"),
    (28, "broadcast-address"),
    (51, "dhcp-lease-time"),
    (54, "dhcp-server-identifier"),
    (58, "dhcp-renewal-time"),
    (59, "dhcp-rebinding-time"),
];

pub const NOT_REQUESTED: [u8; 8] = [0, 50, 52, 53, 55, 57, 61, 175];

/// The codes asked for, in order.
pub fn requested() -> Vec<u8> {
    (1u8..=254).filter(|c| !NOT_REQUESTED.contains(c)).collect()
}

/// dhclient.conf lines declaring the raw options and asking for every requested code, with
/// `timeout_secs` to get a lease.
pub fn request_all_conf(timeout_secs: u64) -> String {
    let mut conf = String::new();
    let mut request = Vec::new();
    for code in requested() {
        match NAMED.iter().find(|(c, _)| *c == code) {
            Some((_, n)) => request.push(n.to_string()),
            None => {
                conf.push_str(&format!(
                    "option raw{code} code {code} = array of unsigned integer 8;\n"
                ));
                request.push(format!("raw{code}"));
            }
        }
    }
    conf.push_str(&format!(
        "timeout {timeout_secs};\nretry 60;\ninitial-interval 1;\nrequest {};\n",
        request.join(", ")
    ));
    conf
}

/// dhclient's hook variable for an option code.
pub fn var(code: u8) -> String {
    if code == 53 {
        return "new_dhcp_message_type".into();
    }
    match NAMED.iter().find(|(c, _)| *c == code) {
        Some((_, n)) => format!("new_{}", n.replace('-', "_")),
        None => format!("new_raw{code}"),
    }
}
