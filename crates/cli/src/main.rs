//! `firebreak`: the responder's command line.
//!
//! `firebreak plan FILE` shows, without touching AWS, exactly what Firebreak
//! would do with an event; `respond` carries it out; `incidents`, `blocks`
//! and `release` read back and undo what Firebreak did. Output is on stdout
//! (a table for people, `--json` for machines); a refusal is one line on
//! stderr and a non-zero exit, with nothing on stdout, so scripts can rely
//! on both. Progress goes to stderr, and only when it is a terminal.

use std::io::{Read, Write};
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use firebreak_aws::inventory::{self, Filter, IncidentStatus};
use firebreak_aws::{Clients, Executor, HomeAnswer, Progress};
use firebreak_core::{event::MAX_EVENT_BYTES, plan_event, Config, PlanSet, PlanStatus, Severity};

mod table;

use table::Bar;

#[derive(Debug, Parser)]
#[command(
    name = "firebreak",
    version,
    about = "Firebreak: automated incident response for AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the plan for an event as JSON, without touching AWS.
    Plan {
        /// The event file (SNS, EventBridge, a GuardDuty finding, a manual
        /// alert or command), or `-` for standard input.
        file: String,
        /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
        #[arg(long)]
        policy: Option<String>,
        /// Pretty-print the JSON.
        #[arg(long)]
        pretty: bool,
        /// A summary for people instead of JSON.
        #[arg(long, conflicts_with = "pretty")]
        text: bool,
    },
    /// Carry out the plan against the AWS account the standard SDK
    /// configuration points at (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, …).
    Respond {
        /// The event file, or `-` for standard input.
        file: String,
        /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
        #[arg(long)]
        policy: Option<String>,
        /// Record and notify what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What Firebreak recorded: `incidents list`, `incidents show ID`.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCmd,
    },
    /// The deny entries Firebreak holds in each network ACL, with their
    /// incident and expiry, checked against the NACL itself.
    Blocks {
        /// JSON for machines.
        #[arg(long)]
        json: bool,
        /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
        #[arg(long)]
        policy: Option<String>,
    },
    /// Undo an incident's actions from its record: unblock its addresses,
    /// restore security groups and termination protection, remove the
    /// session-revocation policy, restore log retention. The release is
    /// itself an incident: recorded and notified.
    Release(ReleaseArgs),
}

#[derive(Debug, Subcommand)]
enum IncidentsCmd {
    /// The incidents Firebreak handled in a time range (recorded, ran again,
    /// released, lifted a block), whatever date the signal was first seen;
    /// the most recently handled first.
    List {
        /// Handled since: `7d`, `12h`, `30m`, a date or an RFC 3339 time.
        #[arg(long, default_value = "7d")]
        since: String,
        /// Handled before: a date or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// At least this severe (low, medium, high, critical).
        #[arg(long)]
        severity: Option<String>,
        /// Only this status (failed, held, in-progress, released,
        /// contained, dry-run, recorded).
        #[arg(long)]
        status: Option<String>,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// JSON for machines.
        #[arg(long)]
        json: bool,
        /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
        #[arg(long)]
        policy: Option<String>,
    },
    /// One incident: what it was, each action with its prior state, its releases.
    Show {
        /// The incident id (fb-…).
        id: String,
        /// JSON for machines.
        #[arg(long)]
        json: bool,
        /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
        #[arg(long)]
        policy: Option<String>,
    },
}

/// The plan as a person reads it at 3 a.m.: one line per incident, one per action.
fn summary(plans: &PlanSet) -> String {
    let mut out = String::new();
    for p in &plans.incidents {
        let i = &p.incident;
        out.push_str(&format!(
            "{}  {:<8}  {}  {}  (account {}, {}){}{}\n",
            i.id,
            i.severity.as_str(),
            i.source.as_str(),
            i.incident_type,
            i.account.as_deref().unwrap_or("-"),
            i.region.as_deref().unwrap_or("-"),
            if i.sample { "  [sample]" } else { "" },
            if p.dry_run { "  [dry run]" } else { "" },
        ));
        for a in &p.actions {
            let mark = match a.status {
                PlanStatus::Planned => "plan",
                PlanStatus::Skipped => "SKIP",
            };
            out.push_str(&format!(
                "    {mark}  {:<22} {:<28} {}\n",
                a.kind.as_str(),
                a.target,
                a.reason
            ));
        }
    }
    for g in &plans.ignored {
        out.push_str(&format!("ignored record {}: {}\n", g.record, g.reason));
    }
    out
}

/// Reads at most one byte more than the limit, so an endless stdin cannot
/// exhaust memory and an oversized event is still reported as oversized.
fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let limit = (MAX_EVENT_BYTES + 1) as u64;
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        f.take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {file}"))?;
    }
    Ok(buf)
}

