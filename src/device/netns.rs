//! Named network namespaces (`/var/run/netns/<name>`, shared with `ip netns`) and running code
//! inside them.
//!
//! `setns(2)` changes the network namespace of the calling *thread* only, so code that must run
//! inside a namespace runs on a dedicated short-lived std thread ([`in_netns`]), never on a
//! tokio worker. A socket keeps the namespace it was created in: a netlink socket (or a DHCP
//! socket) created on such a thread can then be driven from any task.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use netns_rs::NetNs;
use tokio::sync::oneshot;

use super::DeviceError;

/// Where named namespaces live (`ip netns` and netns-rs agree on it).
pub const NETNS_DIR: &str = "/var/run/netns";
/// `NSFS_MAGIC` from `<linux/magic.h>`: `statfs` of a mounted namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// netns-rs makes `/var/run/netns` a shared mount point on every create; two threads doing that
/// at once could stack two bind mounts. One create at a time within this process.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` on a namespace worker thread that has entered the named network namespace and
/// returns what it returns. Sockets `f` creates belong to that namespace for their whole life.
///
/// To create a tokio-registered socket inside `f`, capture `tokio::runtime::Handle::current()`
/// before the call and `enter()` it inside `f`.
pub async fn in_netns<T, F>(ns: &str, f: F) -> Result<T, DeviceError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    check_namespace_name(ns)?;
    let (tx, rx) = oneshot::channel();
    let name = ns.to_owned();
    let job: Job = Box::new(move || {
        let result = enter_namespace(&name).and_then(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
                DeviceError::Thread {
                    namespace: name,
                    reason: "the closure panicked".into(),
                }
            })
        });
        // Delivered once the worker is back home. The receiver only disappears if the caller
        // was cancelled; nothing to do then.
        let deliver: Deliver = Box::new(move || drop(tx.send(result)));
        deliver
    });
    workers()
        .and_then(|w| w.submit(job))
        .map_err(|source| DeviceError::Io {
            namespace: ns.to_owned(),
            op: "spawn namespace worker thread".into(),
            source,
        })?;
    rx.await.map_err(|_| DeviceError::Thread {
        namespace: ns.to_owned(),
        reason: "the namespace worker stopped".into(),
    })?
}

/// A job runs inside its namespace and returns how to hand its result to the caller, which the
/// worker does after returning to the agent's namespace: when a caller has its result, no
/// worker is left inside that namespace.
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

/// Long-lived threads that run [`in_netns`] jobs. A thread per job cost ~4 thread spawns per
/// network at start (hundreds of networks at a restart); `setns` itself is cheap. After each
/// job a worker returns to the agent's own namespace, so it never keeps a deleted namespace
/// (and the devices in it) alive.
struct Workers {
    queue: std::sync::mpsc::Sender<Job>,
    jobs: Arc<Mutex<std::sync::mpsc::Receiver<Job>>>,
    /// The agent's own network namespace, opened once.
    home: Arc<std::fs::File>,
    live: Arc<AtomicUsize>,
}

/// Namespace jobs are short (socket creation, sysctl writes, netlink sockets); a few workers
/// let the configuration of several networks overlap.
const WORKERS: usize = 8;

static WORKERS_POOL: std::sync::OnceLock<Result<Workers, String>> = std::sync::OnceLock::new();

/// The pool. Creating it only fails without `/proc`; every job then fails with that reason.
fn workers() -> io::Result<&'static Workers> {
    WORKERS_POOL
        .get_or_init(Workers::new)
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))
}

