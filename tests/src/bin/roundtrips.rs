//! `make bench-roundtrips`: time to containment in AWS round trips. Every
//! AWS call goes through a proxy that holds it for a fixed delay (100 ms by
//! default, `--delay-ms`) before the local emulator answers, so the time
//! from "event in" to "containment done" and to "everything done", divided
//! by that delay, counts the round trips on the critical path: calls made
//! one after another add up, calls made concurrently count once.
//!
//! The emulator's own work takes time too (moto is Python; an SNS publish
//! to an SQS subscriber costs it ~100 ms), so every event also runs with no
//! delay, and the round trips are (time with the delay − time without) ÷
//! the delay. Each run is on a freshly seeded account (a new emulator);
//! the median of `--runs` runs is reported. It prints a table and, with
//! `--json FILE`, writes the figures for BENCHMARKS.md (`--only TEXT` runs
//! the rows whose label contains TEXT, `--trace` prints each run's calls).
//!
//! Two kinds of row. *In-process*: the executor called here, with clients
//! built before the clock starts. *Whole process*: `firebreak respond
//! EVENT` (the debug binary of the shared build) started as a user starts
//! it, its endpoint the proxy, STS asked as the CLI asks it, the emulator
//! warmed first (`Local::warm_emulator`); "everything" is its exit, and
//! containment is read off the outcomes it prints. Both kinds subtract the
//! same run without the delay, so start-up cancels out and what remains is
//! the round trips a user waits for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use firebreak_aws::clients::Limits;
use firebreak_aws::{respond, respond_asking, Clients, Executor, HomeAnswer};
use firebreak_core::{plan_event, ActionKind};
use firebreak_e2e::proxy::{Call, FaultProxy};
use firebreak_e2e::{bin_dir, cli_arg, Local, ACCOUNT};

/// How a run starts.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// A warm function: it knows its account.
    Warm,
    /// Warm, in a VPC where Firebreak has isolated an instance before (its
    /// two groups exist). Each run's account is fresh, so otherwise the
    /// brute force is the first isolation in its VPC.
    GroupsExist,
    /// A CLI run or a function's first event: STS is asked which account
    /// the credentials act in at the same time.
    Cold,
}

impl Start {
    fn label(self, name: &str) -> String {
        match self {
            Start::Warm => name.to_string(),
            Start::GroupsExist => format!("{name} (groups exist)"),
            Start::Cold => format!("{name} (cold: STS asked)"),
        }
    }
}

/// The events measured: one per playbook with containment.
const EVENTS: [(&str, Start); 6] = [
    ("guardduty-leaked-key.json", Start::Warm),
    ("guardduty-leaked-key.json", Start::Cold),
    ("guardduty-temporary-credentials.json", Start::Warm),
    ("guardduty-ssh-brute-force.json", Start::Warm),
    ("guardduty-ssh-brute-force.json", Start::GroupsExist),
    ("alarm-failed-login.json", Start::Warm),
];

/// The whole-process rows: `firebreak respond EVENT`, which always asks
/// STS beside its first calls.
const PROCESS_EVENTS: [(&str, Start); 5] = [
    ("guardduty-leaked-key.json", Start::Warm),
    ("guardduty-temporary-credentials.json", Start::Warm),
    ("guardduty-ssh-brute-force.json", Start::Warm),
    ("guardduty-ssh-brute-force.json", Start::GroupsExist),
    ("alarm-failed-login.json", Start::Warm),
];

