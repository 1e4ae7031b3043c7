//! The standalone networks file, kept parsed between reloads so that a reload re-parses only
//! what an edit touched.
//!
//! A reload compares the new text with the last accepted one: everything before the first and
//! after the last differing byte is unchanged, so only the networks (or, when the edit lies
//! inside one network's `ports` list, only the ports) overlapping the difference are parsed
//! again; the others, and their `Arc<Port>`s, are reused as they are. Whenever the edit cannot
//! be confined to whole elements of one array, or anything at all fails, the whole file is
//! parsed instead, so the result (networks or error) is always exactly that of a full parse.
//!
//! A full parse types the text directly (serde derive); only when that fails is the file parsed
//! again through `serde_json::Value` by [`standalone::parse`], whose errors name the file, the
//! network, the object and the field.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agent::DesiredNetwork;
use crate::model::{Network, NetworkHead, Port, OWNER_DHCP};
use crate::standalone::jsonscan;
use crate::standalone::{self, Rejected, StandaloneError};

/// Where one network lies in the text.
#[derive(Clone, Debug)]
struct NetSpan {
    span: Range<usize>,
    /// The `ports` list, relative to `span.start`; `None` when it is absent or `null` (an edit
    /// there re-parses the whole network).
    ports: Option<PortsSpan>,
}

#[derive(Clone, Debug)]
struct PortsSpan {
    /// Between the brackets.
    content: Range<usize>,
    items: Vec<Range<usize>>,
}

/// Where the networks lie in the text; `None` after a parse that needed the slow path.
#[derive(Clone, Debug)]
struct Layout {
    /// Between the brackets of the top-level list.
    content: Range<usize>,
    nets: Vec<NetSpan>,
}

/// The parsed networks file and what is needed to re-parse an edited version cheaply.
pub struct NetworksFile {
    path: PathBuf,
    host: String,
    /// The file the text was read from, kept open: see [`NetworksFile::take_replaced`].
    open: Option<File>,
    /// The ones read before, until the caller takes them.
    replaced: Vec<File>,
    /// Bytes, not `String`: only the changed part of a new text needs checking for UTF-8
    /// (the rest is known good), which saves a pass over a large file.
    text: Vec<u8>,
    /// The buffer of the text before, to read the next one into.
    spare: Vec<u8>,
    layout: Option<Layout>,
    networks: Vec<DesiredNetwork>,
    /// What the last parse refused (networks, or VM ports of networks that are served).
    rejected: Vec<Rejected>,
}

/// How a reload went, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reparsed {
    /// The text did not change.
    Unchanged,
    /// Only these many ports of one network were parsed.
    Ports(usize),
    /// Only these many networks were parsed.
    Networks(usize),
    /// The whole file was parsed.
    Full,
}

struct Parsed {
    layout: Option<Layout>,
    networks: Vec<DesiredNetwork>,
    rejected: Vec<Rejected>,
}

impl NetworksFile {
    /// Reads and parses the whole file.
    pub fn load(path: &Path, host: &str) -> Result<NetworksFile, StandaloneError> {
        let mut text = Vec::new();
        let open = read(path, &mut text)?;
        let mut file = NetworksFile::parse(text, path, host)?;
        file.open = Some(open);
        Ok(file)
    }

    /// Parses `text` as the content of `path` (which only names the file in errors).
    pub fn parse(
        text: impl Into<Vec<u8>>,
        path: &Path,
        host: &str,
    ) -> Result<NetworksFile, StandaloneError> {
        let text = text.into();
        let parsed = full_parse(&text, path, host)?;
        Ok(NetworksFile {
            path: path.to_owned(),
            host: host.to_owned(),
            open: None,
            replaced: Vec::new(),
            text,
            spare: Vec::new(),
            layout: parsed.layout,
            networks: parsed.networks,
            rejected: parsed.rejected,
        })
    }

    pub fn networks(&self) -> &[DesiredNetwork] {
        &self.networks
    }

    /// What the last parse that changed anything refused, each with the error that names the
    /// file, the entry and the id; empty when everything was accepted.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// Re-reads the file; on error the previous content is kept.
    pub fn reload(&mut self) -> Result<Reparsed, StandaloneError> {
        let mut text = std::mem::take(&mut self.spare);
        let open = read(&self.path, &mut text)?;
        let how = self.update(text)?;
        self.replaced.extend(self.open.replace(open));
        Ok(how)
    }

    /// The previously read files, still open. Writers replace the file by renaming a new one
    /// over it; if nobody has the old one open, the rename frees its page cache there and
    /// then (about 0.5 ms for 500 KB), delaying the signal that announces the change. Holding
    /// it moves that cost to whoever drops these handles, once the change is served.
    pub fn take_replaced(&mut self) -> Vec<File> {
        std::mem::take(&mut self.replaced)
    }

