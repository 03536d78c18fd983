//! `make bench-versus`: Firebreak side by side with the Python responder of
//! a team's runbook (`benches/baseline/responder.py`: boto3, the same
//! playbooks, one call after another). Each run is a whole process on a
//! freshly seeded local account: `firebreak respond EVENT` (the release
//! build) against `python responder.py EVENT`, both timed and their peak
//! memory read by `benches/baseline/measure.py` (wall clock, wait4's
//! ru_maxrss). The emulator has served every service both use once
//! before (see `Local::warm_emulator`). Medians of `--runs` runs and the ratios are printed, and
//! written to `--json FILE`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use firebreak_e2e::{bin_dir, cli_arg, root, venv_bin, Local};
use serde_json::Value;

const EVENTS: [&str; 3] = [
    "guardduty-leaked-key.json",
    "guardduty-temporary-credentials.json",
    "guardduty-ssh-brute-force.json",
];

/// A fresh account, the event pointed at it, and the environment both
/// responders run with.
async fn account(name: &str) -> (Local, PathBuf, BTreeMap<String, String>) {
    let local = Local::start().await;
    local.add_app_server_role().await;
    local.warm_emulator().await;
    let path = std::env::temp_dir().join(format!("firebreak-versus-{}-{name}", std::process::id()));
    std::fs::write(&path, local.seeded.event(name).to_string()).unwrap();
    let mut env = local.seeded.settings();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", local.emu.url.as_str()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    (local, path, env)
}

/// One whole-process run under measure.py: (wall ms, peak KiB).
fn measure(cmd: &[&Path], event: &Path, env: &BTreeMap<String, String>) -> (f64, f64) {
    let out = Command::new(venv_bin("python3"))
        .arg(root().join("benches/baseline/measure.py"))
        .args(cmd)
        .arg(event)
        .envs(env)
        .output()
        .expect("run measure.py");
    let m: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("measure.py: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(m["exit"], 0, "{cmd:?} failed: {}", m["stderr"]);
    (
        m["wall_ms"].as_f64().unwrap(),
        m["max_rss_kb"].as_f64().unwrap(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = cli_arg("--runs").map_or(5, |v| v.parse().unwrap());
    let firebreak = cli_arg("--firebreak").map_or_else(
        || bin_dir().parent().unwrap().join("release/firebreak"),
        PathBuf::from,
    );
    assert!(
        firebreak.exists(),
        "{} is missing: `make bench-versus` builds it (cargo build --release -p firebreak-cli)",
        firebreak.display()
    );
    let python = venv_bin("python3");
    let baseline = root().join("benches/baseline/responder.py");
    println!("Whole process, fresh account each run, median of {runs} runs");
    println!(
        "{:<40} {:>11} {:>11} {:>6} {:>11} {:>11} {:>6}",
        "event", "firebreak", "python", "ratio", "fb peak", "py peak", "ratio"
    );
    let mut rows = Vec::new();
    for name in EVENTS {
        let (mut fw, mut fm, mut pw, mut pm) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let (_local, event, env) = account(name).await;
            let (w, m) = measure(&[firebreak.as_path(), Path::new("respond")], &event, &{
                let mut e = env.clone();
                e.insert("RUST_LOG".into(), "warn".into());
                e
            });
            fw.push(w);
            fm.push(m);
            let (_local, event, env) = account(name).await;
            let (w, m) = measure(&[python.as_path(), baseline.as_path()], &event, &env);
            pw.push(w);
            pm.push(m);
            let _ = std::fs::remove_file(&event);
        }
        let (fw, fm, pw, pm) = (median(fw), median(fm), median(pw), median(pm));
        println!(
            "{:<40} {:>9.0}ms {:>9.0}ms {:>6.2} {:>8.1}MiB {:>8.1}MiB {:>6.2}",
            name,
            fw,
            pw,
            fw / pw,
            fm / 1024.0,
            pm / 1024.0,
            fm / pm
        );
        rows.push(serde_json::json!({
            "event": name, "runs": runs,
            "firebreak_wall_ms": fw, "python_wall_ms": pw, "wall_ratio": fw / pw,
            "firebreak_peak_kib": fm, "python_peak_kib": pm, "memory_ratio": fm / pm,
        }));
    }
    if let Some(path) = cli_arg("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}
