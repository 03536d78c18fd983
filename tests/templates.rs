//! The CloudFormation templates against the findings of their security
//! review: `tests/templates/check_templates.py` resolves template.yaml,
//! template-member.yaml and template-region.yaml for several parameter sets
//! and fails while a finding is open (unconditioned CreateTags, any
//! instance attribute, AssumeRole into the own account, unprotected
//! Firebreak roles, name-only principal protection, rewritable records,
//! functions without alarms, topics without policies, the member roles'
//! least privilege, …). `make style` runs the scanners (cfn-lint, sam
//! validate --lint, checkov); this runs the review's own checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root: this crate lives in `<root>/tests`.
fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_templates_pass_the_security_review_checks() {
    let root = workspace_root();
    let python = root.join(".venv/bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (the project's pinned Python tools, PyYAML among them) and test again",
        python.display()
    );
    let out = Command::new(&python)
        .arg(root.join("tests/templates/check_templates.py"))
        .arg(&root)
        .output()
        .expect("run tests/templates/check_templates.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "the templates fail the security review's checks:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
