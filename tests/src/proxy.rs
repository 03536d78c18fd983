//! A fault-injecting HTTP proxy between the SDK clients and the local
//! emulator: it answers chosen calls with a 5xx or a throttling error in the
//! service's own format, resets the connection, delays or holds the call, or
//! lets the emulator carry the call out and then loses the answer. Every call
//! it sees is logged with the fault it got, so a test can count attempts.
//!
//! Plain threads and blocking sockets on 127.0.0.1: one thread per client
//! connection (keep-alive is kept towards the SDK), one fresh connection to
//! the emulator per call. It stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers 503 with the service's "unavailable" error.
    Unavailable,
    /// Answers the service's throttling error (EC2 `RequestLimitExceeded`,
    /// S3 `SlowDown`, IAM/SNS/STS `Throttling`).
    Throttle,
    /// Resets the connection (RST) without forwarding the call.
    Reset,
    /// Forwards the call after this long.
    Delay(Duration),
    /// Never answers (nor forwards): the client's timeout must end it.
    Hang,
    /// Forwards the call (the emulator carries it out), then resets the
    /// connection instead of relaying the answer.
    LoseAnswer,
}

impl Fault {
    /// True when the caller gets no answer from AWS (a delay only slows it).
    pub fn fails(self) -> bool {
        !matches!(self, Fault::Delay(_))
    }
}

/// One call, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The signing name: `ec2`, `s3`, `iam`, `sns`, `sts`, `sqs`, `logs`.
    pub service: String,
    /// The operation: the query `Action` (`CreateNetworkAclEntry`), or for
    /// S3 one of `PutObject`, `GetObject`, `HeadObject`, `DeleteObject`,
    /// `ListObjectsV2`, `CreateBucket`.
    pub op: String,
    /// The request path (S3: `/bucket/key`).
    pub path: String,
    /// What the proxy did to it (`None`: forwarded as it was).
    pub fault: Option<Fault>,
    /// When it arrived, since the proxy started.
    pub at: Duration,
}

impl Call {
    /// True when the caller got AWS's answer (perhaps late).
    pub fn answered(&self) -> bool {
        !self.fault.is_some_and(Fault::fails)
    }
}

type Matcher = Box<dyn Fn(&Call) -> bool + Send + Sync>;

struct Rule {
    matches: Matcher,
    /// Faults for the next matching calls, in order; when empty, `always`.
    queue: Vec<Fault>,
    always: Option<Fault>,
}

struct State {
    started: Instant,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Call>>,
    delay_all: Mutex<Option<Duration>>,
}

impl State {
    fn fault_for(&self, call: &Call) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        for r in rules.iter_mut() {
            if (r.matches)(call) {
                if !r.queue.is_empty() {
                    return Some(r.queue.remove(0));
                }
                if r.always.is_some() {
                    return r.always;
                }
            }
        }
        (*self.delay_all.lock().unwrap()).map(Fault::Delay)
    }
}

