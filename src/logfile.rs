//! The log file, reopened on SIGHUP so that logrotate can move it away.
//!
//! oslo.log's `WatchedFileHandler` notices a rotated file by itself; the convention for a
//! daemon without one is to reopen on SIGHUP (the packaged logrotate rule sends it). Writers
//! load the current file through an atomic pointer, so a log line never waits for a reopen and
//! no lock is taken per line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// An append-only log file that can be reopened at its path.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    current: Arc<ArcSwap<File>>,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_owned(),
            current: Arc::new(ArcSwap::from_pointee(open_append(path)?)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (a new file if logrotate moved the old one away) and sends later
    /// lines there. On failure the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        self.current.store(Arc::new(file));
        Ok(())
    }
}

/// Installs the process's log subscriber: to `file` (no colours) or to stderr, at debug level
/// with `debug`; `RUST_LOG` overrides the level. Returns the file, for reopening on SIGHUP.
pub fn init_tracing(debug: bool, file: Option<&Path>) -> Result<Option<LogFile>, OpenError> {
    // lapin logs every returned reply at WARN and a dropped connection at ERROR; our transport
    // reports both itself, once and with context.
    let default = if debug {
        "debug,lapin=info,lapin::returned_messages=error"
    } else {
        "info,lapin=warn,lapin::returned_messages=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let file = LogFile::open(path).map_err(|source| OpenError {
                path: path.to_owned(),
                source,
            })?;
            builder.with_ansi(false).with_writer(file.clone()).init();
            Ok(Some(file))
        }
        None => {
            builder.with_writer(std::io::stderr).init();
            Ok(None)
        }
    }
}

/// The log file cannot be opened: the start stops (the operator asked for a file).
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {}: {source}", path.display())]
pub struct OpenError {
    path: PathBuf,
    source: io::Error,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// One log line's writer: the file current when the line began.
pub struct LineWriter(Arc<File>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn a_rotated_file_is_replaced_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let log = LogFile::open(&path).unwrap();
        log.make_writer().write_all(b"before\n").unwrap();
        let rotated = dir.path().join("agent.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // Until the reopen, lines still go to the moved file (as with any open descriptor).
        log.make_writer().write_all(b"moved\n").unwrap();
        log.reopen().unwrap();
        log.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before\nmoved\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("agent.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&sub, dir.path().join("gone")).unwrap();
        assert!(log.reopen().is_err());
        log.make_writer().write_all(b"still\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("gone/agent.log")).unwrap(),
            "still\n"
        );
    }
}
