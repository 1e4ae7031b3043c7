//! The pure core of the DNS service: one query in, a reply (or a decision) out, no I/O.
//!
//! What dnsmasq does under Neutron's command line (reference §9.9), for one network:
//! - a name of the network's `addn_hosts` (or its address, for PTR) asked for a type it has
//!   records of: answered here, authoritatively, TTL 0;
//! - anything else: forwarded when the network has upstream servers, else REFUSED;
//! - a message that is not a query (a response, garbage): dropped and counted.
//!
//! Parsing and building use hickory-proto; a reply echoes the question as asked (case
//! included) and appends answer records encoded when the view was built ([`DnsNames`]).

use std::sync::OnceLock;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, EncodedSize,
};

use crate::view::names::{key_of, DnsNames, EncodedRr, Lookup, MAX_KEY};

/// Largest reply over UDP to a query without EDNS (RFC 1035 §4.2.1).
pub const PLAIN_UDP_MAX: usize = 512;
/// The UDP payload size we announce and cap replies at (dnsmasq's `edns-packet-max` default,
/// the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Largest message over TCP (two-octet length prefix).
pub const TCP_MAX: usize = 65535;

/// What became of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A reply is in the output buffer.
    Reply(Answered),
    /// Not a local name and the network has upstream servers: forward the query as received.
    Forward,
    /// Dropped: not a well-formed query.
    Malformed(&'static str),
}

/// Which kind of reply was written; for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// A local name.
    Local,
    /// Not a local name and nowhere to forward it: REFUSED.
    Refused,
    /// A query we do not serve (another opcode, several questions): an error code.
    Error,
}

/// How the query came, which bounds the reply's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers `req` from `names` into `out` (cleared first). `forwarding`: the network has
/// upstream servers.
pub fn respond(
    req: &[u8],
    names: &DnsNames,
    forwarding: bool,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome {
    out.clear();
    let mut dec = BinDecoder::new(req);
    let Ok(header) = Header::read(&mut dec) else {
        return Outcome::Malformed("shorter than a DNS header");
    };
    if header.message_type != MessageType::Query {
        return Outcome::Malformed("a response, not a query");
    }
    let reply = Reply {
        header: &header,
        forwarding,
    };
    if header.op_code != OpCode::Query {
        reply.error(out, &[], ResponseCode::NotImp);
        return Outcome::Reply(Answered::Error);
    }
    if header.counts.queries != 1 {
        reply.error(out, &[], ResponseCode::FormErr);
        return Outcome::Reply(Answered::Error);
    }
    let Ok(query) = Query::read(&mut dec) else {
        return Outcome::Malformed("unreadable question");
    };
    let question = &req[Header::LEN..dec.index()];
    let edns = match read_edns(&mut dec, &header.counts) {
        Ok(edns) => edns,
        Err(why) => return Outcome::Malformed(why),
    };
    let limit = match (transport, edns) {
        (Transport::Tcp, _) => TCP_MAX,
        (Transport::Udp, None) => PLAIN_UDP_MAX,
        (Transport::Udp, Some(payload)) => {
            usize::from(payload.clamp(PLAIN_UDP_MAX as u16, EDNS_PAYLOAD))
        }
    };
    let local = if query.query_class() == DNSClass::IN {
        let mut buf = [0; MAX_KEY];
        match key_of(query.name(), &mut buf) {
            Some(key) => names.lookup(key, query.query_type()),
            None => Lookup::Unknown,
        }
    } else {
        Lookup::Unknown
    };
    match local {
        Lookup::Local(records) => {
            reply.write(
                out,
                question,
                ResponseCode::NoError,
                records,
                edns.is_some(),
                limit,
            );
            Outcome::Reply(Answered::Local)
        }
        Lookup::Unknown if forwarding => Outcome::Forward,
        Lookup::Unknown => {
            reply.write(
                out,
                question,
                ResponseCode::Refused,
                &[],
                edns.is_some(),
                limit,
            );
            Outcome::Reply(Answered::Refused)
        }
    }
}

/// The requestor's UDP payload size if the query carries an EDNS OPT record (RFC 6891).
fn read_edns(dec: &mut BinDecoder<'_>, counts: &HeaderCounts) -> Result<Option<u16>, &'static str> {
    if counts.additionals == 0 {
        return Ok(None);
    }
    let mut edns = None;
    let records = u32::from(counts.answers) + u32::from(counts.authorities);
    for i in 0..records + u32::from(counts.additionals) {
        let record = Record::read(dec).map_err(|_| "unreadable record")?;
        if i >= records && record.record_type() == RecordType::OPT {
            if edns.is_some() {
                return Err("two OPT records");
            }
            edns = Some(u16::from(record.dns_class));
        }
    }
    Ok(edns)
}

struct Reply<'a> {
    header: &'a Header,
    forwarding: bool,
}

impl Reply<'_> {
    fn error(&self, out: &mut Vec<u8>, question: &[u8], rcode: ResponseCode) {
        self.write(out, question, rcode, &[], false, PLAIN_UDP_MAX);
    }

    /// Header, the question as asked, the answers that fit within `limit` (TC set if some do
    /// not), and our OPT record if the query had one.
    fn write(
        &self,
        out: &mut Vec<u8>,
        question: &[u8],
        rcode: ResponseCode,
        answers: &[EncodedRr],
        edns: bool,
        limit: usize,
    ) {
        let opt = if edns { opt_record() } else { &[] };
        let mut room = limit.saturating_sub(Header::LEN + question.len() + opt.len());
        let fitting = answers
            .iter()
            .take_while(|rr| {
                let fits = rr.bytes.len() <= room;
                room = room.saturating_sub(rr.bytes.len());
                fits
            })
            .count();
        let mut metadata = Metadata::response_from_request(&self.header.metadata);
        metadata.authoritative = rcode == ResponseCode::NoError;
        metadata.recursion_available = self.forwarding;
        metadata.truncation = fitting < answers.len();
        metadata.response_code = rcode;
        let header = Header {
            metadata,
            counts: HeaderCounts {
                queries: u16::from(!question.is_empty()),
                answers: fitting as u16,
                authorities: 0,
                additionals: u16::from(edns),
            },
        };
        let mut enc = BinEncoder::new(out);
        // Writing into a Vec cannot fail: the encoder only refuses to pass a size limit,
        // and none is set.
        let written = header
            .emit(&mut enc)
            .and_then(|()| enc.emit_vec(question))
            .and_then(|()| {
                answers[..fitting]
                    .iter()
                    .try_for_each(|rr| enc.emit_vec(&rr.bytes))
            })
            .and_then(|()| enc.emit_vec(opt));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write a DNS reply");
            out.clear();
        }
    }
}