/// A running proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: the endpoint to give the SDK.
    pub url: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            started: Instant::now(),
            rules: Mutex::default(),
            seen: Mutex::default(),
            delay_all: Mutex::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (st, sp, up) = (st.clone(), sp.clone(), upstream.clone());
                        std::thread::spawn(move || serve(client, &up, &st, &sp));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { url, state, stop }
    }

    /// The next calls that `matches` get `faults`, one each, in order.
    pub fn inject(
        &self,
        matches: impl Fn(&Call) -> bool + Send + Sync + 'static,
        faults: &[Fault],
    ) {
        self.state.rules.lock().unwrap().push(Rule {
            matches: Box::new(matches),
            queue: faults.to_vec(),
            always: None,
        });
    }

    /// Every call that `matches` gets `fault`, from now on.
    pub fn always(&self, matches: impl Fn(&Call) -> bool + Send + Sync + 'static, fault: Fault) {
        self.state.rules.lock().unwrap().push(Rule {
            matches: Box::new(matches),
            queue: Vec::new(),
            always: Some(fault),
        });
    }

    /// No more faults: every rule is dropped.
    pub fn heal(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Every call no rule faults is delayed by `d` (a round trip to AWS).
    pub fn delay_all(&self, d: Option<Duration>) {
        *self.state.delay_all.lock().unwrap() = d;
    }

    /// Every call so far, in the order they arrived.
    pub fn seen(&self) -> Vec<Call> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Forgets the calls seen so far.
    pub fn clear_seen(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

/// A parsed request: its head lines, body, and which call it is.
struct Request {
    method: String,
    head: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn call(&self) -> Call {
        let target = self.head[0].split(' ').nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        // `Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
        let service = self
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unknown")
            .to_string();
        let op = if service == "s3" {
            // `/bucket/key`; a listing is `/bucket/` or `/bucket`.
            let has_key = path
                .trim_start_matches('/')
                .split_once('/')
                .is_some_and(|(_, key)| !key.is_empty());
            match (self.method.as_str(), has_key) {
                ("PUT", true) => "PutObject",
                ("PUT", false) => "CreateBucket",
                ("GET", true) => "GetObject",
                ("GET", false) if query.contains("list-type=2") => "ListObjectsV2",
                ("GET", false) => "ListObjects",
                ("HEAD", _) => "HeadObject",
                ("DELETE", _) => "DeleteObject",
                _ => "Other",
            }
            .to_string()
        } else {
            let form = String::from_utf8_lossy(&self.body);
            form.split('&')
                .chain(query.split('&'))
                .find_map(|kv| kv.strip_prefix("Action="))
                .or_else(|| self.header("x-amz-target"))
                .unwrap_or("Unknown")
                .to_string()
        };
        Call {
            service,
            op,
            path: path.to_string(),
            fault: None,
            at: Duration::ZERO,
        }
    }

    /// The request as sent upstream: on a connection of its own, closed
    /// after the answer (which then ends at EOF).
    fn bytes_for_upstream(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, l) in self.head.iter().enumerate() {
            let name = header_name(l);
            if i > 0 && (name == "connection" || name == "expect") {
                continue;
            }
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The name of a header line, lower-cased.
fn header_name(line: &str) -> String {
    line.split(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn read_line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// Reads one request (head and body, by Content-Length or chunked), and
/// answers `Expect: 100-continue` itself.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let first = read_line(r)?;
    let method = first.split(' ').next()?.to_string();
    let mut head = vec![first];
    loop {
        let l = read_line(r)?;
        if l.is_empty() {
            break;
        }
        head.push(l);
    }
    let mut req = Request {
        method,
        head,
        body: Vec::new(),
    };
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        r.get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    if let Some(n) = req.header("content-length") {
        let mut body = vec![0; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        // Kept chunked (the header goes upstream as it is).
        let mut raw = Vec::new();
        loop {
            let size_line = read_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            raw.extend_from_slice(size_line.as_bytes());
            raw.extend_from_slice(b"\r\n");
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            raw.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
        req.body = raw;
    }
    Some(req)
}

/// The service's own error for `fault`: (status, body).
fn error_answer(service: &str, fault: Fault) -> (u16, String) {
    let (status, code) = match (service, fault) {
        ("ec2", Fault::Throttle) => (503, "RequestLimitExceeded"),
        ("s3", Fault::Throttle) => (503, "SlowDown"),
        (_, Fault::Throttle) => (400, "Throttling"),
        ("ec2", _) => (503, "Unavailable"),
        _ => (503, "ServiceUnavailable"),
    };
    let message = "injected by the test's fault proxy";
    let body = match service {
        "ec2" => format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
        ),
        "s3" => format!(
            "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ),
        _ => format!(
            "<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
        ),
    };
    (status, body)
}

/// Ends a connection with a reset (RST), not an orderly close.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Carries one call to the emulator and returns its whole answer, made to
/// fit a kept-alive client connection (a length where it had none).
fn forward(upstream: &str, req: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    up.write_all(&req.bytes_for_upstream()).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..split - 4]).to_string();
    let body = &answer[split..];
    let mut out = String::new();
    let mut framed = false;
    for (i, l) in head.split("\r\n").enumerate() {
        let name = header_name(l);
        if i > 0 && name == "connection" {
            continue;
        }
        framed |= name == "content-length" || name == "transfer-encoding";
        out.push_str(l);
        out.push_str("\r\n");
    }
    if !framed && req.method != "HEAD" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Some(bytes)
}

/// Serves one client connection, call after call, until it closes.
fn serve(client: TcpStream, upstream: &str, state: &State, stop: &AtomicBool) {
    let _ = client.set_nonblocking(false);
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    while !stop.load(Ordering::SeqCst) {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let mut call = req.call();
        call.at = state.started.elapsed();
        let fault = state.fault_for(&call);
        call.fault = fault;
        state.seen.lock().unwrap().push(call.clone());
        match fault {
            Some(f @ (Fault::Unavailable | Fault::Throttle)) => {
                let (status, body) = error_answer(&call.service, f);
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if client.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::Reset) => return reset(&client),
            Some(Fault::Hang) => {
                // Until the client gives up (its read timeout) or we stop.
                let deadline = Instant::now() + Duration::from_secs(120);
                let _ = client.set_read_timeout(Some(Duration::from_millis(50)));
                let mut byte = [0u8; 1];
                while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                    match reader.get_mut().read(&mut byte) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Delay(d)) => std::thread::sleep(d),
            Some(Fault::LoseAnswer) | None => {}
        }
        let Some(answer) = forward(upstream, &req) else {
            return reset(&client);
        };
        if fault == Some(Fault::LoseAnswer) {
            return reset(&client);
        }
        if client.write_all(&answer).is_err() {
            return;
        }
    }
}