/// An earlier brute force in the same VPC, against another instance and
/// from another address: Firebreak creates its groups there.
async fn isolate_another_first(local: &Local, exec: &Executor, cfg: &firebreak_core::Config) {
    let ec2 = &local.clients.ec2;
    let seeded = &local.seeded;
    let other = firebreak_e2e::support::instance_in(ec2, &seeded.subnet, &seeded.web_group).await;
    let mut ev = local.seeded.event("guardduty-ssh-brute-force.json");
    ev["detail"]["id"] = "earlier-brute-force-in-this-vpc".into();
    ev["detail"]["resource"]["instanceDetails"]["instanceId"] = other.into();
    ev["detail"]["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]
        ["ipAddressV4"] = "198.51.100.200".into();
    let plans = plan_event(ev.to_string().as_bytes(), cfg).unwrap();
    let earlier = respond(exec, &plans).await;
    assert_eq!(earlier.failure(), None, "the earlier isolation failed");
}

struct Sample {
    containment: Duration,
    everything: Duration,
    calls: usize,
}

async fn once(name: &str, start: Start, delay: Duration) -> Sample {
    let local = Local::start().await;
    let proxy = FaultProxy::start(&local.emu.url);
    let through = local
        .emu
        .sdk_config_through(&proxy.url, Limits::DEFAULT)
        .await;
    let cfg = local.seeded.config(&[]);
    let exec = Executor::for_account(Clients::from_config(&through), cfg.clone(), ACCOUNT);
    local.add_app_server_role().await;
    if start == Start::GroupsExist {
        isolate_another_first(&local, &exec, &cfg).await;
    }
    let event = local.seeded.event(name).to_string();
    proxy.delay_all(Some(delay));
    let t0 = proxy.seen().len();
    let began = Utc::now();
    let clock = Instant::now();
    let plans = plan_event(event.as_bytes(), &cfg).unwrap();
    let response = if start == Start::Cold {
        let clients = Clients::from_config(&through);
        let home = HomeAnswer::ask(clients.sts.clone());
        respond_asking(&clients, &cfg, &home, &plans).await.unwrap()
    } else {
        respond(&exec, &plans).await
    };
    let everything = clock.elapsed();
    if let Some(f) = response.failure() {
        eprintln!("{name}: {f}");
    }
    // Containment is done when the last containment action finished.
    let last = response
        .incidents
        .iter()
        .flat_map(|i| &i.actions)
        .filter(|a| a.kind.is_containment())
        .filter_map(|a| DateTime::parse_from_rfc3339(&a.at).ok())
        .max();
    let containment = last
        .map(|t| (t.with_timezone(&Utc) - began).to_std().unwrap_or_default())
        .unwrap_or_default();
    let calls = proxy.seen().split_off(t0);
    trace(&calls);
    Sample {
        containment,
        everything,
        calls: calls.len(),
    }
}

/// With `--trace`, each call of a run, from the first.
fn trace(calls: &[Call]) {
    if std::env::args().any(|a| a == "--trace") {
        let first = calls.first().map(|c| c.at).unwrap_or_default();
        for c in calls {
            let ms = c.at.saturating_sub(first).as_millis();
            println!("  {ms:>6} ms  {} {} {}", c.service, c.op, c.path);
        }
    }
}

/// One whole-process run: `firebreak respond EVENT` against a fresh,
/// warmed account, every call through the proxy (STS too).
async fn once_process(name: &str, start: Start, delay: Duration) -> Sample {
    let local = Local::start().await;
    local.add_app_server_role().await;
    local.warm_emulator().await;
    let proxy = FaultProxy::start(&local.emu.url);
    if start == Start::GroupsExist {
        let through = local
            .emu
            .sdk_config_through(&proxy.url, Limits::DEFAULT)
            .await;
        let cfg = local.seeded.config(&[]);
        let exec = Executor::for_account(Clients::from_config(&through), cfg.clone(), ACCOUNT);
        isolate_another_first(&local, &exec, &cfg).await;
    }
    let event = std::env::temp_dir().join(format!(
        "firebreak-roundtrips-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&event, local.seeded.event(name).to_string()).unwrap();
    let mut cmd = Command::new(bin_dir().join("firebreak"));
    cmd.arg("respond").arg(&event).envs(local.seeded.settings());
    for (k, v) in [
        ("AWS_ENDPOINT_URL", proxy.url.as_str()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("RUST_LOG", "warn"),
    ] {
        cmd.env(k, v);
    }
    proxy.delay_all(Some(delay));
    let t0 = proxy.seen().len();
    let began = Utc::now();
    let clock = Instant::now();
    let out = cmd.output().expect("run firebreak respond");
    let everything = clock.elapsed();
    let _ = std::fs::remove_file(&event);
    // A failed run has no containment to time: its row would be made up.
    assert!(
        out.status.success(),
        "{name}: firebreak respond failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let calls = proxy.seen().split_off(t0);
    trace(&calls);
    Sample {
        containment: containment_printed(&out.stdout, began),
        everything,
        calls: calls.len(),
    }
}

/// From the response `firebreak respond` prints: when the last
/// containment action finished, after `began`.
fn containment_printed(stdout: &[u8], began: DateTime<Utc>) -> Duration {
    let response: serde_json::Value = serde_json::from_slice(stdout).unwrap_or_default();
    let actions = response["incidents"].as_array().into_iter().flatten();
    let last = actions
        .flat_map(|i| i["actions"].as_array().into_iter().flatten())
        .filter(|a| {
            serde_json::from_value::<ActionKind>(a["kind"].clone())
                .is_ok_and(ActionKind::is_containment)
        })
        .filter_map(|a| DateTime::parse_from_rfc3339(a["at"].as_str()?).ok())
        .max();
    last.map(|t| (t.with_timezone(&Utc) - began).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// How a row is run.
#[derive(Clone, Copy)]
enum Kind {
    InProcess,
    Process,
}

async fn sample(kind: Kind, name: &str, start: Start, delay: Duration) -> Sample {
    match kind {
        Kind::InProcess => once(name, start, delay).await,
        Kind::Process => once_process(name, start, delay).await,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let delay = Duration::from_millis(cli_arg("--delay-ms").map_or(100, |v| v.parse().unwrap()));
    let runs: usize = cli_arg("--runs").map_or(3, |v| v.parse().unwrap());
    // `--only TEXT`: the rows whose label contains TEXT.
    let only = cli_arg("--only");
    println!(
        "AWS round trips on the critical path (every call held {} ms; median of {runs} runs)",
        delay.as_millis()
    );
    println!(
        "{:<68} {:>12} {:>8} {:>12} {:>8} {:>6}",
        "event", "containment", "trips", "everything", "trips", "calls"
    );
    let mut rows = Vec::new();
    let in_process = EVENTS.map(|(n, s)| (Kind::InProcess, n, s));
    let process = PROCESS_EVENTS.map(|(n, s)| (Kind::Process, n, s));
    for (kind, name, start) in in_process.into_iter().chain(process) {
        let label = match kind {
            Kind::InProcess => start.label(name),
            Kind::Process => format!("firebreak respond {}", start.label(name)),
        };
        if only.as_ref().is_some_and(|o| !label.contains(o.as_str())) {
            continue;
        }
        let mut slow = Vec::new();
        let mut fast = Vec::new();
        for _ in 0..runs {
            slow.push(sample(kind, name, start, delay).await);
            fast.push(sample(kind, name, start, Duration::ZERO).await);
        }
        let calls = slow[0].calls;
        let med = |v: &[Sample], f: fn(&Sample) -> Duration| median(v.iter().map(f).collect());
        let (c, c0) = (med(&slow, |s| s.containment), med(&fast, |s| s.containment));
        let (e, e0) = (med(&slow, |s| s.everything), med(&fast, |s| s.everything));
        let trips = |with: Duration, without: Duration| {
            with.saturating_sub(without).as_secs_f64() / delay.as_secs_f64()
        };
        println!(
            "{:<68} {:>10}ms {:>8.1} {:>10}ms {:>8.1} {:>6}",
            label,
            c.as_millis(),
            trips(c, c0),
            e.as_millis(),
            trips(e, e0),
            calls
        );
        rows.push(serde_json::json!({
            "event": name, "whole_process": matches!(kind, Kind::Process),
            "isolated_in_this_vpc_before": start == Start::GroupsExist, "sts_asked_meanwhile": start == Start::Cold || matches!(kind, Kind::Process), "delay_ms": delay.as_millis() as u64,
            "containment_ms": c.as_millis() as u64, "containment_ms_no_delay": c0.as_millis() as u64,
            "containment_trips": trips(c, c0),
            "everything_ms": e.as_millis() as u64, "everything_ms_no_delay": e0.as_millis() as u64,
            "everything_trips": trips(e, e0),
            "calls": calls,
        }));
    }
    if let Some(path) = cli_arg("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}
