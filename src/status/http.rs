//! The endpoint's HTTP/1.1 shell: one listener in the root namespace, GET only, small JSON or
//! text bodies; routing here, the documents in [`super::metrics`], [`super::networks`] and
//! [`super::explain`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::query::Query;
use super::Status;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("[agent] status_listen = {addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Connections served at once; more wait in the listen backlog (a scraper and an operator's
/// CLI need a handful).
const MAX_CONNECTIONS: usize = 64;
/// A client that does not send its request headers in this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the listener (at start, so a wrong address stops the start with a clear error).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves the endpoint on `listener` until the runtime stops.
pub fn spawn(listener: TcpListener, status: Arc<Status>) -> tokio::task::JoinHandle<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(listen = ?addr, "status endpoint listening");
    tokio::spawn(accept_loop(listener, status))
}

async fn accept_loop(listener: TcpListener, status: Arc<Status>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors or the like: wait instead of spinning.
                tracing::warn!(error = %e, "status endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(route(&status, &req)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "status endpoint: connection ended");
            }
            drop(permit);
        });
    }
}

fn route(status: &Status, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    let path = req.uri().path();
    let query = Query::parse(req.uri().query().unwrap_or(""));
    match path {
        "/metrics" => match super::metrics::encode(status) {
            Ok(body) => respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode metrics\n".into(),
            ),
        },
        "/healthz" => {
            let age = status.tick_age();
            if status.healthy() {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "main loop stuck: last round {:.0} s ago\n",
                        age.as_secs_f64()
                    ),
                )
            }
        }
        "/readyz" => match status.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/v1/status" => json(StatusCode::OK, &super::networks::summary(status)),
        "/v1/networks" => json(StatusCode::OK, &super::networks::list(status)),
        "/v1/explain" => {
            let (code, doc) = super::explain::http(status, &query);
            json(code, &doc)
        }
        p => match p.strip_prefix("/v1/networks/") {
            Some(id) => match super::networks::one(status, id) {
                Some(doc) => json(StatusCode::OK, &doc),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({ "error": format!("network {id} is not served") }),
                ),
            },
            None => text(StatusCode::NOT_FOUND, "not found\n".into()),
        },
    }
}

fn respond(code: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(code, "text/plain; charset=utf-8", body)
}

fn json(code: StatusCode, doc: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    respond(code, "application/json", body)
}
