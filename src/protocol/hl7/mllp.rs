//! MLLP, the framing HL7 v2 messages travel in over TCP: `0x0B`, the message, `0x1C 0x0D`.
//!
//! [`send`] delivers one message and insists on a positive ACK; [`Listener`] receives messages,
//! hands each to a handler and answers an ACK whose MSA-2 echoes the message's MSH-10.
//!
//! Design constraints: peers differ in how they end a message. Python's `mllp_send` strips the
//! CR of the last segment, so a frame may end `...|F\x1c\r` with no CR before `0x1C`; the reader
//! takes the bytes between the start block and the end block as they are, and the message
//! parser accepts a last segment without a CR.

use super::message::Message;
use super::{Hl7Error, Hl7ReadError};
use crate::protocol::clock::Timestamp;
use crate::protocol::limits::Limits;
use crate::protocol::listen::Idle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Start of block.
pub const START: u8 = 0x0B;
/// End of block, followed by [`CR`].
pub const END: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// The largest ACK [`send`] reads: larger frames are refused, not buffered forever. A
/// [`Listener`] takes messages up to its limits' `max_message`.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Wraps a message in an MLLP frame.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&[END, CR]);
    out
}

/// Reads the next frame's message bytes. `Ok(None)` when the peer closed the connection
/// between frames. Bytes before a start block (stray CR/LF between frames) are skipped; the
/// CR after the end block is optional, since some peers close straight after `0x1C`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<Vec<u8>>, Hl7Error> {
    if !wait_for_start(reader).await? {
        return Ok(None);
    }
    read_rest(reader, MAX_MESSAGE as u64).await.map(Some)
}

/// Reads up to a frame's start block: false when the peer closed the connection first.
async fn wait_for_start<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Result<bool, Hl7Error> {
    loop {
        let mut b = [0u8; 1];
        match reader.read(&mut b).await.map_err(Hl7Error::Io)? {
            0 => return Ok(false),
            _ if b[0] == START => return Ok(true),
            _ if b[0].is_ascii_whitespace() => continue,
            _ => {
                return Err(Hl7Error::Frame(format!(
                    "expected the start block 0x0B, got 0x{:02X}",
                    b[0]
                )))
            }
        }
    }
}

/// Reads a frame's message after its start block, at most `max` bytes, and its end block.
async fn read_rest<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: u64,
) -> Result<Vec<u8>, Hl7Error> {
    let mut message = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if reader.read(&mut b).await.map_err(Hl7Error::Io)? == 0 {
            return Err(Hl7Error::Frame(
                "the connection closed inside a frame, before the end block 0x1C".into(),
            ));
        }
        if b[0] == END {
            break;
        }
        message.push(b[0]);
        if message.len() as u64 > max {
            return Err(Hl7Error::Frame(format!(
                "a frame is longer than {max} bytes (LETTERGATE_MAX_MESSAGE)"
            )));
        }
    }
    // The CR after the end block: read it if it is there, without waiting for more.
    if let Some(&CR) = reader.buffer().first() {
        let mut b = [0u8; 1];
        let _ = reader.read(&mut b).await;
    }
    Ok(message)
}

/// Sends `message` to `addr` and waits up to `timeout` for its ACK. Returns the ACK's text
/// when MSA-1 is `AA` or `CA`; an `AE`/`AR`/`CE`/`CR` is [`Hl7Error::Rejected`] with MSA-3's
/// text, and no ACK at all is an error too: a send is only done when the receiver said so.
pub async fn send(addr: SocketAddr, message: &str, timeout: Duration) -> Result<String, Hl7Error> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| Hl7Error::Connect { addr, source })?;
        stream
            .write_all(&frame(message))
            .await
            .map_err(Hl7Error::Io)?;
        stream.flush().await.map_err(Hl7Error::Io)?;
        let mut reader = BufReader::new(stream);
        let ack = read_frame(&mut reader).await?.ok_or(Hl7Error::NoAck)?;
        Ok::<_, Hl7Error>(String::from_utf8_lossy(&ack).into_owned())
    };
    let ack = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Hl7Error::Timeout(timeout))??;
    let parsed = Message::parse(&ack).map_err(Hl7Error::BadAck)?;
    match parsed.get("MSA", 1, 1) {
        Some("AA") | Some("CA") => Ok(ack),
        Some(code) => Err(Hl7Error::Rejected {
            code: code.to_string(),
            text: parsed.text("MSA", 3, 1).unwrap_or_default(),
        }),
        None => Err(Hl7Error::BadAck(Hl7ReadError::NoAckCode)),
    }
}

/// What a [`Listener`] does with each message: `Ok` is answered `AA`, `Err(text)` is answered
/// `AE` with the text in MSA-3.
pub type Handler = dyn Fn(&str) -> Result<(), Refusal> + Send + Sync;

/// Why a [`Handler`] refused a message: any error; its text goes back in the `AE` ACK.
pub type Refusal = Box<dyn std::error::Error + Send + Sync>;

