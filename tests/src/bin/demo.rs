//! `make demo`: Firebreak's main job on an embedded default. Starts the
//! local AWS emulator, seeds a small account, runs sample events through the
//! real function binaries under `cargo lambda watch`, prints for each
//! incident a readable summary and the account's state afterwards, then
//! stops everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use firebreak_e2e::{root, seed, support, Emulator, Functions, Seeded};
use serde_json::Value;

fn event(name: &str, s: &Seeded) -> Value {
    let mut ev: Value =
        serde_json::from_slice(&std::fs::read(root().join("events").join(name)).unwrap()).unwrap();
    // Point the samples at what the seeded account really has.
    if name == "guardduty-leaked-key.json" {
        ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = s.keys[0].clone().into();
    }
    if name == "guardduty-ssh-brute-force.json" {
        let d = &mut ev["detail"]["resource"]["instanceDetails"];
        d["instanceId"] = s.instance.clone().into();
        d["networkInterfaces"][0]["subnetId"] = s.subnet.clone().into();
        d["networkInterfaces"][0]["vpcId"] = s.vpc.clone().into();
    }
    ev
}

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

#[tokio::main]
async fn main() {
    println!("Starting the local AWS emulator (moto) and seeding a small account…");
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let settings = s.settings();
    println!("Starting the four functions under `cargo lambda watch`…");
    let fns = Functions::start(&emu, &settings);
    let runs = [
        ("firebreak-guardduty", "guardduty-leaked-key.json"),
        ("firebreak-guardduty", "guardduty-ssh-brute-force.json"),
        ("firebreak-guardduty", "guardduty-sample-finding.json"),
        ("firebreak-alarm", "alarm-failed-login.json"),
        ("firebreak-alarm", "alarm-back-to-ok.json"),
        // The same finding delivered again: nothing is done twice.
        ("firebreak-guardduty", "guardduty-leaked-key.json"),
    ];
    for (function, name) in runs {
        let out = fns.invoke(function, &event(name, &s));
        if out.status.success() {
            let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            summary(function, name, &answer);
        } else {
            println!(
                "\n== {name} → {function}\n   error: {}",
                Functions::error_of(&out)
            );
        }
    }

    // A responder at the keyboard: a block by hand, then its release, the
    // way they do it against AWS (`aws lambda invoke`).
    let command = event("command-block-ip.json", &s);
    let (_, body) = fns.aws_cli_invoke("firebreak-manual", &command);
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    summary(
        "firebreak-manual (aws lambda invoke)",
        "command-block-ip.json",
        &answer,
    );
    if let Some(id) = answer["incidents"][0]["id"].as_str() {
        let release = serde_json::json!({
            "command": "release", "incident_id": id, "action": 0,
            "requested_by": "oncall-alice", "reason": "demo: undo the manual block"
        });
        let (_, body) = fns.aws_cli_invoke("firebreak-manual", &release);
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        summary(
            "firebreak-manual (aws lambda invoke)",
            "release of that block",
            &answer,
        );
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
    let sdk = emu.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    for k in iam
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
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let acl = ec2
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
    let enis = support::enis_of(&ec2, &s.instance).await;
    for n in &enis {
        let groups: Vec<String> = n
            .groups()
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
            "   {} of {}: groups {}",
            n.network_interface_id().unwrap_or(""),
            s.instance,
            groups.join(", ")
        );
    }
    // moto lists the instance's launch groups next to the ENI's own; on AWS
    // the interface is in firebreak-isolation alone (the tests check the
    // requests Firebreak sends).
    println!("   (moto also lists the launch group `web`; AWS shows firebreak-isolation alone)");
    let inst = ec2
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
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag-key")
                .values("firebreak:incident")
                .build(),
        )
        .send()
        .await
        .unwrap();
    println!("   snapshots (evidence): {}", snaps.snapshots().len());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let listed = s3.list_objects_v2().bucket(&s.bucket).send().await.unwrap();
    let incidents = listed
        .contents()
        .iter()
        .filter(|o| o.key().is_some_and(|k| k.ends_with("/incident.json")))
        .count();
    println!(
        "   s3://{}: {} incident records, {} objects in all",
        s.bucket,
        incidents,
        listed.contents().len()
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let notices = support::notices(&sqs, &s.team_queue).await;
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
