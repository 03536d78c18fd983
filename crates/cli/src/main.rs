//! `firebreak`: the responder's command line.
//!
//! `firebreak plan FILE` shows, without touching AWS, exactly what Firebreak
//! would do with an event. Output is JSON on stdout; a refusal is one line on
//! stderr and a non-zero exit, with nothing on stdout, so scripts can rely on
//! both.

use std::io::{Read, Write};
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use firebreak_aws::{Clients, Executor};
use firebreak_core::{event::MAX_EVENT_BYTES, plan_event, Config, PlanSet, PlanStatus};

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

async fn respond(file: &str, policy: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    let mut cfg = Config::from_env(policy).context("configuration")?;
    cfg.dry_run |= dry_run;
    let input = read_input(file)?;
    // Bad input is refused before any AWS call.
    let plans = plan_event(&input, &cfg).with_context(|| file.to_string())?;
    let executor = Executor::connect(Clients::from_env().await, Arc::new(cfg))
        .await
        .context("AWS credentials")?;
    let response = firebreak_aws::respond(&executor, &plans).await;
    println!("{}", serde_json::to_string(&response)?);
    if let Some(failure) = response.failure() {
        anyhow::bail!("{failure}");
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Respond {
            file,
            policy,
            dry_run,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(respond(&file, policy.as_deref(), dry_run))
        }
        Cmd::Plan {
            file,
            policy,
            pretty,
            text,
        } => {
            let cfg = Config::from_env(policy.as_deref()).context("configuration")?;
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
