//! Firebreak's alarm function: SNS events carrying CloudWatch alarms.
//! Settings and AWS clients are built once per cold start; see `firebreak_lambda`.

// The handler's future (parse, plan, contain in the incident's own
// account, record, notify) nests deeper than rustc's default query depth
// when it lays out `main`.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    firebreak_lambda::run(firebreak_lambda::Function::Alarm).await
}