    /// Replaces the content with `text`, parsing only what changed; on error nothing changes.
    pub fn update(&mut self, text: impl Into<Vec<u8>>) -> Result<Reparsed, StandaloneError> {
        let text = text.into();
        let p = jsonscan::common_prefix(&self.text, &text);
        if p == text.len() && p == self.text.len() {
            return Ok(Reparsed::Unchanged);
        }
        let how = match self.incremental(&text, p) {
            Some(how) => how,
            None => {
                let mut parsed = full_parse(&text, &self.path, &self.host)?;
                keep_refused(&mut parsed, &self.networks);
                self.layout = parsed.layout;
                self.networks = parsed.networks;
                self.rejected = parsed.rejected;
                Reparsed::Full
            }
        };
        // The old text's buffer is reused for the next read (no fresh pages to fault in).
        self.spare = std::mem::replace(&mut self.text, text);
        Ok(how)
    }

    /// Parses the new content from the old one, the texts sharing their first `p` bytes, and
    /// updates the networks and layout; `None` (nothing changed) when a full parse must decide.
    fn incremental(&mut self, new: &[u8], p: usize) -> Option<Reparsed> {
        let layout = self.layout.as_ref()?;
        let old = &self.text[..];
        let max_suffix = old.len().min(new.len()) - p;
        let old_end = old.len() - jsonscan::common_suffix(old, new, max_suffix);
        let delta = new.len() as isize - old.len() as isize;
        if !changed_part_is_utf8(old, new, p, shift(old_end, delta)) {
            return None;
        }
        if p < layout.content.start || old_end > layout.content.end {
            return None;
        }
        let nets = &layout.nets;
        let first = nets.partition_point(|n| n.span.end <= p);
        let last = nets.partition_point(|n| n.span.start < old_end);
        if last == first + 1 {
            let n = &nets[first];
            if let (Some(ports), Some(pr)) = (&n.ports, p.checked_sub(n.span.start)) {
                let er = old_end - n.span.start;
                if pr >= ports.content.start && er <= ports.content.end {
                    return self.reparse_ports(new, first, pr, er, delta);
                }
            }
        }
        let parsed = self.reparse_networks(new, first, last, delta)?;
        let count = parsed.networks.len() + last - first - self.networks.len();
        self.layout = parsed.layout;
        self.networks = parsed.networks;
        self.rejected = parsed.rejected;
        Some(Reparsed::Networks(count))
    }

    /// The edit lies inside the `ports` list of network `k`, between `pr` and `er` (relative to
    /// the network's start in the old text): only the ports there are parsed, and the others
    /// stay where they are.
    fn reparse_ports(
        &mut self,
        new: &[u8],
        k: usize,
        pr: usize,
        er: usize,
        delta: isize,
    ) -> Option<Reparsed> {
        let layout = self.layout.as_mut()?;
        let net = &mut layout.nets[k];
        let base = net.span.start;
        let ports = net.ports.as_mut()?;
        let items = &ports.items;
        let a = items.partition_point(|r| r.end <= pr);
        let b = items.partition_point(|r| r.start < er);
        let seg_start = if a > 0 {
            items[a - 1].end
        } else {
            ports.content.start
        };
        let seg_end = shift(
            if b < items.len() {
                items[b].start
            } else {
                ports.content.end
            },
            delta,
        );
        let ranges = jsonscan::elements(
            new,
            base + seg_start..base + seg_end,
            a > 0,
            b < items.len(),
        )?;
        let parsed: Vec<Arc<Port>> = ranges
            .iter()
            .map(|r| parse_port(&new[r.clone()]))
            .collect::<Option<_>>()?;
        let network = &self.networks[k].network;
        if parsed.iter().any(|p| network.check_port(p).is_err()) {
            return None;
        }
        let old = &network.ports;
        if old.len() != items.len() {
            return None;
        }
        // Our port is chosen among the DHCP ports: unless one came or went, it stays.
        let dhcp_changed = old[a..b]
            .iter()
            .chain(&parsed)
            .any(|p| p.device_owner == OWNER_DHCP);
        let own_port_id = if dhcp_changed {
            let kept = old[..a].iter().chain(&parsed).chain(&old[b..]);
            standalone::pick_own_port_in(kept.map(|p| &**p), &self.host)?
                .id
                .clone()
        } else {
            self.networks[k].own_port_id.clone()
        };
        // Nothing can fail from here on.
        let count = parsed.len();
        ports
            .items
            .splice(a..b, ranges.iter().map(|r| r.start - base..r.end - base));
        for r in &mut ports.items[a + count..] {
            *r = shift(r.start, delta)..shift(r.end, delta);
        }
        ports.content.end = shift(ports.content.end, delta);
        net.span.end = shift(net.span.end, delta);
        for n in &mut layout.nets[k + 1..] {
            n.span = shift(n.span.start, delta)..shift(n.span.end, delta);
        }
        layout.content.end = shift(layout.content.end, delta);
        let desired = &mut self.networks[k];
        desired.network.ports.splice(a..b, parsed);
        desired.own_port_id = own_port_id;
        Some(Reparsed::Ports(count))
    }