/// The ACK for `message`: MSA-1 `code`, MSA-2 the message's MSH-10 (empty when it has none),
/// MSA-3 `text` when given. The ACK's own MSH swaps sender and receiver.
pub fn ack(message: &str, code: &str, text: Option<&str>, at: Timestamp) -> String {
    let parsed = Message::parse(message).ok();
    let field = |f: usize, c: usize| {
        parsed
            .as_ref()
            .and_then(|m| m.get("MSH", f, c))
            .unwrap_or("")
            .to_string()
    };
    let control_id = field(10, 1);
    let trigger = field(9, 2);
    let version = Some(field(12, 1))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "2.4".into());
    let mut out = format!(
        "MSH|^~\\&|LETTERGATE|LETTERGATE|{}|{}|{}||ACK^{trigger}^ACK|ACK{control_id}|P|{version}\rMSA|{code}|{control_id}",
        field(3, 1),
        field(4, 1),
        super::ts(at),
    );
    if let Some(t) = text {
        out.push('|');
        out.push_str(&super::message::escape(t));
    }
    out.push('\r');
    out
}

/// A running MLLP receiver. Every message it reads gets an answer; [`Listener::shutdown`] stops
/// taking connections, closes the open ones and waits for them. A message whose ACK went out
/// has been handled; one cut off by the shutdown was not, and its sender saw no ACK.
pub struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` (port 0 for a free one; loopback unless the caller chose otherwise) and
    /// serves until [`Listener::shutdown`].
    pub async fn bind(addr: SocketAddr, handler: Arc<Handler>) -> Result<Listener, Hl7Error> {
        Self::bind_with_clock(addr, handler, Timestamp::now).await
    }

    /// As [`Listener::bind`], with the ACKs' MSH-7 taken from `now` (a virtual clock).
    pub async fn bind_with_clock(
        addr: SocketAddr,
        handler: Arc<Handler>,
        now: impl Fn() -> Timestamp + Send + Sync + 'static,
    ) -> Result<Listener, Hl7Error> {
        Self::bind_limited(addr, handler, now, Limits::current()).await
    }

    /// As [`Listener::bind_with_clock`], within `limits`: a frame no larger than
    /// `max_message`, read within `body_timeout` once begun; a connection idle for
    /// `idle_timeout` is closed; at most `max_connections` at once (more are closed at once);
    /// a shutdown waits at most `shutdown_deadline` for the connections under way.
    pub async fn bind_limited(
        addr: SocketAddr,
        handler: Arc<Handler>,
        now: impl Fn() -> Timestamp + Send + Sync + 'static,
        limits: Limits,
    ) -> Result<Listener, Hl7Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Hl7Error::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| Hl7Error::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let now: Arc<dyn Fn() -> Timestamp + Send + Sync> = Arc::new(now);
        let task = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(limits.max_connections));
            let limits = Arc::new(limits);
            let mut connections = JoinSet::new();
            let mut stop_accepting = stopped.clone();
            loop {
                tokio::select! {
                    _ = stop_accepting.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // Past the connection limit the connection is closed at once.
                        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                        let serving = serve(stream, handler.clone(), now.clone(), stopped.clone(), limits.clone());
                        connections.spawn(async move {
                            serving.await;
                            drop(permit);
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            drop(listener);
            let all = async { while connections.join_next().await.is_some() {} };
            if tokio::time::timeout(limits.shutdown_deadline, all)
                .await
                .is_err()
            {
                connections.shutdown().await;
            }
        });
        Ok(Listener {
            addr: bound,
            stop,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the listener and waits for the connections under way to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves one connection: frame after frame until the peer closes, the frame is broken, or the
/// listener stops between frames.
async fn serve(
    stream: TcpStream,
    handler: Arc<Handler>,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    mut stopped: watch::Receiver<bool>,
    limits: Arc<Limits>,
) {
    let mut reader = BufReader::new(Idle::new(stream, limits.idle_timeout));
    loop {
        let started = tokio::select! {
            _ = stopped.changed() => return,
            f = wait_for_start(&mut reader) => f,
        };
        if !matches!(started, Ok(true)) {
            return;
        }
        let rest = read_rest(&mut reader, limits.max_message);
        let received = tokio::select! {
            _ = stopped.changed() => return,
            f = tokio::time::timeout(limits.body_timeout, rest) => f,
        };
        let Ok(Ok(bytes)) = received else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        let answer = match handler(&text) {
            Ok(()) => ack(&text, "AA", None, now()),
            Err(why) => ack(&text, "AE", Some(&why.to_string()), now()),
        };
        if write_all(reader.get_mut(), &frame(&answer)).await.is_err() {
            return;
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const MSG: &str = "MSH|^~\\&|SIM|RXX|GP|A81001|20250106090000||MDM^T02^MDM_T02|CTRL-1|P|2.4\rEVN|T02|20250106090000";

    /// A listener that answers every message `AA`, or `AE` with the text of `refusal`.
    async fn listener(refusal: Option<&'static str>) -> (Listener, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let handler: Arc<Handler> = Arc::new(move |m: &str| {
            s.lock().unwrap().push(m.to_string());
            refusal.map_or(Ok(()), |why| Err(Refusal::from(why)))
        });
        let l = Listener::bind("127.0.0.1:0".parse().unwrap(), handler)
            .await
            .unwrap();
        (l, seen)
    }

    #[tokio::test]
    async fn a_message_sent_is_received_intact_and_answered_aa_echoing_msh_10() {
        let (l, seen) = listener(None).await;
        let ack = send(l.local_addr(), MSG, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(ack.contains("\rMSA|AA|CTRL-1\r"), "{ack:?}");
        assert!(ack.contains("|ACK^T02^ACK|"), "{ack:?}");
        l.shutdown().await;
        assert_eq!(seen.lock().unwrap().as_slice(), [MSG.to_string()]);
    }

    #[tokio::test]
    async fn a_handler_error_is_an_ae_and_send_reports_its_text() {
        let (l, _) = listener(Some("no such patient | here")).await;
        let err = send(l.local_addr(), MSG, Duration::from_secs(5))
            .await
            .unwrap_err();
        match err {
            Hl7Error::Rejected { code, text } => {
                assert_eq!(code, "AE");
                assert_eq!(text, "no such patient | here");
            }
            other => panic!("{other:?}"),
        }
        l.shutdown().await;
    }

    #[tokio::test]
    async fn the_reader_takes_a_last_segment_without_cr_and_several_frames_per_connection() {
        let (l, seen) = listener(None).await;
        let mut stream = TcpStream::connect(l.local_addr()).await.unwrap();
        // As python's mllp_send frames it: no CR before the end block.
        let mut bytes = frame(MSG);
        bytes.extend(frame(&MSG.replace("CTRL-1", "CTRL-2")));
        stream.write_all(&bytes).await.unwrap();
        let mut reader = BufReader::new(stream);
        let first = read_frame(&mut reader).await.unwrap().unwrap();
        let second = read_frame(&mut reader).await.unwrap().unwrap();
        assert!(String::from_utf8(first).unwrap().contains("MSA|AA|CTRL-1"));
        assert!(String::from_utf8(second).unwrap().contains("MSA|AA|CTRL-2"));
        drop(reader);
        l.shutdown().await;
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(!seen.lock().unwrap()[0].ends_with('\r'));
    }

    #[tokio::test]
    async fn no_ack_is_an_error_not_a_send() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            // Reads the frame and closes without answering.
            let (s, _) = server.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let _ = read_frame(&mut r).await;
        });
        let err = send(addr, MSG, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, Hl7Error::NoAck), "{err:?}");
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (s, _) = server.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let err = send(addr, MSG, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, Hl7Error::Timeout(_)), "{err:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn shutdown_returns_with_an_idle_connection_open() {
        let (l, _) = listener(None).await;
        let _idle = TcpStream::connect(l.local_addr()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), l.shutdown())
            .await
            .expect("shutdown does not wait for idle peers");
    }

    /// A listener with small limits: 100-byte frames, a 1 s frame deadline, 1 s idle, two
    /// connections, a 1 s shutdown deadline.
    async fn small_listener() -> Listener {
        let handler: Arc<Handler> = Arc::new(|_: &str| Ok(()));
        let limits = Limits {
            max_message: 100,
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 2,
            shutdown_deadline: Duration::from_secs(1),
            ..Limits::default()
        };
        Listener::bind_limited(
            "127.0.0.1:0".parse().unwrap(),
            handler,
            Timestamp::now,
            limits,
        )
        .await
        .unwrap()
    }

    /// Whether the listener closes `stream` (EOF or reset) within 10 s, and what it sent.
    async fn closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await {
            Ok(_) => Some(out),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_cap_an_unfinished_frame_and_an_idle_connection_are_closed() {
        let l = small_listener().await;
        let mut long = TcpStream::connect(l.local_addr()).await.unwrap();
        long.write_all(&frame(&"X".repeat(200))).await.unwrap();
        assert_eq!(
            closed(&mut long).await,
            Some(vec![]),
            "no ACK for a frame over the cap"
        );
        let mut half = TcpStream::connect(l.local_addr()).await.unwrap();
        half.write_all(&[START, b'M', b'S', b'H']).await.unwrap();
        assert_eq!(closed(&mut half).await, Some(vec![]));
        let mut idle = TcpStream::connect(l.local_addr()).await.unwrap();
        assert_eq!(closed(&mut idle).await, Some(vec![]));
        // Still serving.
        assert!(send(l.local_addr(), MSG, Duration::from_secs(5))
            .await
            .is_ok());
        l.shutdown().await;
    }

    #[tokio::test]
    async fn past_the_connection_limit_a_connection_is_closed_and_shutdown_keeps_its_deadline() {
        let l = small_listener().await;
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(l.local_addr()).await.unwrap();
            c.write_all(&[START, b'M']).await.unwrap();
            open.push(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(l.local_addr()).await.unwrap();
        let answer = closed(&mut third).await;
        assert!(answer.is_some_and(|a| a.is_empty()));
        let stopped = tokio::time::timeout(Duration::from_secs(10), l.shutdown()).await;
        assert!(stopped.is_ok(), "shutdown waited on half-sent frames");
    }
}
