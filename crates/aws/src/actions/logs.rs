//! CloudWatch Logs: keeping the evidence longer, and finding who failed to
//! log in.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::types::{QueryStatus, ResultField};
use chrono::DateTime;
use serde_json::json;

use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, RetentionPrior};

/// Raises a log group's retention to `days`. A group that already keeps its
/// events at least that long (or forever) is left alone.
pub async fn increase_retention(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    days: u32,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let out = logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeLogGroups", e))?;
    let mut calls = vec!["DescribeLogGroups".to_string()];
    let found = out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .ok_or_else(|| {
            AwsError::from(Own::NoSuchLogGroup {
                group: group.to_string(),
            })
        })?;
    let prior = found.retention_in_days();
    let state = prior::to_json(&RetentionPrior {
        log_group: group.into(),
        retention_in_days: prior,
    });
    match prior {
        None => {
            return Ok(Step::new(
                true,
                format!("{group} already keeps its events forever"),
                state,
                calls,
            ))
        }
        Some(d) if i64::from(d) >= i64::from(days) => {
            return Ok(Step::new(
                true,
                format!("{group} already keeps its events {d} days"),
                state,
                calls,
            ))
        }
        Some(_) => {}
    }
    gate.pass().await?;
    logs.put_retention_policy()
        .log_group_name(group)
        .retention_in_days(i32::try_from(days).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("PutRetentionPolicy", e))?;
    calls.push("PutRetentionPolicy".into());
    Ok(Step::new(
        false,
        format!(
            "{group} now keeps its events {days} days (was {})",
            prior.unwrap_or_default()
        ),
        state,
        calls,
    ))
}

/// Undo of [`increase_retention`]: puts the recorded retention back.
pub async fn restore_retention(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    prior_days: Option<i32>,
) -> Result<Step, AwsError> {
    let (op, result) = match prior_days {
        Some(d) => (
            "PutRetentionPolicy",
            logs.put_retention_policy()
                .log_group_name(group)
                .retention_in_days(d)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("PutRetentionPolicy", e)),
        ),
        None => (
            "DeleteRetentionPolicy",
            logs.delete_retention_policy()
                .log_group_name(group)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("DeleteRetentionPolicy", e)),
        ),
    };
    result?;
    Ok(Step::new(
        false,
        format!("{group} retention back to {prior_days:?} days"),
        json!({ "log_group": group }),
        vec![op.to_string()],
    ))
}

/// How long to wait for a Logs Insights query.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// Pause between `GetQueryResults` calls.
    pub every: Duration,
    /// Calls before giving up (the query is then stopped).
    pub max_polls: u32,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            every: Duration::from_millis(500),
            max_polls: 40,
        }
    }
}

/// An address and how many failed logins it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offender {
    /// The source address.
    pub ip: IpAddr,
    /// Its failures in the window.
    pub failures: u64,
}

/// The rows' addresses at or over `threshold`, most failures first, once
/// each (see [`offending_ips`] for the rows' contract).
fn offenders(rows: &[Vec<ResultField>], threshold: u32) -> Vec<Offender> {
    let mut out: Vec<Offender> = rows
        .iter()
        .filter_map(|row| {
            let ip = row
                .iter()
                .find_map(|f| f.value().and_then(|v| v.trim().parse::<IpAddr>().ok()))?;
            let failures = row
                .iter()
                .find(|f| f.field() == Some("failures"))
                .and_then(|f| f.value())
                .and_then(|v| v.trim().parse::<f64>().ok())?;
            // Insights returns counts as decimal text.
            let failures = failures.max(0.0).round() as u64;
            (failures >= u64::from(threshold)).then_some(Offender { ip, failures })
        })
        .collect();
    out.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.ip.cmp(&b.ip)));
    out.dedup_by_key(|o| o.ip);
    out
}

/// Runs the configured Insights query over the alarm's window and returns
/// every address at or over `threshold`, most failures first.
///
/// The query's contract: each result row has an address field (the first
/// field whose value parses as an IP address) and a count field named
/// `failures` (the default query's `stats count(*) as failures by
/// ip_address`). Rows without both are ignored, not guessed at.
pub async fn offending_ips(
    logs: &aws_sdk_cloudwatchlogs::Client,
    groups: &[String],
    window: (&str, &str),
    query: &str,
    threshold: u32,
    polling: Polling,
) -> Result<(Vec<Offender>, Vec<String>), AwsError> {
    let secs = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|_| {
                AwsError::from(Own::InvalidWindow {
                    time: s.to_string(),
                })
            })
    };
    let (start, end) = (secs(window.0)?, secs(window.1)?);
    let started = logs
        .start_query()
        .set_log_group_names(Some(groups.to_vec()))
        .start_time(start)
        .end_time(end.max(start + 1))
        .query_string(query)
        .limit(1000)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("StartQuery", e))?;
    let mut calls = vec!["StartQuery".to_string()];
    let id = started.query_id().unwrap_or_default().to_string();
    for _ in 0..polling.max_polls {
        let r = logs
            .get_query_results()
            .query_id(&id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueryResults", e))?;
        calls.push("GetQueryResults".into());
        match r.status() {
            Some(QueryStatus::Complete) => return Ok((offenders(r.results(), threshold), calls)),
            Some(QueryStatus::Failed | QueryStatus::Cancelled | QueryStatus::Timeout) => {
                return Err(AwsError {
                    operation: "GetQueryResults",
                    code: Some("QueryFailed".into()),
                    message: format!("Insights query {id} ended {:?}", r.status()),
                    retryable: true,
                    own: None,
                });
            }
            _ => tokio::time::sleep(polling.every).await,
        }
    }
    // Do not leave a query running (they count against a concurrency quota).
    let _ = logs.stop_query().query_id(&id).send().await;
    Err(Own::QueryTimeout {
        query: id,
        polls: polling.max_polls,
    }
    .into())
}