    /// The edit spans networks `first..last` of the old text (none: it lies between two).
    fn reparse_networks(
        &self,
        new: &[u8],
        first: usize,
        last: usize,
        delta: isize,
    ) -> Option<Parsed> {
        let layout = self.layout.as_ref()?;
        let nets = &layout.nets;
        let seg_start = if first > 0 {
            nets[first - 1].span.end
        } else {
            layout.content.start
        };
        let seg_end = shift(
            if last < nets.len() {
                nets[last].span.start
            } else {
                layout.content.end
            },
            delta,
        );
        let ranges = jsonscan::elements(new, seg_start..seg_end, first > 0, last < nets.len())?;
        let mut fresh = Vec::with_capacity(ranges.len());
        let mut spans = Vec::with_capacity(ranges.len());
        for r in &ranges {
            let (desired, span) = parse_network(new, r.clone(), &self.host)?;
            fresh.push(desired);
            spans.push(span);
        }
        let mut networks = Vec::with_capacity(first + fresh.len() + nets.len() - last);
        networks.extend_from_slice(&self.networks[..first]);
        networks.extend(fresh);
        networks.extend_from_slice(&self.networks[last..]);
        let mut seen = HashSet::with_capacity(networks.len());
        if !networks.iter().all(|d| seen.insert(d.network.id.as_str())) {
            return None;
        }
        let mut new_nets = Vec::with_capacity(networks.len());
        new_nets.extend_from_slice(&nets[..first]);
        new_nets.extend(spans);
        for n in &nets[last..] {
            new_nets.push(NetSpan {
                span: shift(n.span.start, delta)..shift(n.span.end, delta),
                ports: n.ports.clone(),
            });
        }
        let layout = Layout {
            content: layout.content.start..shift(layout.content.end, delta),
            nets: new_nets,
        };
        Some(Parsed {
            layout: Some(layout),
            networks,
            rejected: Vec::new(),
        })
    }
}

/// A network refused by the new text keeps its running configuration: the version of it that
/// was accepted before stays (a typo in one network never takes its DHCP down, as a typo that
/// breaks the whole file never does).
fn keep_refused(parsed: &mut Parsed, before: &[DesiredNetwork]) {
    let kept: Vec<DesiredNetwork> = parsed
        .rejected
        .iter()
        .filter_map(|r| r.network.as_deref())
        .filter(|id| !parsed.networks.iter().any(|d| d.network.id == *id))
        .filter_map(|id| before.iter().find(|d| d.network.id == id))
        .cloned()
        .collect();
    for d in &kept {
        tracing::warn!(network_id = %d.network.id, "network refused by the networks file: keeping its running configuration");
    }
    parsed.networks.extend(kept);
}

