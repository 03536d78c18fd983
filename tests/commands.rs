//! Every command a user is shown reuses the one debug build that `make
//! test` and `make demo` make: nothing the README or `make help` offers
//! compiles the AWS SDK a second time (a `cargo run -p …`, a `cargo build`
//! of one crate, `cargo clippy`, or `cargo lambda watch` building the
//! functions resolve other features and take about 5 minutes more).
//!
//! Checked without building anything: `make -n VERB` shows each verb's
//! commands, and the README's code blocks are read line by line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use firebreak_e2e::{root, BUILD_ARGS};

/// Verbs that build something else on purpose, and say so in `make help`
/// and the README: release binaries (the Lambda bundles, the benchmarks
/// that compare release builds), the bench profile of the pure core, the
/// fuzzer's own workspace, SAM's build.
const OTHER_BUILDS: [&str; 7] = [
    "bench",
    "build",
    "deploy",
    "fuzz",
    "bench-core",
    "bench-versus",
    "bench-coldstart",
];

fn make(args: &[&str]) -> String {
    let out = Command::new("make")
        .args(args)
        .current_dir(root())
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The verbs `make help` lists.
fn verbs() -> Vec<String> {
    make(&["--no-print-directory", "help"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("make "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Why a shell line that runs cargo builds something other than the shared
/// build, if it does.
fn second_build(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "cargo" || w.ends_with("/cargo"))?;
    let (sub, rest) = (words.get(at + 1)?, &words[at + 2..]);
    let shared = &BUILD_ARGS[1..];
    match *sub {
        "fmt" | "lambda" | "install" | "fuzz" => None,
        "run" | "check" | "clippy" | "rustc" | "doc" => {
            Some(format!("`cargo {sub}` compiles the SDK again"))
        }
        "build" | "test" | "bench" => {
            if rest.contains(&"--release") {
                return None;
            }
            if rest
                .iter()
                .any(|w| *w == "-p" || w.starts_with("--package"))
            {
                return Some("builds one package: other features, the SDK again".into());
            }
            // `cargo test` selects the same packages and the same
            // dev-dependencies as the build (TEST_TARGETS).
            let want: &[&str] = if *sub == "build" {
                shared
            } else {
                &["--workspace", "--tests", "--benches", "--locked"]
            };
            if !want.iter().all(|w| rest.contains(w)) {
                return Some(format!("not the shared target set {want:?}"));
            }
            if !line.contains("RUSTC_WORKSPACE_WRAPPER=") {
                return Some("without the clippy wrapper: our crates compile twice".into());
            }
            None
        }
        _ => None,
    }
}

#[test]
fn every_make_verb_reuses_the_shared_build() {
    let verbs = verbs();
    for needed in ["test", "demo", "plan", "firebreak", "watch", "lint"] {
        assert!(
            verbs.iter().any(|v| v == needed),
            "make help lacks {needed}: {verbs:?}"
        );
    }
    let mut wrong = Vec::new();
    for verb in verbs.iter().filter(|v| !OTHER_BUILDS.contains(&v.as_str())) {
        // -n prints every command, recursive makes included, and runs none.
        for line in make(&["--no-print-directory", "-n", verb]).lines() {
            if let Some(why) = second_build(line) {
                wrong.push(format!("make {verb}: {why}: {line}"));
            }
            // A program that builds (the demo, the benches start the
            // functions) inherits the wrapper, or it compiles our crates
            // again without it.
            if line.contains("/debug/firebreak-")
                && !line.contains("RUSTC_WORKSPACE_WRAPPER=")
                && !line.contains("firebreak-serve")
            {
                wrong.push(format!(
                    "make {verb}: runs a program that builds, without the wrapper: {line}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_makefile_and_the_tests_build_the_same_targets() {
    let line = make(&["--no-print-directory", "-n", "test-build"])
        .lines()
        .find(|l| l.contains(" build "))
        .map(str::to_string)
        .unwrap();
    let args = line.split_once("cargo ").unwrap().1;
    assert_eq!(
        args.split_whitespace().collect::<Vec<_>>(),
        BUILD_ARGS,
        "{line}"
    );
}

#[test]
fn the_readme_shows_no_command_that_builds_again() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let verbs = verbs();
    let mut in_code = false;
    let mut wrong = Vec::new();
    for (n, line) in readme.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        // Commands in code blocks, and `inline` ones in the text.
        let commands: Vec<String> = if in_code {
            vec![line.to_string()]
        } else {
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        for c in commands {
            for part in c.split(['|', ';']).flat_map(|p| p.split("&&")) {
                if let Some(why) = second_build(&format!("RUSTC_WORKSPACE_WRAPPER=x {part}")) {
                    wrong.push(format!("README.md:{}: {why}: {}", n + 1, part.trim()));
                }
                let words: Vec<&str> = part.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "make") {
                    if let Some(v) = words
                        .get(i + 1)
                        .filter(|v| !v.contains('=') && !v.starts_with('-'))
                    {
                        if !verbs.iter().any(|x| x == v) {
                            wrong.push(format!(
                                "README.md:{}: `make {v}` is not a verb of `make help`",
                                n + 1
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
