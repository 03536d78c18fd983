//! `make watch`: the function binaries that `make test` and `make demo`
//! built, polling `cargo lambda watch --only-lambda-apis` on
//! `127.0.0.1:PORT`, acting on whatever AWS the environment points at
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, the `FIREBREAK_*`
//! settings). Invoke them with `make invoke` or `aws lambda invoke
//! --endpoint-url http://127.0.0.1:PORT`. Their logs come here; Ctrl-C
//! stops everything.
//!
//! Not `cargo lambda watch` building the functions itself: it builds each
//! with `cargo run --bin`, whose features differ from the workspace build
//! and compile the whole AWS SDK a second time (about 5 minutes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use firebreak_e2e::{cli_arg, Aws, Functions, FUNCTIONS};

fn main() {
    let port: u16 = cli_arg("--port").map_or(9000, |p| {
        p.parse()
            .unwrap_or_else(|_| panic!("--port `{p}`: expected a port number"))
    });
    let fns = Functions::launch(port, Aws::Inherited, &BTreeMap::new(), true);
    eprintln!(
        "serving {} on {} (Ctrl-C stops them); e.g. make invoke FN=firebreak-guardduty EVENT=events/guardduty-leaked-key.json",
        FUNCTIONS.join(", "),
        fns.url
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