/// Our OPT record (payload [`EDNS_PAYLOAD`], no options), encoded once.
fn opt_record() -> &'static [u8] {
    static OPT: OnceLock<Vec<u8>> = OnceLock::new();
    OPT.get_or_init(|| {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        let mut buf = Vec::new();
        let mut enc = BinEncoder::new(&mut buf);
        match edns.emit(&mut enc) {
            Ok(()) => buf,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the EDNS OPT record");
                Vec::new()
            }
        }
    })
}

/// The id and question of a DNS message (query or response), for matching an upstream answer
/// to the query it answers.
pub fn id_and_question(msg: &[u8]) -> Option<(Header, Query)> {
    let mut dec = BinDecoder::new(msg);
    let header = Header::read(&mut dec).ok()?;
    if header.counts.queries != 1 {
        return None;
    }
    let query = Query::read(&mut dec).ok()?;
    Some((header, query))
}

/// A SERVFAIL for `req` (the upstream servers did not answer), into `out`.
pub fn servfail(req: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut dec = BinDecoder::new(req);
    let Ok(header) = Header::read(&mut dec) else {
        return false;
    };
    if header.counts.queries != 1 || Query::read(&mut dec).is_err() {
        return false;
    }
    let question = &req[Header::LEN..dec.index()];
    let reply = Reply {
        header: &header,
        forwarding: true,
    };
    reply.write(
        out,
        question,
        ResponseCode::ServFail,
        &[],
        false,
        PLAIN_UDP_MAX,
    );
    !out.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RData};

    fn names() -> DnsNames {
        DnsNames::build(&crate::view::names::tests::network(), "openstacklocal")
    }

    fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn ask(req: &[u8], forwarding: bool) -> (Outcome, Option<Message>) {
        let mut out = Vec::new();
        let o = respond(req, &names(), forwarding, Transport::Udp, &mut out);
        (
            o,
            (!out.is_empty()).then(|| Message::from_vec(&out).unwrap()),
        )
    }

    #[test]
    fn local_names_are_answered_with_the_question_as_asked() {
        let req = query("Web-1.Example.Org.", RecordType::A, false);
        let (o, m) = ask(&req, false);
        assert_eq!(o, Outcome::Reply(Answered::Local));
        let m = m.unwrap();
        assert_eq!(m.metadata.id, u16::from_be_bytes([req[0], req[1]]));
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries[0].name().to_string(), "Web-1.Example.Org.");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].name.to_string(), "Web-1.Example.Org.");
        assert_eq!(m.answers[0].ttl, 0);
        assert_eq!(m.answers[0].data, RData::A("10.0.0.10".parse().unwrap()));

        let (_, m) = ask(&query("host-10-0-0-1", RecordType::A, true), false);
        let m = m.unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD));
        // A local name without records of the type is not answered here (as dnsmasq).
        let (o, _) = ask(&query("host-10-0-0-1", RecordType::AAAA, true), true);
        assert_eq!(o, Outcome::Forward);
    }

    #[test]
    fn ptr_answers_the_fqdn() {
        let (_, m) = ask(
            &query("10.0.0.10.in-addr.arpa.", RecordType::PTR, false),
            false,
        );
        let m = m.unwrap();
        assert_eq!(m.answers.len(), 1);
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_string(), "web-1.example.org."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_names_are_forwarded_or_refused() {
        let req = query("example.com.", RecordType::A, false);
        assert_eq!(ask(&req, true), (Outcome::Forward, None));
        let (o, m) = ask(&req, false);
        assert_eq!(o, Outcome::Reply(Answered::Refused));
        let m = m.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.queries.len(), 1);
    }

    #[test]
    fn garbage_and_responses_are_dropped() {
        assert!(matches!(
            ask(b"\x01\x02\x03", false).0,
            Outcome::Malformed(_)
        ));
        let mut req = query("web-1.", RecordType::A, false);
        req[2] |= 0x80;
        assert!(matches!(ask(&req, false).0, Outcome::Malformed(_)));
        let req = query("web-1.", RecordType::A, false);
        assert!(matches!(
            ask(&req[..req.len() - 2], false).0,
            Outcome::Malformed(_)
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small deterministic generator: the fuzz target covers this properly.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = query("web-1.example.org.", RecordType::A, true);
        let names = names();
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let mut req = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % req.len();
                req[i] = next() as u8;
            }
            req.truncate((next() as usize) % (req.len() + 1));
            let _ = respond(&req, &names, next() % 2 == 0, Transport::Udp, &mut out);
            assert!(out.len() <= EDNS_PAYLOAD as usize);
        }
    }

    #[test]
    fn a_long_answer_is_truncated_over_udp_and_whole_over_tcp() {
        let many: Vec<_> = (10..90)
            .map(|i| serde_json::json!({"subnet_id": "s4", "ip_address": format!("10.0.0.{i}")}))
            .collect();
        let net = crate::model::Network::from_json(&serde_json::json!({
            "id": "n", "subnets": [{"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24"}],
            "ports": [{"id": "big", "mac_address": "fa:16:3e:00:00:0c",
                       "device_owner": "compute:nova", "fixed_ips": many,
                       "dns_assignment": (10..90).map(|i| serde_json::json!(
                           {"ip_address": format!("10.0.0.{i}"), "hostname": "big",
                            "fqdn": "big.example.org."})).collect::<Vec<_>>()}]
        }))
        .unwrap();
        let names = DnsNames::build(&net, "d");
        let mut out = Vec::new();
        let req = query("big.example.org.", RecordType::A, false);
        respond(&req, &names, false, Transport::Udp, &mut out);
        assert!(out.len() <= PLAIN_UDP_MAX);
        let m = Message::from_vec(&out).unwrap();
        assert!(
            m.metadata.truncation,
            "TC set: the client asks again over TCP"
        );
        assert!(m.answers.len() < 80);
        let req = query("big.example.org.", RecordType::A, true);
        respond(&req, &names, false, Transport::Udp, &mut out);
        assert!(out.len() <= EDNS_PAYLOAD as usize);
        respond(&req, &names, false, Transport::Tcp, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 80);
    }
}
