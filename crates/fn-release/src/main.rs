//! Firebreak's release function: a responder's release command, and nothing
//! else. Undo (re-enabling a key, lifting a session revocation, restoring
//! an instance's groups) has its own role and its own invoke permission, so
//! whoever may ask for containment cannot thereby undo it.
//! Settings and AWS clients are built once per cold start; see `firebreak_lambda`.

// The handler's future (parse, plan, undo in the released incident's own
// account, record, notify) nests deeper than rustc's default query depth
// when it lays out `main`.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    firebreak_lambda::run(firebreak_lambda::Function::Release).await
}