/// Reads the file into `text` (cleared first), returning it still open.
fn read(path: &Path, text: &mut Vec<u8>) -> Result<File, StandaloneError> {
    let err = |source| StandaloneError::Read {
        path: path.to_owned(),
        source,
    };
    text.clear();
    // Non-blocking: opening a FIFO (or a device) for reading would otherwise wait for a writer
    // with the control loop, and its signal handling, stuck in open(2).
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    // Room to grow, so that the buffers a reload alternates between are not reallocated (and
    // their pages faulted in afresh) each time the file grows by a port.
    let meta = file.metadata().map_err(err)?;
    if !meta.file_type().is_file() {
        return Err(StandaloneError::NotAFile {
            path: path.to_owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    let size = meta.len() as usize;
    text.reserve(size + size / 8 + 4096);
    file.read_to_end(text).map_err(err)?;
    Ok(file)
}

/// What a networks file that is not a regular file is, for the error.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Moves a position of the old text that lies after the edit to the new text.
fn shift(at: usize, delta: isize) -> usize {
    at.saturating_add_signed(delta)
}

/// The typed parse of the whole file, or the slow one for its error (or for what only the slow
/// one accepts, such as a repeated key).
fn full_parse(text: &[u8], path: &Path, host: &str) -> Result<Parsed, StandaloneError> {
    // The error `std::fs::read_to_string` gives.
    let text = std::str::from_utf8(text).map_err(|_| StandaloneError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })?;
    if let Some(parsed) = fast_parse(text.as_bytes(), host) {
        return Ok(parsed);
    }
    let parsed = standalone::parse(text, path, host)?;
    Ok(Parsed {
        layout: None,
        networks: parsed.networks,
        rejected: parsed.rejected,
    })
}

fn fast_parse(text: &[u8], host: &str) -> Option<Parsed> {
    let b = text;
    let open = jsonscan::skip_ws(b, 0);
    let (content, items) = jsonscan::array(b, open)?;
    if jsonscan::skip_ws(b, content.end + 1) != b.len() {
        return None;
    }
    let mut networks = Vec::with_capacity(items.len());
    let mut nets = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for (desired, span) in parse_networks(text, &items, host)? {
        if !seen.insert(desired.network.id.clone()) {
            return None;
        }
        networks.push(desired);
        nets.push(span);
    }
    Some(Parsed {
        layout: Some(Layout { content, nets }),
        networks,
        rejected: Vec::new(),
    })
}

/// Files at least this large are parsed on several cores: a start with hundreds of networks
/// (1.1 MB for 200 networks of 10 ports) waits for the parse before it serves anything.
const PARALLEL_PARSE_BYTES: usize = 256 << 10;
/// Beyond this, extra threads cost more in start-up than they save.
const MAX_PARSE_THREADS: usize = 4;

/// [`parse_network`] of every element, in order; a large file's elements are split into
/// contiguous shares parsed side by side (each network is independent of the others).
fn parse_networks(
    text: &[u8],
    items: &[Range<usize>],
    host: &str,
) -> Option<Vec<(DesiredNetwork, NetSpan)>> {
    let parse_share = |share: &[Range<usize>]| -> Option<Vec<_>> {
        share
            .iter()
            .map(|r| parse_network(text, r.clone(), host))
            .collect()
    };
    let threads = if text.len() >= PARALLEL_PARSE_BYTES {
        crate::par::threads(MAX_PARSE_THREADS).min(items.len())
    } else {
        1
    };
    if threads <= 1 {
        return parse_share(items);
    }
    let shares: Vec<_> = items.chunks(items.len().div_ceil(threads)).collect();
    let mut all = Vec::with_capacity(items.len());
    // A share that failed or whose thread panicked leaves the decision to the full parse.
    for parsed in crate::par::map("parse", shares, threads, parse_share) {
        all.extend(parsed.ok()??);
    }
    Some(all)
}

/// One network element, typed; `None` when anything is off (the full parse then decides).
fn parse_network(text: &[u8], r: Range<usize>, host: &str) -> Option<(DesiredNetwork, NetSpan)> {
    let s = std::str::from_utf8(&text[r.clone()]).ok()?;
    if jsonscan::needs_full_parser(s) {
        return None;
    }
    let head: NetworkHead = serde_json::from_str(s).ok()?;
    let b = text;
    let (ports, span) = match jsonscan::member(b, r.clone(), "ports")? {
        Some(v) if &b[v.clone()] != b"null" => {
            let (content, items) = jsonscan::array(b, v.start)?;
            let ports = items
                .iter()
                .map(|i| parse_port(&text[i.clone()]))
                .collect::<Option<Vec<_>>>()?;
            let rel = |x: &Range<usize>| x.start - r.start..x.end - r.start;
            let span = PortsSpan {
                content: rel(&content),
                items: items.iter().map(rel).collect(),
            };
            (ports, Some(span))
        }
        _ => (Vec::new(), None),
    };
    let network = Network::from_head(head, ports)?;
    // Anything the validation would refuse is left to the full parse, which says what.
    network.check().ok()?;
    if network.ports.iter().any(|p| network.check_port(p).is_err()) {
        return None;
    }
    let own_port_id = standalone::pick_own_port(&network, host)?.id.clone();
    Some((
        DesiredNetwork {
            network,
            own_port_id,
        },
        NetSpan {
            span: r,
            ports: span,
        },
    ))
}

/// Whether `new`, which shares its first `p` and its bytes from `new_end` on with `old` (valid
/// UTF-8), is valid UTF-8: whether the part between, widened to whole characters, is.
fn changed_part_is_utf8(old: &[u8], new: &[u8], p: usize, new_end: usize) -> bool {
    let continuation = |b: u8| b & 0xc0 == 0x80;
    let mut a = p;
    while a > 0 && a < old.len() && continuation(old[a]) {
        a -= 1;
    }
    let mut b = new_end;
    while b < new.len() && continuation(new[b]) {
        b += 1;
    }
    std::str::from_utf8(&new[a..b]).is_ok()
}

fn parse_port(s: &[u8]) -> Option<Arc<Port>> {
    let s = std::str::from_utf8(s).ok()?;
    if jsonscan::needs_full_parser(s) {
        return None;
    }
    serde_json::from_str::<Port>(s).ok().map(Arc::new)
}

#[cfg(test)]
mod tests;