impl Workers {
    fn new() -> Result<Workers, String> {
        let home = std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| format!("open /proc/self/ns/net: {e}"))?;
        let (queue, rx) = std::sync::mpsc::channel::<Job>();
        Ok(Workers {
            queue,
            jobs: Arc::new(Mutex::new(rx)),
            home: Arc::new(home),
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Queues a job, first starting workers up to [`WORKERS`]. Workers are started here, by
    /// callers that never leave the agent's namespace, because a thread starts in the namespace
    /// of the thread that created it.
    fn submit(&self, job: Job) -> io::Result<()> {
        loop {
            let n = self.live.load(Ordering::Acquire);
            if n >= WORKERS {
                break;
            }
            if self
                .live
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            if let Err(e) = self.spawn_worker() {
                // Without any worker the job would wait forever; with some, it just waits longer.
                if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                    return Err(e);
                }
                break;
            }
        }
        self.queue
            .send(job)
            .map_err(|_| io::Error::other("namespace workers unavailable"))
    }

    fn spawn_worker(&self) -> io::Result<()> {
        let jobs = self.jobs.clone();
        let home = self.home.clone();
        let live = self.live.clone();
        std::thread::Builder::new()
            .name("netns-worker".into())
            .spawn(move || loop {
                let job = {
                    let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
                    rx.recv()
                };
                let Ok(job) = job else { return };
                let deliver = job();
                let home_result = go_home(&home);
                deliver();
                if let Err(e) = home_result {
                    // Staying would pin whatever namespace the job entered; the next job
                    // submitted starts a replacement.
                    live.fetch_sub(1, Ordering::AcqRel);
                    tracing::error!(error = %e, "namespace worker cannot return to the agent's namespace; ending it");
                    return;
                }
            })
            .map(drop)
    }
}

/// A thread made by [`on_batch_threads`] for one batch: the only threads besides the pool's
/// that may enter namespaces, because they end with the batch.
pub struct BatchThread(());

impl BatchThread {
    /// Moves this thread into the named namespace, until the next `enter` or the batch's end.
    pub fn enter(&self, ns: &str) -> Result<(), DeviceError> {
        check_namespace_name(ns)?;
        enter_namespace(ns)
    }
}

/// Moves the calling thread into the named namespace (its name already checked).
fn enter_namespace(ns: &str) -> Result<(), DeviceError> {
    NetNs::get(ns)
        .map_err(|e| (e, "open"))
        .and_then(|netns| netns.enter().map_err(|e| (e, "enter (setns)")))
        .map_err(|(source, op)| DeviceError::Namespace {
            namespace: ns.to_owned(),
            op,
            source,
        })
}

/// Runs `job` for every item on up to `threads` threads made for this call ([`crate::par`]),
/// each job free to [`BatchThread::enter`] a namespace, and returns the results in item order.
///
/// For batches of short namespace jobs, such as a restart serving hundreds of namespaces
/// again: there, handing each job to the [`in_netns`] pool and its result back to a task cost
/// several times the job itself (two wake-ups a job on a busy 2-core host), and the pool's
/// threads compete with the task that consumes the results. Blocks the caller until every job
/// has run. The threads end with the call, so none keeps a namespace alive; a job that panics
/// becomes that item's error.
pub fn on_batch_threads<T, R, F>(
    items: Vec<T>,
    threads: usize,
    job: F,
) -> Vec<Result<R, DeviceError>>
where
    T: Send,
    R: Send,
    F: Fn(&BatchThread, T) -> R + Sync,
{
    crate::par::map("netns-batch", items, threads, |item| {
        job(&BatchThread(()), item)
    })
    .into_iter()
    .map(|r| {
        r.map_err(|e| DeviceError::Thread {
            namespace: "(batch)".into(),
            reason: e.to_string(),
        })
    })
    .collect()
}

fn go_home(home: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsFd;
    Ok(rustix::thread::move_into_link_name_space(
        home.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?)
}

/// Path of a named namespace.
pub fn namespace_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

/// Names that are safe as a file name in [`NETNS_DIR`].
pub(crate) fn check_namespace_name(ns: &str) -> Result<(), DeviceError> {
    let reason = if ns.is_empty() {
        "empty"
    } else if ns.len() > 255 {
        "longer than 255 bytes"
    } else if ns == "." || ns == ".." || ns.contains(['/', '\0']) {
        "not a valid file name"
    } else {
        return Ok(());
    };
    Err(DeviceError::InvalidName {
        what: "namespace",
        name: ns.to_owned(),
        reason,
    })
}

/// Whether `path` is a mounted namespace (not a leftover empty file from a failed create).
fn is_mounted_namespace(path: &Path) -> bool {
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == NSFS_MAGIC)
}

/// Whether the named namespace exists (and is mounted).
pub async fn namespace_exists(ns: &str) -> Result<bool, DeviceError> {
    check_namespace_name(ns)?;
    let path = namespace_path(ns);
    blocking(ns, "check namespace", move || {
        Ok(is_mounted_namespace(&path))
    })
    .await
}

/// Creates the named namespace unless it exists. Returns whether it was created. A stale,
/// unmounted file of that name (left by an interrupted create) is replaced.
pub async fn ensure_namespace(ns: &str) -> Result<bool, DeviceError> {
    check_namespace_name(ns)?;
    let name = ns.to_owned();
    let res = tokio::task::spawn_blocking(move || {
        let _guard = CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = namespace_path(&name);
        if is_mounted_namespace(&path) {
            return Ok(false);
        }
        if path.exists() {
            tracing::warn!(namespace = %name, "replacing stale unmounted namespace file");
            std::fs::remove_file(&path).map_err(|source| DeviceError::Io {
                namespace: name.clone(),
                op: format!("remove stale {}", path.display()),
                source,
            })?;
        }
        NetNs::new(&name)
            .map(|_| true)
            .map_err(|source| DeviceError::Namespace {
                namespace: name.clone(),
                op: "create",
                source,
            })
    })
    .await;
    join(ns, res)?
}

/// Removes the named namespace if it exists (unmount + unlink). Processes or sockets still
/// inside keep it alive anonymously; the name is gone either way.
pub async fn delete_namespace(ns: &str) -> Result<bool, DeviceError> {
    check_namespace_name(ns)?;
    let name = ns.to_owned();
    let res = tokio::task::spawn_blocking(move || {
        let path = namespace_path(&name);
        if !is_mounted_namespace(&path) {
            if path.exists() {
                let _ = std::fs::remove_file(&path);
            }
            return Ok(false);
        }
        let netns = NetNs::get(&name).map_err(|source| DeviceError::Namespace {
            namespace: name.clone(),
            op: "open",
            source,
        })?;
        netns
            .remove()
            .map(|_| true)
            .map_err(|source| DeviceError::Namespace {
                namespace: name.clone(),
                op: "delete",
                source,
            })
    })
    .await;
    join(ns, res)?
}

/// Names of existing `qdhcp-*` namespaces, sorted.
pub async fn list_managed_namespaces() -> Result<Vec<String>, DeviceError> {
    blocking(NETNS_DIR, "list namespaces", || {
        let entries = match std::fs::read_dir(NETNS_DIR) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                if name.starts_with("qdhcp-") && is_mounted_namespace(&entry.path()) {
                    out.push(name.to_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    })
    .await
}

/// What the namespace looks like after [`prepare_sysctls`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct NsSysctls {
    /// `/proc/sys/net/ipv6` exists in the namespace (IPv6 not disabled on the host).
    pub ipv6: bool,
}

/// Namespace-wide sysctls, written before any device is plugged:
/// - `net.ipv4.ip_nonlocal_bind=1` (Neutron);
/// - `net.ipv4.conf.all.promote_secondaries=1` (ours: converging addresses adds the new ones
///   before removing the old ones, and removing a primary IPv4 address would otherwise take the
///   secondaries of the same subnet with it);
/// - `net.ipv6.conf.default.accept_ra=0` when IPv6 is enabled (Neutron), so the DHCP device
///   never installs routes from router advertisements.
pub(crate) async fn prepare_sysctls(ns: &str) -> Result<NsSysctls, DeviceError> {
    let owned = ns.to_owned();
    in_netns(ns, move || {
        write_sysctl("net/ipv4/ip_nonlocal_bind", "1")?;
        write_sysctl("net/ipv4/conf/all/promote_secondaries", "1")?;
        let ipv6 = Path::new("/proc/sys/net/ipv6").exists();
        if ipv6 {
            write_sysctl("net/ipv6/conf/default/accept_ra", "0")?;
        }
        Ok(NsSysctls { ipv6 })
    })
    .await?
    .map_err(|(key, source)| sysctl_error(&owned, key, source))
}

/// `net.ipv6.conf.<dev>.accept_ra=0` inside the namespace.
pub(crate) async fn disable_accept_ra(ns: &str, dev: &str) -> Result<(), DeviceError> {
    let key = format!("net/ipv6/conf/{dev}/accept_ra");
    let owned = ns.to_owned();
    in_netns(ns, move || write_sysctl(&key, "0"))
        .await?
        .map_err(|(key, source)| sysctl_error(&owned, key, source))
}

fn write_sysctl(key: &str, value: &str) -> Result<(), (String, io::Error)> {
    let path = format!("/proc/sys/{key}");
    match std::fs::read_to_string(&path) {
        Ok(cur) if cur.trim() == value => Ok(()),
        _ => std::fs::write(&path, value).map_err(|e| (key.replace('/', "."), e)),
    }
}

fn sysctl_error(ns: &str, key: String, source: io::Error) -> DeviceError {
    DeviceError::Io {
        namespace: ns.to_owned(),
        op: format!("set sysctl {key}"),
        source,
    }
}

/// A route-netlink connection whose socket lives in one namespace; the connection task runs on
/// the current tokio runtime and is stopped when this is dropped.
pub(crate) struct Netlink {
    pub handle: rtnetlink::Handle,
    /// `qdhcp-…`, or [`ROOT_NS`] for the agent's own namespace; used in error messages.
    pub ns: String,
    task: tokio::task::JoinHandle<()>,
}

/// Label of the agent's own namespace in errors and logs.
pub const ROOT_NS: &str = "root namespace";

impl Netlink {
    /// Connection in the namespace the agent runs in.
    pub async fn root() -> Result<Netlink, DeviceError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(|source| DeviceError::Io {
                namespace: ROOT_NS.into(),
                op: "open netlink socket".into(),
                source,
            })?;
        Ok(Netlink {
            handle,
            ns: ROOT_NS.into(),
            task: tokio::spawn(conn),
        })
    }

    /// Connection whose socket is created inside the named namespace.
    pub async fn in_namespace(ns: &str) -> Result<Netlink, DeviceError> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _unsolicited) = in_netns(ns, move || {
            // The socket registers with the reactor of the runtime entered here.
            let _enter = rt.enter();
            rtnetlink::new_connection()
        })
        .await?
        .map_err(|source| DeviceError::Io {
            namespace: ns.to_owned(),
            op: "open netlink socket".into(),
            source,
        })?;
        Ok(Netlink {
            handle,
            ns: ns.to_owned(),
            task: tokio::spawn(conn),
        })
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn blocking<T, F>(ns: &str, op: &'static str, f: F) -> Result<T, DeviceError>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let res = tokio::task::spawn_blocking(f).await;
    join(ns, res)?.map_err(|source| DeviceError::Io {
        namespace: ns.to_owned(),
        op: op.into(),
        source,
    })
}

fn join<T>(ns: &str, res: Result<T, tokio::task::JoinError>) -> Result<T, DeviceError> {
    res.map_err(|e| DeviceError::Thread {
        namespace: ns.to_owned(),
        reason: format!("blocking task failed: {e}"),
    })
}

/// Opens `/var/run/netns/<ns>` off the tokio workers (a blocking open).
pub(crate) async fn open_netns(ns: &str) -> Result<NetNs, DeviceError> {
    let owned = ns.to_owned();
    tokio::task::spawn_blocking(move || NetNs::get(&owned).map_err(|e| (owned, e)))
        .await
        .map_err(|e| DeviceError::Thread {
            namespace: ns.to_owned(),
            reason: format!("blocking task failed: {e}"),
        })?
        .map_err(|(namespace, source)| DeviceError::Namespace {
            namespace,
            op: "open",
            source,
        })
}
