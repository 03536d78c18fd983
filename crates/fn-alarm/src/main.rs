//! Firebreak's alarm function: SNS events carrying CloudWatch alarms.
//! Settings and AWS clients are built once per cold start; see `firebreak_lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    firebreak_lambda::run(firebreak_lambda::Function::Alarm).await
}
