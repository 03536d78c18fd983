//! `make demo`: Firebreak's main job on an embedded default. Starts the
//! local AWS emulator, seeds a small account, runs sample events through the
//! real function binaries under `cargo lambda watch`, prints for each
//! incident a readable summary and the account's state afterwards, then
//! stops everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use firebreak_e2e::{root, seed, support, Emulator, Functions};
use serde_json::Value;

fn summary(function: &str, name: &str, answer: &Value) {
    println!("\n== {name} → {function}");
    for inc in answer["incidents"].as_array().into_iter().flatten() {
        println!(
            "   incident {}  {}  {}",
            inc["id"].as_str().unwrap_or("?"),
            inc["severity"].as_str().unwrap_or("?"),
            inc["incident_type"].as_str().unwrap_or("?")
        );
        for a in inc["actions"].as_array().into_iter().flatten() {
            println!(
                "   {:<13} {:<22} {:<28} {}",
                a["status"].as_str().unwrap_or(""),
                a["kind"].as_str().unwrap_or(""),
                a["target"].as_str().unwrap_or(""),
                a["detail"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(90)
                    .collect::<String>()
            );
        }
    }
    for i in answer["ignored"].as_array().into_iter().flatten() {
        println!("   ignored: {i}");
    }
}

/// What a lockdown changes: the service's desired count, what the
/// listener answers, the secret's current version, the evidence kept.
async fn lockdown_state(c: &firebreak_aws::Clients, s: &firebreak_e2e::Seeded) {
    use support::lockdown as l;
    let t = &s.lockdown;
    println!(
        "   service {}/{}: desired count {}",
        t.cluster,
        t.service,
        l::desired_count(&c.ecs, &t.cluster, &t.service).await
    );
    let answers: Vec<String> = l::default_actions(&c.elb, &t.listener_arn)
        .await
        .iter()
        .map(|a| match (a.forward_config(), a.fixed_response_config()) {
            (Some(f), _) => {
                let w: Vec<String> = f
                    .target_groups()
                    .iter()
                    .map(|g| g.weight().unwrap_or_default().to_string())
                    .collect();
                format!("forward to {} target groups ({})", w.len(), w.join("/"))
            }
            (_, Some(r)) => format!(
                "fixed {} \"{}\"",
                r.status_code().unwrap_or("?"),
                r.message_body().unwrap_or("")
            ),
            _ => a.r#type().map_or("?", |t| t.as_str()).to_string(),
        })
        .collect();
    println!(
        "   listener …/{}: {}",
        t.listener_arn.rsplit('/').next().unwrap_or(""),
        answers.join(", ")
    );
    println!(
        "   secret {}: current version {}",
        t.secret_id,
        l::current_version(&c.secrets, &t.secret_id).await
    );
    let kept = support::object_keys(&c.s3, &s.bucket, "evidence/").await;
    println!(
        "   evidence in s3://{}/evidence/: {} object(s)",
        s.bucket,
        kept.len()
    );
}

#[tokio::main]
async fn main() {
    println!("Starting the local AWS emulator (moto) and seeding a small account…");
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let settings = s.settings();
    println!("Starting the functions under `cargo lambda watch`…");
    let fns = Functions::start(&emu, &settings);
    let runs = [
        ("firebreak-guardduty", "guardduty-leaked-key.json"),
        ("firebreak-guardduty", "guardduty-ssh-brute-force.json"),
        ("firebreak-guardduty", "guardduty-sample-finding.json"),
        // The runbook's CRITICAL alert naming only a user: it is locked out.
        ("firebreak-manual", "manual-compromised-account.json"),
        ("firebreak-alarm", "alarm-failed-login.json"),
        ("firebreak-alarm", "alarm-back-to-ok.json"),
        // The same finding delivered again: nothing is done twice.
        ("firebreak-guardduty", "guardduty-leaked-key.json"),
    ];
    for (function, name) in runs {
        let out = fns.invoke(function, &s.event(name));
        if out.status.success() {
            let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            summary(function, name, &answer);
            if name == "alarm-failed-login.json" {
                println!("   (the local emulator runs Logs Insights without `filter` and `stats`, so the query finds no offenders here; on AWS it returns each address with at least FIREBREAK_OFFENDER_THRESHOLD failed logins in the alarm's window, and each is blocked in the network ACL like the brute force above)");
            }
        } else {
            println!(
                "\n== {name} → {function}\n   error: {}",
                Functions::error_of(&out)
            );
        }
    }

    // A responder at the keyboard: a block by hand, then its release (its
    // own function: undo is granted separately), the way they do it
    // against AWS (`aws lambda invoke`).
    let by_hand = |function: &str, name: &str, payload: &Value| {
        let label = format!("{function} (aws lambda invoke)");
        match fns.aws_cli_invoke(function, payload) {
            Ok(answer) => {
                summary(&label, name, &answer);
                answer
            }
            Err(e) => {
                println!("\n== {name} → {label}\n   error: {e}");
                Value::Null
            }
        }
    };
    let block = by_hand(
        "firebreak-manual",
        "command-block-ip.json",
        &s.event("command-block-ip.json"),
    );
    if let Some(id) = block["incidents"][0]["id"].as_str() {
        let release = serde_json::json!({
            "command": "release", "incident_id": id, "action": 0,
            "requested_by": "oncall-alice", "reason": "demo: undo the manual block"
        });
        by_hand("firebreak-release", "release of that block", &release);
    }

    // The runbook's emergency script as one command: the app taken down,
    // the admin secret rotated, the user data copied aside; then reopened.
    let c = emu.clients().await;
    println!("\n== The app before the lockdown");
    lockdown_state(&c, &s).await;
    let locked = by_hand(
        "firebreak-manual",
        "command-lockdown.json",
        &s.event("command-lockdown.json"),
    );
    println!("\n== The app during the lockdown");
    lockdown_state(&c, &s).await;
    if let Some(id) = locked["incidents"][0]["id"].as_str() {
        let release = serde_json::json!({
            "command": "release", "incident_id": id,
            "requested_by": "oncall-alice", "reason": "demo: the paste was a honeypot, reopen"
        });
        by_hand("firebreak-release", "release of the lockdown", &release);
        println!("\n== The app after the release (the secret stays rotated, the evidence stays)");
        lockdown_state(&c, &s).await;
    }

    // A malformed event: refused with what was wrong, nothing changed.
    let bad = fns.invoke_file(
        "firebreak-guardduty",
        &root().join("events/invalid/severity-is-text.json"),
    );
    println!(
        "\n== invalid/severity-is-text.json → firebreak-guardduty\n   {}",
        Functions::error_of(&bad)
    );

    println!("\n== The account afterwards");
    for k in c
        .iam
        .list_access_keys()
        .user_name(&s.user)
        .send()
        .await
        .unwrap()
        .access_key_metadata()
    {
        println!(
            "   key {} of {}: {}",
            k.access_key_id().unwrap_or(""),
            s.user,
            k.status().map_or("?", |s| s.as_str())
        );
    }
    for user in [s.user.as_str(), "contractor-jane"] {
        let names = c
            .iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .policy_names()
            .join(", ");
        println!("   {user} inline policies: {names}");
    }
    let acl = c
        .ec2
        .describe_network_acls()
        .network_acl_ids(&s.nacl)
        .send()
        .await
        .unwrap();
    for e in acl.network_acls()[0].entries() {
        if e.rule_number() != Some(32767) {
            println!(
                "   {} {} rule {:>5}: {} {}",
                s.nacl,
                if e.egress() == Some(true) {
                    "egress "
                } else {
                    "ingress"
                },
                e.rule_number().unwrap_or_default(),
                e.rule_action().map_or("?", |a| a.as_str()),
                e.cidr_block().or(e.ipv6_cidr_block()).unwrap_or("")
            );
        }
    }
    let groups: Vec<String> = support::eni_groups(&c.ec2, &s.instance)
        .await
        .iter()
        .map(|g| {
            format!(
                "{} ({})",
                g.group_id().unwrap_or(""),
                g.group_name().unwrap_or("")
            )
        })
        .collect();
    println!(
        "   {} network interfaces: groups {}",
        s.instance,
        groups.join(", ")
    );
    // moto lists the instance's launch groups next to the ENI's own; on AWS
    // the interface is in firebreak-isolation alone (the tests check the
    // requests Firebreak sends).
    println!("   (moto also lists the launch group `web`; AWS shows firebreak-isolation alone)");
    let inst = c
        .ec2
        .describe_instances()
        .instance_ids(&s.instance)
        .send()
        .await
        .unwrap();
    for i in inst.reservations().iter().flat_map(|r| r.instances()) {
        let tags: Vec<String> = i
            .tags()
            .iter()
            .map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or("")))
            .collect();
        println!("   {} tags: {}", s.instance, tags.join(", "));
    }
    let snaps =
        support::snapshot_count(&c.ec2, support::filter("tag-key", "firebreak:incident")).await;
    println!("   snapshots (evidence): {snaps}");
    let listed = support::object_keys(&c.s3, &s.bucket, "").await;
    let incidents = listed
        .iter()
        .filter(|k| k.ends_with("/incident.json"))
        .count();
    println!(
        "   s3://{}: {} incident records, {} objects in all",
        s.bucket,
        incidents,
        listed.len()
    );
    // What a responder reads back with the CLI, against the same account.
    let cli = |args: &[&str]| {
        let exe = std::env::current_exe().unwrap().with_file_name("firebreak");
        let out = std::process::Command::new(exe)
            .args(args)
            .envs(&settings)
            .env("AWS_ENDPOINT_URL", &emu.url)
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output();
        println!("\n== firebreak {}", args.join(" "));
        match out {
            Ok(o) => {
                for line in String::from_utf8_lossy(&o.stdout).lines() {
                    println!("   {line}");
                }
                for line in String::from_utf8_lossy(&o.stderr).lines() {
                    println!("   {line}");
                }
            }
            Err(e) => println!("   could not run the CLI: {e}"),
        }
    };
    cli(&["incidents", "list"]);
    cli(&["blocks"]);

    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let notices = support::notices(&sqs, &s.topics.queue_url).await;
    println!(
        "\n== What the team was told ({} notices on the team topic)",
        notices.len()
    );
    for n in &notices {
        println!("   {}", n["Subject"].as_str().unwrap_or("(no subject)"));
    }
    drop(fns);
    drop(emu);
    println!("\nStopped the functions and the emulator.");
}
