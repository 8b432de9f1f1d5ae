//! [`HttpServer`]: how every HTTP listener of lettergate serves (the MESH endpoint and HTTP
//! capture, `sim serve`'s API), bounded by the [`Limits`]: a header timeout, a body deadline,
//! an idle timeout, a connection limit and a shutdown deadline. [`Idle`] is the idle timeout
//! on a stream, which the MLLP listeners use too.
//!
//! Design constraints:
//! - A peer that opens connections and sends nothing, half a header, or a body a byte a minute
//!   must not keep a run (or `sim serve`) from ending: every connection is closed when its
//!   timeout passes, and a stopping server waits for the connections under way at most
//!   `shutdown_deadline`, then closes them.
//! - Past `max_connections` open connections, a new one is answered `503` at once and closed,
//!   rather than left waiting in the backlog with nothing said.
//! - hyper does the HTTP (its own header-read timeout, on tokio's timer); the body deadline
//!   wraps each request body, so a handler reading it sees an error it can record.

use super::limits::Limits;
use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// A stream that fails with `TimedOut` when nothing was read or written for `idle`.
pub struct Idle<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    pub fn new(inner: S, idle: Duration) -> Idle<S> {
        Idle {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
    }

    /// `Pending` while the timer runs; the error once it has run out.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "nothing moved for {}s (LETTERGATE_IDLE_TIMEOUT)",
                    self.idle.as_secs()
                ),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that fails once `deadline` has passed before its last byte arrived.
struct DeadlineBody<B> {
    inner: B,
    timer: Pin<Box<Sleep>>,
    limit: Duration,
}

/// The error a handler sees reading a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {}s (LETTERGATE_BODY_TIMEOUT)", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    /// Whether `e`, or one of its causes, is a body that did not arrive in time.
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(c) = cur {
            if c.is::<BodyTimeout>() {
                return true;
            }
            cur = c.source();
        }
        false
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.limit).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A running HTTP server; [`HttpServer::shutdown`] stops it.
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `router` on `listener` until [`HttpServer::shutdown`].
    pub fn start(listener: TcpListener, router: Router, limits: Limits) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, router, limits, stopped));
        Ok(HttpServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, lets those under way finish for at most the shutdown
    /// deadline, then closes them. False when the server had stopped by itself (it crashed).
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(true);
        self.task.await.is_ok()
    }
}

/// Serves `router` on `listener` until `stop` says so, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (router, limits, closed) = (router.clone(), limits.clone(), closed.clone());
                        connections.spawn(async move {
                            connection(stream, router, &limits, closed).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        connections.spawn(too_many(stream, limits.max_connections));
                    }
                }
            }
            // Reap finished connections as they go, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let all = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_deadline, all)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
}

/// One connection: HTTP/1.1 with the header timeout, each body under the body deadline, the
/// stream under the idle timeout; asked to finish (no more keep-alive) when the server stops.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: &Limits,
    mut closing: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                timer: Box::pin(tokio::time::sleep(body_timeout)),
                limit: body_timeout,
            })
        });
        async move { tower_service::Service::call(&mut router, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = closing.wait_for(|c| *c) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Past the connection limit: a short 503 that says which limit, and the connection closed.
async fn too_many(mut stream: TcpStream, limit: usize) {
    let body = format!(
        "{{\"error\": \"too many connections: this listener takes {limit} at once (LETTERGATE_MAX_CONNECTIONS)\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::AsyncReadExt;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            max_connections: 2,
            shutdown_deadline: Duration::from_secs(1),
            ..Limits::default()
        }
    }

    async fn server(limits: Limits) -> HttpServer {
        let router = Router::new().route("/", get(|| async { "hello" })).route(
            "/echo",
            post(|body: Body| async move {
                match axum::body::to_bytes(body, 1024).await {
                    Ok(b) => format!("got {}", b.len()),
                    Err(e) => format!("failed: {}", crate::protocol::chain(&e)),
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        HttpServer::start(listener, router, limits).unwrap()
    }

    /// What the server sends before it closes the connection (within 10 s).
    async fn read_all(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_partial_header_is_cut_off_at_the_header_timeout() {
        let s = server(limits()).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let answer = read_all(&mut c).await;
        assert!(started.elapsed() < Duration::from_secs(8), "{answer}");
        assert!(!answer.contains("hello"), "{answer}");
        assert!(s.shutdown().await);
    }

    #[tokio::test]
    async fn a_body_that_stops_halfway_fails_at_the_body_deadline() {
        let s = server(limits()).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
            .await
            .unwrap();
        let answer = read_all(&mut c).await;
        assert!(answer.contains("LETTERGATE_BODY_TIMEOUT"), "{answer}");
        assert!(s.shutdown().await);
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_answered_503_and_the_others_still_served() {
        let s = server(limits()).await;
        let _a = TcpStream::connect(s.local_addr()).await.unwrap();
        let _b = TcpStream::connect(s.local_addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(s.local_addr()).await.unwrap();
        let answer = read_all(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("LETTERGATE_MAX_CONNECTIONS"), "{answer}");
        drop((_a, _b));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert!(read_all(&mut c).await.contains("hello"));
        assert!(s.shutdown().await);
    }

    #[tokio::test]
    async fn shutdown_ends_within_its_deadline_with_stalled_connections_open() {
        let limits = Limits {
            header_timeout: Duration::from_secs(600),
            body_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            ..limits()
        };
        let s = server(limits).await;
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
            c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab")
                .await
                .unwrap();
            open.push(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = tokio::time::timeout(Duration::from_secs(10), s.shutdown()).await;
        assert!(
            stopped.is_ok(),
            "shutdown waited for the stalled connections"
        );
    }
}
