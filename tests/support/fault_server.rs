//! Test support: a real HTTP/1.1 server on loopback that misbehaves on cue.
//!
//! Each accepted connection carries one request and takes the next behaviour from the
//! script (then `Fault::Serve` once the script is used up), so a test says exactly
//! "first cut the body, then ignore Range, then serve". The server runs on its own
//! thread and runtime, so both async tests and tests driving the real binary can use it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Close the connection without answering.
    CloseAtOnce,
    /// Send the headers and this many body bytes, then reset the connection (RST).
    ResetAfter(usize),
    /// Announce the full Content-Length, send this many bytes, then close cleanly (FIN).
    ShortClose(usize),
    /// Send the headers and this many body bytes, then go silent for the duration.
    Stall(usize, Duration),
    /// Send the headers, then one body byte per interval (never silent for long).
    Trickle(Duration),
    /// A well-formed answer whose Content-Length (and body) is this many bytes short
    /// of the object: a confused proxy or cache.
    ShortLength(usize),
    /// Answer with this status and a short text body.
    Status(u16),
    /// Answer with this status and this text body (a hostile server's error page).
    StatusBody(u16, &'static str),
    /// Like `Status`, with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Always answer 200 with the whole body, whatever Range says.
    IgnoreRange,
    /// Answer 200 with the whole body's length, whatever Range says, but close after
    /// this many bytes.
    IgnoreRangeShort(usize),
    /// Answer 206 starting at byte 0 whatever Range asked for.
    WrongRange,
    /// The whole body without a Content-Length, ended by closing the connection.
    NoLength,
    /// Behave: 206 for a satisfiable Range, 200 otherwise.
    Serve,
    /// Like `Serve`, but with another ETag, as if the object had been replaced.
    Replaced,
}

/// What one request looked like, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

pub struct FaultServer {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultServer {
    pub fn start(body: Vec<u8>, script: Vec<Fault>) -> FaultServer {
        FaultServer::start_at(None, body, script)
    }

    /// A server that answers only the exact request target `target` (path and query,
    /// as sent on the request line) and 404 to anything else, so a client that builds
    /// the address wrongly cannot pass by luck.
    pub fn only_at(target: &str, body: Vec<u8>) -> FaultServer {
        FaultServer::start_at(Some(target.to_string()), body, Vec::new())
    }

    fn start_at(only: Option<String>, body: Vec<u8>, script: Vec<Fault>) -> FaultServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", std_listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::new(Shared {
            only,
            body,
            script: Mutex::new(script.into()),
            seen: seen.clone(),
        });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((conn, _)) = listener.accept().await else {
                            continue;
                        };
                        let fault = state
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or(Fault::Serve);
                        tokio::spawn(handle(conn, fault, state.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        FaultServer {
            base,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// URL of an object on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    only: Option<String>,
    body: Vec<u8>,
    script: Mutex<VecDeque<Fault>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(mut conn: TcpStream, fault: Fault, state: Arc<Shared>) {
    let Some(seen) = read_request(&mut conn).await else {
        return;
    };
    state.seen.lock().unwrap().push(seen.clone());
    if state.only.as_ref().is_some_and(|t| *t != seen.path) {
        let _ = status(&mut conn, 404, "").await;
        return;
    }
    let body = &state.body;
    let len = body.len();
    let start = seen
        .range
        .as_deref()
        .and_then(|r| r.trim().strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < len);
    // The part this answer carries, and its headers, when the request is honoured.
    let (head, part) = match start {
        Some(n) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{len}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                len - n,
                len - 1
            ),
            &body[n..],
        ),
        None => (ok_head(len), &body[..]),
    };
    let _ = match fault {
        Fault::CloseAtOnce => Ok(()),
        Fault::ResetAfter(n) => {
            let r = send(&mut conn, &head, &part[..n.min(part.len())]).await;
            // Give the client a moment to read what was sent, like a link that dies
            // mid-transfer (a reset discards data still unread on the client side).
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = conn.set_zero_linger();
            drop(conn);
            return r.unwrap_or(());
        }
        Fault::ShortClose(n) => {
            let r = send(&mut conn, &head, &part[..n.min(part.len())]).await;
            let _ = conn.shutdown().await;
            r
        }
        Fault::Stall(n, d) => {
            let r = send(&mut conn, &head, &part[..n.min(part.len())]).await;
            tokio::time::sleep(d).await;
            r
        }
        Fault::Trickle(every) => {
            let r = send(&mut conn, &head, &[]).await;
            for b in part.chunks(1) {
                if send(&mut conn, "", b).await.is_err() {
                    break;
                }
                tokio::time::sleep(every).await;
            }
            r
        }
        Fault::ShortLength(n) => {
            let part = &part[..part.len().saturating_sub(n)];
            let head = match start {
                Some(s) => format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                    part.len(),
                    s + part.len() - 1,
                    s + part.len()
                ),
                None => ok_head(part.len()),
            };
            send(&mut conn, &head, part).await
        }
        Fault::Status(code) => status(&mut conn, code, "").await,
        Fault::StatusBody(code, text) => {
            let head = format!(
                "HTTP/1.1 {code} Hostile\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            send(&mut conn, &head, text.as_bytes()).await
        }
        Fault::RetryAfter(code, secs) => {
            status(&mut conn, code, &format!("Retry-After: {secs}\r\n")).await
        }
        Fault::IgnoreRange => send(&mut conn, &ok_head(len), body).await,
        Fault::IgnoreRangeShort(n) => {
            let r = send(&mut conn, &ok_head(len), &body[..n.min(len)]).await;
            let _ = conn.shutdown().await;
            r
        }
        Fault::WrongRange => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {len}\r\nContent-Range: bytes 0-{}/{len}\r\nConnection: close\r\n\r\n",
                len - 1
            );
            send(&mut conn, &head, body).await
        }
        Fault::NoLength => {
            let r = send(
                &mut conn,
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
                body,
            )
            .await;
            let _ = conn.shutdown().await;
            r
        }
        Fault::Serve => send(&mut conn, &head, part).await,
        Fault::Replaced => send(&mut conn, &head.replace("\"v1\"", "\"v2\""), part).await,
    };
}

fn ok_head(len: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n")
}

async fn send(conn: &mut TcpStream, head: &str, body: &[u8]) -> std::io::Result<()> {
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await
}

async fn status(conn: &mut TcpStream, code: u16, extra_headers: &str) -> std::io::Result<()> {
    let text = format!("injected failure {code}\n  try again later\n");
    let head = format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n",
        text.len()
    );
    send(conn, &head, text.as_bytes()).await
}

async fn read_request(conn: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let range = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("range")
            .then(|| v.trim().to_string())
    });
    Some(Seen {
        path,
        range,
        at: std::time::Instant::now(),
    })
}
