//! The `firebreak plan` contract: JSON on stdout and exit 0; on bad input a
//! non-zero exit, one line on stderr, nothing on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn firebreak(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firebreak"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The developer's own settings must not leak into the contract.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FIREBREAK_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A refusal may close stdin early; that is fine.
        let _ = input.write_all(bytes);
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn assert_refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    assert!(
        out.stdout.is_empty(),
        "stdout must be empty on failure: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err}"
    );
    assert!(err.contains(needle), "`{err}` does not contain `{needle}`");
}

#[test]
fn plans_an_event_file_as_json() {
    let file = events().join("guardduty-ssh-brute-force.json");
    let policy = events().join("policy.toml");
    let out = firebreak(
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inc = &v["incidents"][0];
    assert_eq!(inc["source"], "guardduty");
    assert_eq!(inc["severity"], "HIGH");
    assert_eq!(inc["subjects"]["addresses"][0]["ip"], "198.51.100.77");
    assert_eq!(
        inc["subjects"]["instance"]["subnets"][0],
        "subnet-0123456789abcdef0"
    );
    let kinds: Vec<&str> = inc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..3],
        ["block_ip", "isolate_instance", "snapshot_volumes"]
    );
    assert_eq!(inc["actions"][0]["target"], "198.51.100.77/32");
    assert_eq!(inc["actions"][0]["status"], "planned");
}

#[test]
fn reads_standard_input() {
    let bytes = std::fs::read(events().join("manual-unauthorized-access.json")).unwrap();
    let out = firebreak(&["plan", "-"], Some(&bytes));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incidents"][0]["severity"], "CRITICAL");
}

#[test]
fn bad_input_is_one_line_on_stderr_and_nothing_on_stdout() {
    let truncated = events().join("invalid/truncated.json");
    assert_refused(
        &firebreak(&["plan", truncated.to_str().unwrap()], None),
        "not valid JSON",
    );
    assert_refused(
        &firebreak(&["plan", "-"], Some(b"[1,2,3]")),
        "found a JSON array",
    );
    assert_refused(&firebreak(&["plan", "-"], Some(&[0xc3, 0x28])), "not UTF-8");
    let huge = vec![b' '; 1024 * 1024 + 10];
    assert_refused(
        &firebreak(&["plan", "-"], Some(&huge)),
        "over the 1048576-byte limit",
    );
    assert_refused(
        &firebreak(&["plan", "/nonexistent/event.json"], None),
        "cannot open /nonexistent/event.json",
    );
}

#[test]
fn a_mistyped_setting_stops_it() {
    let file = events().join("manual-low.json");
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["plan", file.to_str().unwrap()])
        .env("FIREBREAK_ALOWLIST", "198.51.100.0/24")
        .output()
        .unwrap();
    assert_refused(&out, "unknown setting FIREBREAK_ALOWLIST");
}

#[test]
fn plan_shows_the_security_hub_write_back_when_it_is_on() {
    let file = events().join("securityhub-guardduty-ssh-brute-force-imported.json");
    let kinds = |writeback: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_firebreak"));
        cmd.args(["plan", file.to_str().unwrap()]);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FIREBREAK_")) {
            cmd.env_remove(k);
        }
        if let Some(v) = writeback {
            cmd.env("FIREBREAK_SECURITYHUB_WRITEBACK", v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        plan["incidents"][0]["actions"].as_array().unwrap().clone()
    };
    let off = kinds(None);
    assert!(
        off.iter().all(|a| a["kind"] != "update_finding"),
        "{off:#?}"
    );
    let on = kinds(Some("true"));
    let w = on.last().unwrap();
    assert_eq!(w["kind"], "update_finding", "{on:#?}");
    assert_eq!(w["status"], "planned");
    assert!(w["target"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:guardduty:eu-west-1:111122223333:detector/"));
    assert_eq!(
        w["params"]["product_arn"],
        "arn:aws:securityhub:eu-west-1::product/aws/guardduty"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["plan", file.to_str().unwrap()])
        .env("FIREBREAK_SECURITYHUB_WRITEBACK", "sometimes")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a mistyped setting stops it");
}
