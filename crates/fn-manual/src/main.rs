//! Firebreak's manual function: a responder's direct invocation: an alert or a command.
//! Settings and AWS clients are built once per cold start; see `firebreak_lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    firebreak_lambda::run(firebreak_lambda::Function::Manual).await
}
