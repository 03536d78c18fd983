//! `make bench-coldstart`: each function's release binary, from exec to
//! ready (its first `GET …/invocation/next`) and to its first answer (the
//! `POST …/response` or `…/error`), under a minimal Lambda runtime API served
//! here on 127.0.0.1. The first event is a real one against a freshly seeded
//! local account (the expirer gets its scheduled tick). Also the binary's
//! size and the process's peak resident memory (VmHWM) after the answer.
//! Medians of `--runs` runs; `--json FILE` writes the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firebreak_e2e::{bin_dir, cli_arg, Local, FUNCTIONS};

/// One request of the runtime client: (method, path, body).
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

struct Start {
    ready: Duration,
    answer: Duration,
    peak_kib: u64,
    ok: bool,
}

/// Peak resident memory of a live process, from /proc.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn cold_start(binary: &std::path::Path, function: &str) -> Start {
    let local = Local::start().await;
    local.warm_emulator().await;
    let event = match function {
        "firebreak-alarm" => local.seeded.event("alarm-failed-login.json"),
        "firebreak-manual" => local.seeded.event("command-deactivate-key.json"),
        "firebreak-release" => local.seeded.event("command-release.json"),
        "firebreak-expirer" => {
            serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
        }
        _ => local.seeded.event("guardduty-leaked-key.json"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .envs(local.seeded.settings())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_ENDPOINT_URL", &local.emu.url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the function");
    let (mut ready, mut answer, mut ok) = (None, None, false);
    // Serve connections until the first answer and the next poll after it.
    listener.set_nonblocking(true).unwrap();
    'serve: loop {
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) => {
                // A function that died or hangs ends the run, not the bench.
                let gone = child.try_wait().ok().flatten().is_some();
                if gone || started.elapsed() > Duration::from_secs(60) {
                    break 'serve;
                }
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut w = conn;
        while let Some((method, path, _body)) = read_request(&mut reader) {
            if method == "GET" && path.ends_with("/invocation/next") {
                if answer.is_some() {
                    break 'serve;
                }
                ready.get_or_insert(started.elapsed());
                let body = event.to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\nLambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:111122223333:function:{function}\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                    chrono::Utc::now().timestamp_millis() + 60_000,
                    body.len()
                );
                w.write_all(head.as_bytes()).unwrap();
                w.write_all(body.as_bytes()).unwrap();
            } else {
                if path.contains("/invocation/") {
                    answer.get_or_insert(started.elapsed());
                    ok = path.ends_with("/response");
                }
                w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
                    .unwrap();
                if path.contains("/init/error") {
                    break 'serve;
                }
            }
        }
    }
    let peak_kib = vm_hwm(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Start {
        ready: ready.unwrap_or_default(),
        answer: answer.unwrap_or_default(),
        peak_kib,
        ok,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = cli_arg("--runs").map_or(5, |v| v.parse().unwrap());
    let release = bin_dir().parent().unwrap().join("release");
    println!("Cold start under a local runtime API, release binaries, median of {runs} runs");
    println!(
        "{:<22} {:>9} {:>10} {:>12} {:>10} {:>6}",
        "function", "size", "ready", "first answer", "peak RSS", "ok"
    );
    let mut rows = Vec::new();
    for f in FUNCTIONS {
        let binary = release.join(f);
        assert!(
            binary.exists(),
            "{} is missing: `make bench-coldstart` builds it",
            binary.display()
        );
        let size = std::fs::metadata(&binary).unwrap().len();
        let mut starts = Vec::new();
        for _ in 0..runs {
            starts.push(cold_start(&binary, f).await);
        }
        let ready = median(starts.iter().map(|s| s.ready).collect());
        let answer = median(starts.iter().map(|s| s.answer).collect());
        let mut peaks: Vec<u64> = starts.iter().map(|s| s.peak_kib).collect();
        peaks.sort_unstable();
        let peak = peaks[peaks.len() / 2];
        let ok = starts.iter().all(|s| s.ok);
        println!(
            "{:<22} {:>7.1}MB {:>8.1}ms {:>10.1}ms {:>7.1}MiB {:>6}",
            f,
            size as f64 / 1e6,
            ready.as_secs_f64() * 1e3,
            answer.as_secs_f64() * 1e3,
            peak as f64 / 1024.0,
            ok
        );
        rows.push(serde_json::json!({
            "function": f, "runs": runs, "binary_bytes": size,
            "ready_ms": ready.as_secs_f64() * 1e3, "first_answer_ms": answer.as_secs_f64() * 1e3,
            "peak_rss_kib": peak, "answered_ok": ok,
        }));
    }
    if let Some(path) = cli_arg("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}
