//! Root-only tests skip, with one line per suite, for contributors who run `cargo test` as an
//! ordinary user; CI runs them as root (scripts/test.sh), where nothing may skip.
//!
//! A root test starts with [`root_or_skip!`](crate::common::root_or_skip). As root it goes on,
//! and a missing tool or service then fails it loudly (the `require_*` helpers panic): a root
//! run never skips. Without root it returns at once and so passes as skipped; the first such
//! test of the binary prints one line to the real stderr (past libtest's capture) and, when
//! `NDRS_SKIPPED_FILE` names a file, appends the suite to it, so that a runner that expected
//! nothing to skip (scripts/test.sh) can fail on it.

use std::io::Write;
use std::sync::OnceLock;

/// The environment variable naming the file every skipping suite is appended to.
pub const SKIPPED_FILE_VAR: &str = "NDRS_SKIPPED_FILE";

/// What most root tests need root for, as the skip line says it ([`root_or_skip!`] without a
/// reason).
///
/// [`root_or_skip!`]: crate::common::root_or_skip
pub const NAMESPACES: &str = "network namespaces, veth pairs and bridges";

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True as root. Otherwise reports this suite as skipped, once per test binary, saying `why`
/// root is needed, and returns false: the caller returns and its test passes as skipped
/// ([`root_or_skip!`] does both).
///
/// Panics when the skip cannot be recorded in `$NDRS_SKIPPED_FILE`: a skip the runner cannot
/// see must not pass for a run.
///
/// [`root_or_skip!`]: crate::common::root_or_skip
pub fn have_root(why: &str) -> bool {
    if is_root() {
        return true;
    }
    // Once per test binary; the outcome is kept so that every root test of a suite whose skip
    // could not be recorded fails, not only the first.
    static REPORTED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = REPORTED.get_or_init(|| report_skip(why)) {
        panic!("{e}");
    }
    false
}

/// `tests/<suite>.rs`: integration tests are crates named after their file.
fn suite() -> String {
    format!("tests/{}.rs", env!("CARGO_CRATE_NAME"))
}

/// The one line on stderr and the record in `$NDRS_SKIPPED_FILE`.
fn report_skip(why: &str) -> Result<(), String> {
    let suite = suite();
    // Straight to the process's stderr: `eprintln!` would be captured and never shown for a
    // passing test.
    let _ = writeln!(
        std::io::stderr().lock(),
        "{suite}: root tests skipped, they need root ({why}); CI runs them as root \
         (scripts/test.sh)"
    );
    let Some(path) = std::env::var_os(SKIPPED_FILE_VAR) else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{suite}\n").as_bytes()))
        .map_err(|e| {
            format!(
                "{suite}: cannot record the skip in {SKIPPED_FILE_VAR}={}: {e}",
                path.to_string_lossy()
            )
        })
}

/// Returns from the calling test unless we run as root (see [`have_root`]): the first line of
/// every test that needs root. The optional argument says what for, when it is not (only)
/// [`NAMESPACES`]; one suite passes the same everywhere, since only the first skip is shown.
macro_rules! root_or_skip {
    () => {
        $crate::common::root_or_skip!($crate::common::root::NAMESPACES)
    };
    ($why:expr) => {
        if !$crate::common::have_root($why) {
            return;
        }
    };
}
pub(crate) use root_or_skip;
