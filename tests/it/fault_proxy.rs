//! A fault-injecting HTTP proxy for the S3 tests: it sits on 127.0.0.1 in
//! front of the moto server and, as a test's plan says, answers a request
//! itself with a 500 or a 503 SlowDown, drops the connection, answers
//! late, sends the body slowly, or cuts the body short after sending its
//! full length.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and pass the response back unchanged.
    Pass,
    /// `500 Internal Server Error`, with S3's error body.
    InternalError,
    /// `503 Slow Down`: S3 throttling.
    SlowDown,
    /// Close the connection without answering.
    Drop,
    /// Forward it, then send the body in 1 KiB pieces with this pause
    /// between them.
    Slow(Duration),
    /// Forward it, announce the full length, send half the body and close.
    Truncate,
    /// Wait this long, then forward it: a far-away server's first byte.
    Late(Duration),
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    pub fault: Fault,
    /// When the request arrived.
    pub at: Instant,
}

impl Seen {
    /// A GET of an object (not a listing, not the bucket).
    pub fn is_object_get(&self) -> bool {
        self.method == "GET" && !self.target.contains('?')
    }

    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.target.contains("list-type=")
    }

    /// A query parameter, decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let url = url::Url::parse(&format!("http://proxy{}", self.target)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

type Plan = dyn FnMut(&Seen, &[Seen]) -> Fault + Send;

/// The proxy; it stops accepting when dropped.
pub struct FaultProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Response body bytes written to clients.
    body_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy in front of `upstream_port`; `plan` picks each request's
    /// fault from the request and the ones before it.
    pub fn start(
        upstream_port: u16,
        plan: impl FnMut(&Seen, &[Seen]) -> Fault + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let plan: Arc<Mutex<Box<Plan>>> = Arc::new(Mutex::new(Box::new(plan)));
        {
            let (seen, body_bytes, stop) = (seen.clone(), body_bytes.clone(), stop.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (seen, body_bytes, plan) = (seen.clone(), body_bytes.clone(), plan.clone());
                    std::thread::spawn(move || {
                        serve(client, upstream_port, &seen, &body_bytes, &plan);
                    });
                }
            });
        }
        Self {
            port,
            seen,
            body_bytes,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Response body bytes sent to clients so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one client connection, request after request (keep-alive).
fn serve(
    client: TcpStream,
    upstream_port: u16,
    seen: &Mutex<Vec<Seen>>,
    body_bytes: &AtomicU64,
    plan: &Mutex<Box<Plan>>,
) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let target = request_line.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut request = Seen {
            method,
            target,
            range: header("range"),
            fault: Fault::Pass,
            at: Instant::now(),
        };
        {
            let mut seen = seen.lock().unwrap();
            request.fault = (plan.lock().unwrap())(&request, &seen);
            seen.push(request.clone());
        }
        let (status, reason, headers, body) = match request.fault {
            Fault::Drop => {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Fault::InternalError => error(500, "Internal Server Error", "InternalError"),
            Fault::SlowDown => error(503, "Slow Down", "SlowDown"),
            Fault::Late(wait) => {
                std::thread::sleep(wait);
                match forward(upstream_port, &head, &body) {
                    Some(response) => response,
                    None => return,
                }
            }
            Fault::Pass | Fault::Slow(_) | Fault::Truncate => {
                match forward(upstream_port, &head, &body) {
                    Some(response) => response,
                    None => return,
                }
            }
        };
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        // A HEAD response keeps the upstream's length (of the object).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        if client.write_all(out.as_bytes()).is_err() {
            return;
        }
        match request.fault {
            Fault::Slow(pause) => {
                for piece in body.chunks(1024) {
                    std::thread::sleep(pause);
                    if client.write_all(piece).is_err() {
                        return;
                    }
                    body_bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
            }
            Fault::Truncate => {
                let half = &body[..body.len() / 2];
                let _ = client.write_all(half);
                body_bytes.fetch_add(half.len() as u64, Ordering::Relaxed);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            _ => {
                if client.write_all(&body).is_err() {
                    return;
                }
                body_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

type Response = (u16, String, Vec<(String, String)>, Vec<u8>);

/// S3's XML error response.
fn error(status: u16, reason: &str, code: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    (
        status,
        reason.to_string(),
        vec![("Content-Type".into(), "application/xml".into())],
        body.into_bytes(),
    )
}

/// Sends the request upstream on a fresh connection and reads the whole
/// response: status, reason, headers (framing headers removed) and body.
fn forward(upstream_port: u16, head: &str, body: &[u8]) -> Option<Response> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).ok()?;
    let is_head = head.starts_with("HEAD ");
    let mut lines = head.lines();
    let mut out = format!("{}\r\n", lines.next()?);
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case("connection") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes()).ok()?;
    upstream.write_all(body).ok()?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let mut status_line = lines.next()?.splitn(3, ' ');
    status_line.next();
    let status: u16 = status_line.next()?.parse().ok()?;
    let reason = status_line.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    let mut chunked = false;
    for line in lines {
        let (k, v) = line.split_once(':')?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.eq_ignore_ascii_case("chunked");
        } else if k.eq_ignore_ascii_case("connection")
            || (k.eq_ignore_ascii_case("content-length") && !is_head)
        {
            // Framing is redone for the client.
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    Some((status, reason, headers, body))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        let rest = &body[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        body = &rest[size..];
        body = body.strip_prefix(b"\r\n").unwrap_or(body);
    }
    out
}