/// `value` as one JSON line for machines, or as a table for people.
fn emit<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(value)?)?;
    } else {
        out.write_all(table(value).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// The settings: `FIREBREAK_*` and the policy file (`--policy` wins).
fn configured(policy: Option<&str>) -> anyhow::Result<Config> {
    Config::from_env(policy).context("configuration")
}

/// The executor the standard SDK configuration points at.
async fn connect(cfg: Config) -> anyhow::Result<Executor> {
    Executor::connect(Clients::from_env().await, Arc::new(cfg))
        .await
        .context("AWS credentials")
}

async fn incidents(cmd: IncidentsCmd) -> anyhow::Result<()> {
    match cmd {
        IncidentsCmd::List {
            since,
            until,
            severity,
            status,
            account,
            json,
            policy,
        } => {
            let now = chrono::Utc::now();
            let time = |flag: &str, v: &str| {
                inventory::parse_since(v, now).with_context(|| {
                    format!("{flag} `{v}`: expected 7d, 12h, 30m, a date (2026-11-20) or an RFC 3339 time")
                })
            };
            let filter = Filter {
                since: Some(time("--since", &since)?),
                until: until.as_deref().map(|u| time("--until", u)).transpose()?,
                min_severity: severity
                    .as_deref()
                    .map(|s| {
                        Severity::parse(s).with_context(|| {
                            format!("--severity `{s}`: expected low, medium, high or critical")
                        })
                    })
                    .transpose()?,
                status: status
                    .as_deref()
                    .map(|s| {
                        IncidentStatus::parse(s).with_context(|| {
                            let all: Vec<&str> =
                                IncidentStatus::ALL.iter().map(|x| x.as_str()).collect();
                            format!("--status `{s}`: expected one of {}", all.join(", "))
                        })
                    })
                    .transpose()?,
                account,
            };
            let exec = connect(configured(policy.as_deref())?).await?;
            let bar = Bar::new("reading records");
            let found = exec
                .incidents(&filter, &|n, total| bar.show(n, total))
                .await
                .context("listing incidents")?;
            bar.done();
            emit(json, found.as_slice(), table::incidents)
        }
        IncidentsCmd::Show { id, json, policy } => {
            let exec = connect(configured(policy.as_deref())?).await?;
            let found = exec
                .incident(&id)
                .await
                .context("reading the record")?
                .with_context(|| format!("no record of incident {id}"))?;
            emit(json, &found, table::incident)
        }
    }
}

async fn blocks(json: bool, policy: Option<&str>) -> anyhow::Result<()> {
    let exec = connect(configured(policy)?).await?;
    let bar = Bar::new("reading network ACLs");
    let held = exec
        .blocks(&|n, total| bar.show(n, total))
        .await
        .context("reading the block ledger")?;
    bar.done();
    emit(json, held.as_slice(), table::blocks)
}

/// The release command the manual responder takes, run here.
#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    /// The incident to release (fb-…).
    id: String,
    /// Only this action (its index in `incidents show`).
    #[arg(long)]
    action: Option<u32>,
    /// Also re-activate a deactivated access key (rotate it instead if
    /// you can: a leaked key stays leaked).
    #[arg(long)]
    force: bool,
    /// Why: kept in the record and sent to the team.
    #[arg(long)]
    reason: String,
    /// Who asks (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// JSON for machines.
    #[arg(long)]
    json: bool,
    /// A TOML policy file (overrides FIREBREAK_POLICY_FILE).
    #[arg(long)]
    policy: Option<String>,
}

async fn release(r: ReleaseArgs) -> anyhow::Result<()> {
    let cfg = configured(r.policy.as_deref())?;
    let by =
        r.by.or_else(|| std::env::var("USER").ok())
            .filter(|b| !b.trim().is_empty())
            .context("who asks: pass --by (USER is not set)")?;
    let mut command = serde_json::json!({
        "command": "release",
        "incident_id": r.id,
        "requested_by": by,
        "reason": r.reason,
        "force": r.force,
    });
    if let Some(n) = r.action {
        command["action"] = serde_json::json!(n);
    }
    // The same parser and envelope as the manual responder: bad input is
    // refused here, before any AWS call.
    let plans = plan_event(command.to_string().as_bytes(), &cfg).context("release")?;
    let bar = Bar::new("releasing");
    let bar_in = bar.clone();
    let exec = connect(cfg)
        .await?
        .with_progress(Progress::new(move |n, total, _| bar_in.show(n, total)));
    // A mistyped id is refused before anything is recorded or anyone told.
    exec.incident_exists(&r.id)
        .await
        .context("reading the records")?
        .then_some(())
        .with_context(|| format!("no record of incident {}", r.id))?;
    let response = firebreak_aws::respond(&exec, &plans).await;
    bar.done();
    emit(r.json, &response, table::release)?;
    if let Some(failure) = response.failure() {
        anyhow::bail!("{failure}");
    }
    Ok(())
}

async fn respond(file: &str, policy: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    let mut cfg = configured(policy)?;
    cfg.dry_run |= dry_run;
    let input = read_input(file)?;
    // Bad input is refused before any AWS call.
    let plans = plan_event(&input, &cfg).with_context(|| file.to_string())?;
    // STS is asked which account the credentials act in while the
    // incidents start (their first changes wait for the answer).
    let clients = Clients::from_env().await;
    let home = HomeAnswer::ask(clients.sts.clone());
    // A lockdown's evidence copy goes object by object.
    let bar = Bar::new("copying evidence");
    let bar_in = bar.clone();
    let progress = Progress::new(move |n, total, _| bar_in.show(n, total));
    let response =
        firebreak_aws::respond_showing(&clients, &Arc::new(cfg), &home, &plans, &progress).await;
    bar.done();
    let response = response.context("AWS credentials")?;
    println!("{}", serde_json::to_string(&response)?);
    if let Some(failure) = response.failure() {
        anyhow::bail!("{failure}");
    }
    Ok(())
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Respond {
            file,
            policy,
            dry_run,
        } => block_on(respond(&file, policy.as_deref(), dry_run)),
        Cmd::Incidents { command } => block_on(incidents(command)),
        Cmd::Blocks { json, policy } => block_on(blocks(json, policy.as_deref())),
        Cmd::Release(r) => block_on(release(r)),
        Cmd::Plan {
            file,
            policy,
            pretty,
            text,
        } => {
            let cfg = configured(policy.as_deref())?;
            let input = read_input(&file)?;
            let plans = plan_event(&input, &cfg).with_context(|| file.clone())?;
            let rendered = if text {
                summary(&plans)
            } else if pretty {
                serde_json::to_string_pretty(&plans)? + "\n"
            } else {
                serde_json::to_string(&plans)? + "\n"
            };
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("firebreak: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}
