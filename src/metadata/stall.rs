//! haproxy's `timeout client` for the proxy's clients: a client that stops taking an answer
//! (its window closed, so writes to it stall) for the whole timeout is cut, instead of holding
//! a connection slot and the metadata agent's connection forever.
//!
//! Only writes are timed. A client that stalls while *sending* is covered elsewhere: a head by
//! the header-read timeout, a body by `timeout_server` (the metadata agent waits for it, so
//! its answer does not come).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `io` whose writes fail with `TimedOut` once they made no progress for `timeout`.
pub struct WriteStallTimeout<T> {
    io: T,
    timeout: Duration,
    /// Armed while a write is pending, from the first `Pending` after the last progress. A
    /// write that goes through disarms it, so a flowing answer costs no timer operations.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStallTimeout<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        WriteStallTimeout {
            io,
            timeout,
            stalled: None,
        }
    }

    fn on_write<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client took no data for timeout_client",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStallTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStallTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.on_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.on_write(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes into a socket nobody reads until the write fails; returns the error kind.
    async fn write_until_error(timeout: Duration) -> io::ErrorKind {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let mut w = WriteStallTimeout::new(a, timeout);
        let chunk = vec![0u8; 64 << 10];
        loop {
            let r = std::future::poll_fn(|cx| Pin::new(&mut w).poll_write(cx, &chunk)).await;
            if let Err(e) = r {
                return e.kind();
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_that_takes_nothing_is_cut() {
        assert_eq!(
            write_until_error(Duration::from_millis(200)).await,
            io::ErrorKind::TimedOut
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_reads_slowly_but_steadily_is_not_cut() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        // Generous against a busy machine: the reader makes progress every 20 ms.
        let mut w = WriteStallTimeout::new(a, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 << 10];
            let mut total = 0usize;
            while total < (4 << 20) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                loop {
                    match b.try_read(&mut buf) {
                        Ok(0) => return total,
                        Ok(n) => total += n,
                        Err(_) => break,
                    }
                }
            }
            total
        });
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        while sent < (4 << 20) {
            let n = std::future::poll_fn(|cx| Pin::new(&mut w).poll_write(cx, &chunk))
                .await
                .expect("steady reader must not be cut");
            sent += n;
        }
        drop(w);
        assert!(reader.await.unwrap() > 0);
    }
}
