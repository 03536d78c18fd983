//! Firebreak's expirer function: on a schedule: lifts blocks whose time is up.
//! Settings and AWS clients are built once per cold start; see `firebreak_lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    firebreak_lambda::run(firebreak_lambda::Function::Expirer).await
}
