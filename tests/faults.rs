//! Faults between Firebreak and AWS: the real SDK clients (with Firebreak's
//! own retry and timeout limits) talk to the local emulator through a proxy
//! that answers 5xx and throttling errors, resets connections, holds calls
//! until they time out, and lets calls happen but loses their answers.
//!
//! What must hold: transient faults are retried (a bounded number of times)
//! and the incident is contained once; an answer lost after AWS acted does
//! not make a second snapshot, claim or record; a fault that lasts ends in
//! an error that names the call, the record says so, and the next delivery
//! finishes the job.
//!
//! And with every call held a while, the order in which calls reach AWS
//! shows what waits for what (the critical path `make bench-roundtrips`
//! measures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use firebreak_aws::clients::Limits;
use firebreak_aws::outcome::Status;
use firebreak_aws::{respond, respond_asking, Clients, Executor, HomeAnswer, Response};
use firebreak_core::{plan_event, ActionKind, Config};
use firebreak_e2e::proxy::{Call, Fault, FaultProxy};
use firebreak_e2e::support::{self, filter};
use firebreak_e2e::{outcome_line, Local, ACCOUNT};

/// Short limits, so a held call costs the test two seconds, not ten.
const LIMITS: Limits = Limits {
    connect: Duration::from_secs(2),
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(30),
    attempts: 4,
};

struct Rig {
    /// The account, read back straight from the emulator.
    local: Local,
    proxy: FaultProxy,
    /// Firebreak's executor, its calls through the proxy.
    exec: Executor,
    cfg: Arc<Config>,
}

async fn rig() -> Rig {
    let local = Local::start().await;
    let proxy = FaultProxy::start(&local.emu.url);
    let through = local.emu.sdk_config_through(&proxy.url, LIMITS).await;
    let cfg = local.seeded.config(&[]);
    let exec = Executor::for_account(Clients::from_config(&through), cfg.clone(), ACCOUNT);
    Rig {
        local,
        proxy,
        exec,
        cfg,
    }
}

impl Rig {
    async fn deliver(&self, name: &str) -> Response {
        self.deliver_event(&self.local.seeded.event(name)).await
    }

    async fn deliver_event(&self, ev: &serde_json::Value) -> Response {
        let plans = plan_event(ev.to_string().as_bytes(), &self.cfg).unwrap();
        respond(&self.exec, &plans).await
    }

    /// Delivers `ev`, which must end without a failure, and the calls it
    /// made, in the order they arrived.
    async fn traced(&self, ev: &serde_json::Value) -> (Response, Vec<Call>) {
        self.proxy.clear_seen();
        let r = self.deliver_event(ev).await;
        assert_eq!(r.failure(), None, "{:#?}", shown(&r));
        (r, self.proxy.seen())
    }
}

fn op(service: &'static str, op: &'static str) -> impl Fn(&Call) -> bool + Send + Sync {
    move |c: &Call| c.service == service && c.op == op
}

/// Every action of the response, as "kind target status: detail".
fn shown(r: &Response) -> Vec<String> {
    let actions = r.incidents.iter().flat_map(|i| &i.actions);
    actions.map(outcome_line).collect()
}

/// The status of the one action of `kind` in the response.
fn status_of(r: &Response, kind: ActionKind) -> Status {
    let found: Vec<Status> = r
        .incidents
        .iter()
        .flat_map(|i| &i.actions)
        .filter(|a| a.kind == kind)
        .map(|a| a.status)
        .collect();
    assert_eq!(found.len(), 1, "{kind:?} in {:#?}", shown(r));
    found[0]
}

/// Each faulted call was tried again, and no call was tried more than the
/// limit: a run of faulted attempts of one call (service, operation, path)
/// is followed by the attempt that went through, within `attempts`.
fn assert_retried_within_limit(seen: &[Call]) {
    for (i, c) in seen.iter().enumerate() {
        if c.answered() {
            continue;
        }
        let same = |d: &&Call| d.service == c.service && d.op == c.op && d.path == c.path;
        let later: Vec<&Call> = seen[i + 1..].iter().filter(same).collect();
        let until_through = later.iter().position(|d| d.answered());
        assert!(
            until_through.is_some(),
            "{} {} {} ({:?}) was never tried again",
            c.service,
            c.op,
            c.path,
            c.fault
        );
        // This attempt, the faulted ones after it, and the one that passed.
        let attempts = 1 + until_through.unwrap() + 1;
        assert!(
            attempts <= LIMITS.attempts as usize,
            "{} {}: {attempts} attempts",
            c.service,
            c.op
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_on_every_service_are_retried_and_contain_once() {
    let rig = rig().await;
    let p = &rig.proxy;
    // Every kind of fault, on the calls of both playbooks (brute force:
    // block, isolate, snapshot; leaked key: deactivate), their records and
    // their notices.
    p.inject(
        op("ec2", "CreateNetworkAclEntry"),
        &[Fault::Throttle, Fault::Reset],
    );
    p.inject(op("ec2", "DescribeNetworkAcls"), &[Fault::Unavailable]);
    p.inject(op("ec2", "DescribeInstances"), &[Fault::Hang]);
    p.inject(op("ec2", "CreateSnapshot"), &[Fault::LoseAnswer]);
    p.inject(
        op("iam", "UpdateAccessKey"),
        &[Fault::Unavailable, Fault::Throttle, Fault::Reset],
    );
    p.inject(
        |c: &Call| c.op == "PutObject" && c.path.ends_with("/incident.json"),
        &[Fault::LoseAnswer, Fault::Throttle],
    );
    p.inject(
        |c: &Call| c.op == "PutObject" && c.path.contains("/claims/"),
        &[Fault::LoseAnswer, Fault::Unavailable],
    );
    p.inject(op("sns", "Publish"), &[Fault::Throttle, Fault::Unavailable]);
    p.inject(
        |c: &Call| c.op == "GetObject",
        &[Fault::Delay(Duration::from_millis(300)), Fault::Reset],
    );

    let brute = rig.deliver("guardduty-ssh-brute-force.json").await;
    let leaked = rig.deliver("guardduty-leaked-key.json").await;
    for r in [&brute, &leaked] {
        assert_eq!(r.failure(), None, "{:#?}", shown(r));
    }
    for kind in [
        ActionKind::BlockIp,
        ActionKind::IsolateInstance,
        ActionKind::SnapshotVolumes,
        ActionKind::RecordIncident,
        ActionKind::NotifyTeam,
    ] {
        assert_eq!(status_of(&brute, kind), Status::Done, "{kind:?}");
    }
    for kind in [
        ActionKind::DeactivateAccessKey,
        ActionKind::RecordIncident,
        ActionKind::NotifyTeam,
    ] {
        assert_eq!(status_of(&leaked, kind), Status::Done, "{kind:?}");
    }

    // Every fault was met, and each faulted call was retried within the limit.
    let seen = p.seen();
    for f in [
        Fault::Throttle,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Hang,
        Fault::LoseAnswer,
    ] {
        assert!(
            seen.iter().any(|c| c.fault == Some(f)),
            "{f:?} never injected"
        );
    }
    assert_retried_within_limit(&seen);

    // Contained once: one deny entry, one snapshot per volume (CreateSnapshot
    // lost its answer: the retry found the snapshot instead of making a
    // second), the key inactive, one record and one notice per incident.
    let denies = rig.local.denies().await;
    assert_eq!(denies.len(), 1, "{denies:?}");
    let brute_id = &brute.incidents[0].id;
    let volumes = rig.local.volumes().await;
    assert_eq!(
        support::snapshot_count(
            &rig.local.clients.ec2,
            filter("tag:firebreak:incident", brute_id)
        )
        .await,
        volumes
    );
    assert_eq!(
        seen.iter().filter(|c| c.op == "CreateSnapshot").count(),
        volumes,
        "the lost answer's snapshot was found, not made again"
    );
    assert_eq!(
        rig.local.key_state().await,
        Some(aws_sdk_iam::types::StatusType::Inactive)
    );
    let records: Vec<String> = rig
        .local
        .keys("incidents/")
        .await
        .into_iter()
        .filter(|k| k.ends_with("/incident.json"))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let notices = rig.local.notices().await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.values().all(|n| n.len() == 1), "{notices:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_fault_is_bounded_named_recorded_and_finished_by_the_next_delivery() {
    let rig = rig().await;
    rig.proxy
        .always(op("ec2", "CreateNetworkAclEntry"), Fault::Unavailable);

    let r = rig.deliver("guardduty-ssh-brute-force.json").await;
    // The other actions are done; the block failed, saying which call.
    assert_eq!(status_of(&r, ActionKind::IsolateInstance), Status::Done);
    assert_eq!(status_of(&r, ActionKind::SnapshotVolumes), Status::Done);
    assert_eq!(status_of(&r, ActionKind::BlockIp), Status::Failed);
    let block = r.incidents[0]
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::BlockIp)
        .unwrap();
    let err = block.error.as_ref().unwrap();
    assert_eq!(err.operation, "CreateNetworkAclEntry");
    assert_eq!(err.code.as_deref(), Some("Unavailable"));
    assert!(err.retryable);
    let failure = r.failure().unwrap();
    assert!(
        failure.contains("block_ip") && failure.contains("Unavailable"),
        "{failure}"
    );
    assert!(r.retryable(), "the delivery is to be retried");
    // Bounded: exactly the configured attempts, then it gave up.
    let tries = rig
        .proxy
        .seen()
        .iter()
        .filter(|c| c.op == "CreateNetworkAclEntry")
        .count();
    assert_eq!(tries, LIMITS.attempts as usize);
    assert!(rig.local.denies().await.is_empty());

    // The record says so: the failed attempt is kept, and the claim was
    // let go with how it ended (a retry need not wait for its expiry).
    let keys = rig.local.keys("incidents/").await;
    let attempt = keys
        .iter()
        .find(|k| k.contains("/actions/block_ip-") && k.contains(".failed-"))
        .unwrap_or_else(|| panic!("no failed attempt recorded: {keys:#?}"));
    let recorded = rig.local.object(attempt).await;
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["error"]["operation"], "CreateNetworkAclEntry");
    assert_eq!(recorded["error"]["code"], "Unavailable");
    let claim = keys
        .iter()
        .find(|k| k.contains("/claims/block_ip-"))
        .unwrap();
    assert_eq!(rig.local.object(claim).await["ended"]["status"], "failed");
    // And the team was told it failed.
    let notices = rig.local.notices().await;
    let text = notices.values().next().unwrap()[0]["Message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("CreateNetworkAclEntry") || text.contains("Unavailable"),
        "{text}"
    );

    // The fault passes; the redelivery blocks, once, and does not redo the rest.
    rig.proxy.heal();
    rig.proxy.clear_seen();
    let again = rig.deliver("guardduty-ssh-brute-force.json").await;
    assert_eq!(again.failure(), None, "{:#?}", shown(&again));
    assert_eq!(status_of(&again, ActionKind::BlockIp), Status::Done);
    assert_eq!(rig.local.denies().await.len(), 1);
    let seen = rig.proxy.seen();
    for done_before in ["CreateSnapshot", "ModifyNetworkInterfaceAttribute"] {
        assert!(
            !seen.iter().any(|c| c.op == done_before),
            "{done_before} done again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_records_bucket_down_nothing_is_changed_and_the_next_delivery_does_it_all() {
    let rig = rig().await;
    rig.proxy
        .always(|c: &Call| c.service == "s3", Fault::Unavailable);

    let r = rig.deliver("guardduty-leaked-key.json").await;
    // Without a claim nothing is done: exactly-once cannot be promised.
    assert_eq!(
        status_of(&r, ActionKind::DeactivateAccessKey),
        Status::Failed
    );
    assert_eq!(status_of(&r, ActionKind::RecordIncident), Status::Failed);
    let failure = r.failure().unwrap();
    assert!(failure.contains("deactivate_access_key"), "{failure}");
    assert!(r.retryable(), "the delivery is to be retried, not lost");
    assert_eq!(
        rig.local.key_state().await,
        Some(aws_sdk_iam::types::StatusType::Active)
    );

    rig.proxy.heal();
    let again = rig.deliver("guardduty-leaked-key.json").await;
    assert_eq!(again.failure(), None, "{:#?}", shown(&again));
    assert_eq!(
        status_of(&again, ActionKind::DeactivateAccessKey),
        Status::Done
    );
    assert_eq!(status_of(&again, ActionKind::RecordIncident), Status::Done);
    assert_eq!(
        rig.local.key_state().await,
        Some(aws_sdk_iam::types::StatusType::Inactive)
    );
    let records = rig.local.keys("incidents/").await;
    assert_eq!(
        records
            .iter()
            .filter(|k| k.ends_with("/incident.json"))
            .count(),
        1
    );
}

/// The calls as they arrived, for a failure message.
fn order_of(seen: &[Call]) -> Vec<String> {
    seen.iter()
        .map(|c| format!("{} {}", c.op, c.path))
        .collect()
}

/// The positions in `seen` of the calls `matches` picks.
fn positions(seen: &[Call], matches: impl Fn(&Call) -> bool) -> Vec<usize> {
    seen.iter()
        .enumerate()
        .filter(|(_, c)| matches(c))
        .map(|(i, _)| i)
        .collect()
}

/// The notices are claimed beside the first calls, so the team is told as
/// soon as containment ends, with no claim between the last action and
/// the publish; a budget counter that exists is read beside the attempt to
/// create it; a block reads its NACL once, beside its claim, not again
/// after it, and writes its ledger marker beside the listing of old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_claimed_ahead_budget_read_with_its_create_nacl_read_once() {
    let rig = rig().await;
    // Held long enough that what goes out at once arrives before anything
    // that waits for an answer.
    rig.proxy.delay_all(Some(Duration::from_millis(150)));

    let (r, seen) = rig
        .traced(&rig.local.seeded.event("guardduty-leaked-key.json"))
        .await;
    assert_eq!(status_of(&r, ActionKind::NotifyTeam), Status::Done);
    let order = order_of(&seen);
    let update = positions(&seen, op("iam", "UpdateAccessKey"));
    let notice_claims = positions(&seen, |c| {
        c.op == "PutObject" && c.path.contains("/claims/notify_")
    });
    let publishes = positions(&seen, op("sns", "Publish"));
    assert_eq!(update.len(), 1, "{order:#?}");
    assert_eq!(notice_claims.len(), 2, "team and stakeholders: {order:#?}");
    assert_eq!(publishes.len(), 2, "{order:#?}");
    assert!(
        notice_claims.iter().all(|&i| i < update[0]),
        "the notices are claimed before the key is touched: {order:#?}"
    );
    let claims_between = positions(&seen, |c| c.path.contains("/claims/"))
        .into_iter()
        .filter(|&i| i > update[0] && i < publishes[0])
        .count();
    assert_eq!(
        claims_between, 0,
        "nothing is claimed between the action and the notice: {order:#?}"
    );

    // A second key in the same budget window: the counter exists, and its
    // read goes out with the attempt to create it, not after its refusal.
    let mut ev = rig.local.seeded.event("guardduty-leaked-key.json");
    ev["detail"]["id"] = "second-leaked-key".into();
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] =
        rig.local.seeded.keys[1].clone().into();
    let (r, seen) = rig.traced(&ev).await;
    assert_eq!(status_of(&r, ActionKind::DeactivateAccessKey), Status::Done);
    let order = order_of(&seen);
    let budget =
        |name: &'static str| positions(&seen, move |c| c.op == name && c.path.contains("/budget/"));
    let (puts, gets) = (budget("PutObject"), budget("GetObject"));
    assert_eq!(
        (puts.len(), gets.len()),
        (2, 1),
        "create (refused), read, update: {order:#?}"
    );
    let update = positions(&seen, op("iam", "UpdateAccessKey"));
    assert!(gets[0] < puts[1] && puts[1] < update[0], "{order:#?}");
    let (create, read) = (seen[puts[0]].at, seen[gets[0]].at);
    assert!(
        read.abs_diff(create) < Duration::from_millis(75),
        "the read leaves with the create, not a held call later: {create:?} {read:?}"
    );

    let (r, seen) = rig
        .traced(&rig.local.seeded.event("guardduty-ssh-brute-force.json"))
        .await;
    assert_eq!(status_of(&r, ActionKind::BlockIp), Status::Done);
    let order = order_of(&seen);
    let reads = positions(&seen, op("ec2", "DescribeNetworkAcls"));
    let create = positions(&seen, op("ec2", "CreateNetworkAclEntry"));
    assert_eq!(reads.len(), 1, "{order:#?}");
    assert_eq!(create.len(), 1, "{order:#?}");
    let block_claim = positions(&seen, |c| c.path.contains("/claims/block_ip-"));
    // The read goes out with the claim: both before the entry is made, and
    // the read not after the claim's answer came back (nothing that waits
    // for the claim arrives before it).
    assert!(
        reads[0] < create[0] && block_claim[0] < create[0],
        "{order:#?}"
    );
    let waited = positions(&seen, |c| {
        c.op.starts_with("Create") || c.op.starts_with("Modify")
    });
    assert!(
        reads[0] < waited[0],
        "the NACL is read before anything waits for the gate: {order:#?}"
    );
    // The ledger marker is written while the markers its rule number had
    // before are listed, not after the listing came back.
    let marker = positions(&seen, |c| {
        c.op == "PutObject" && c.path.contains("/blocks/")
    });
    let listing = positions(&seen, op("s3", "ListObjectsV2"));
    let listing: Vec<usize> = listing.into_iter().filter(|&i| i > create[0]).collect();
    assert_eq!((marker.len(), listing.len()), (1, 1), "{order:#?}");
    let (put, list) = (seen[marker[0]].at, seen[listing[0]].at);
    assert!(
        put.abs_diff(list) < Duration::from_millis(75),
        "the marker's listing and write leave together: {list:?} {put:?}"
    );
}

/// A CLI run (and a function's first event) starts before STS has said
/// which account the credentials act in: the incident's reads, claims and
/// record go out beside the STS call, and its first change waits for the
/// answer. Where STS names another account than the incident's, nothing
/// is changed and the action says why, as when the account was known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_starts_beside_the_sts_call_and_changes_only_what_sts_agrees_to() {
    let rig = rig().await;
    // Long enough that a call sent before STS answered is plain to see.
    let delay = Duration::from_millis(500);
    rig.proxy.delay_all(Some(delay));
    let through = rig
        .local
        .emu
        .sdk_config_through(&rig.proxy.url, LIMITS)
        .await;
    let clients = Clients::from_config(&through);
    let at = |seen: &[Call], service: &str, name: &str| {
        let found = seen.iter().find(|c| c.service == service && c.op == name);
        found.unwrap_or_else(|| panic!("no {service} {name}")).at
    };

    // The finding is in the credentials' own account: contained.
    rig.proxy.clear_seen();
    let ev = rig.local.seeded.event("guardduty-leaked-key.json");
    let plans = plan_event(ev.to_string().as_bytes(), &rig.cfg).unwrap();
    let home = HomeAnswer::ask(clients.sts.clone());
    let r = respond_asking(&clients, &rig.cfg, &home, &plans)
        .await
        .unwrap();
    assert_eq!(r.failure(), None, "{:#?}", shown(&r));
    assert_eq!(status_of(&r, ActionKind::DeactivateAccessKey), Status::Done);
    assert_eq!(
        rig.local.key_state().await,
        Some(aws_sdk_iam::types::StatusType::Inactive)
    );
    let seen = rig.proxy.seen();
    let sts = at(&seen, "sts", "GetCallerIdentity");
    let read = at(&seen, "iam", "ListAccessKeys");
    let update = at(&seen, "iam", "UpdateAccessKey");
    assert!(
        read < sts + delay / 2,
        "the key's status is read before STS answers: {sts:?} {read:?}"
    );
    assert!(
        update >= sts + delay,
        "the key changes only after STS answered"
    );

    // The same finding from an account the credentials do not act in (and
    // no member role): STS disagrees, nothing changes, the record says why.
    let key = rig.local.seeded.keys[1].clone();
    let mut ev = rig.local.seeded.event("guardduty-leaked-key.json");
    ev["detail"]["id"] = "finding-in-another-account".into();
    ev["detail"]["accountId"] = "999988887777".into();
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key.clone().into();
    let plans = plan_event(ev.to_string().as_bytes(), &rig.cfg).unwrap();
    rig.proxy.clear_seen();
    let home = HomeAnswer::ask(clients.sts.clone());
    let r = respond_asking(&clients, &rig.cfg, &home, &plans)
        .await
        .unwrap();
    assert_not_here(&rig, &r, &key).await;
    // The claim was given back saying why, so a later delivery (once a
    // member role is configured, say) is not kept waiting by it.
    let claims = rig
        .local
        .keys("incidents/")
        .await
        .into_iter()
        .filter(|k| k.contains("/claims/deactivate_access_key-") && k.contains(&key))
        .collect::<Vec<_>>();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let claim = rig.local.object(&claims[0]).await;
    assert_eq!(claim["ended"]["status"], "skipped", "{claim}");

    // Without a records bucket there is no claim to decide beside: the
    // guess is settled before anything, reads included, and STS disagreeing
    // still changes nothing.
    let mut bare = (*rig.cfg).clone();
    bare.records_bucket = None;
    let bare = Arc::new(bare);
    ev["detail"]["id"] = "another-account-no-bucket".into();
    let plans = plan_event(ev.to_string().as_bytes(), &bare).unwrap();
    rig.proxy.clear_seen();
    let home = HomeAnswer::ask(clients.sts.clone());
    let r = respond_asking(&clients, &bare, &home, &plans)
        .await
        .unwrap();
    assert_not_here(&rig, &r, &key).await;
    assert!(
        !rig.proxy.seen().iter().any(|c| c.op == "ListAccessKeys"),
        "without a claim, STS is waited for first: nothing is read either"
    );
}

/// The leaked key `key`, named by a finding in another account (999988887777)
/// than the credentials' (ACCOUNT): skipped with both named, never touched.
async fn assert_not_here(rig: &Rig, r: &Response, key: &str) {
    let deact = r.incidents[0]
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::DeactivateAccessKey)
        .unwrap();
    assert_eq!(deact.status, Status::Skipped, "{:#?}", shown(r));
    assert!(
        deact.detail.contains("999988887777") && deact.detail.contains(ACCOUNT),
        "{}",
        deact.detail
    );
    assert!(
        !rig.proxy.seen().iter().any(|c| c.op == "UpdateAccessKey"),
        "nothing changed"
    );
    let keys = rig
        .local
        .clients
        .iam
        .list_access_keys()
        .user_name(&rig.local.seeded.user)
        .send()
        .await
        .unwrap();
    let found = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .unwrap();
    assert_eq!(
        found.status(),
        Some(&aws_sdk_iam::types::StatusType::Active)
    );
}

/// Isolation passes each interface through `firebreak-untrack`, which
/// allows all traffic from anywhere. If the move on to the isolation group
/// keeps failing, the interface must not stay there: it is tried once more
/// at once, then put back in its original groups, and the failure says so;
/// the next delivery isolates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_never_ends_in_the_open_group() {
    let rig = rig().await;
    let ec2 = &rig.local.clients.ec2;
    let instance = rig.local.seeded.instance.clone();
    let before = support::eni_group_ids(ec2, &instance).await;
    // The move to the allow-all group passes; the move on to the isolation
    // group fails every attempt (the SDK's four, and Firebreak's one more
    // of four); putting the original groups back passes.
    let mut faults = vec![Fault::Delay(Duration::ZERO)];
    faults.extend([Fault::Unavailable; 2 * LIMITS.attempts as usize]);
    rig.proxy
        .inject(op("ec2", "ModifyNetworkInterfaceAttribute"), &faults);

    let r = rig.deliver("guardduty-ssh-brute-force.json").await;
    assert_eq!(
        status_of(&r, ActionKind::IsolateInstance),
        Status::Failed,
        "{:#?}",
        shown(&r)
    );
    let iso = r.incidents[0]
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::IsolateInstance)
        .unwrap();
    let err = iso.error.as_ref().unwrap();
    assert_eq!(err.operation, "ModifyNetworkInterfaceAttribute");
    assert_eq!(err.code.as_deref(), Some("Unavailable"));
    assert!(
        err.message.contains("put back in its original groups"),
        "{err:?}"
    );
    assert!(r.failure().unwrap().contains("isolate_instance"));
    let moves = rig
        .proxy
        .seen()
        .iter()
        .filter(|c| c.op == "ModifyNetworkInterfaceAttribute")
        .count();
    assert_eq!(
        moves,
        1 + 2 * LIMITS.attempts as usize + 1,
        "untrack, isolate ×8, back"
    );
    // Not open: the interface is where it was, not in the allow-all group.
    let untrack =
        support::security_group_ids(ec2, firebreak_aws::actions::isolate::UNTRACK_GROUP).await;
    let now = support::eni_group_ids(ec2, &instance).await;
    assert!(
        !now.iter().any(|g| untrack.contains(g)),
        "{now:?} {untrack:?}"
    );
    assert_eq!(now, before);
    // The failed attempt is on record with that message.
    let keys = rig.local.keys("incidents/").await;
    let attempt = keys
        .iter()
        .find(|k| k.contains("/actions/isolate_instance-") && k.contains(".failed-"))
        .unwrap_or_else(|| panic!("{keys:#?}"));
    let recorded = rig.local.object(attempt).await;
    assert!(recorded["error"]["message"]
        .as_str()
        .unwrap()
        .contains("original groups"));

    // The fault passes: the next delivery isolates it.
    rig.proxy.heal();
    let again = rig.deliver("guardduty-ssh-brute-force.json").await;
    assert_eq!(
        status_of(&again, ActionKind::IsolateInstance),
        Status::Done,
        "{:#?}",
        shown(&again)
    );
    let iso_group =
        support::security_group_ids(ec2, firebreak_aws::actions::isolate::ISOLATION_GROUP).await;
    let now = support::eni_group_ids(ec2, &instance).await;
    assert!(now.iter().any(|g| iso_group.contains(g)), "{now:?}");
}

/// EC2 changes, by the action whose gate they wait for: (the claim path's
/// action name, its budget's kind, or `None` when it has no budget).
fn gated_by(op: &str) -> Option<(&'static str, Option<&'static str>)> {
    match op {
        "CreateSnapshot" => Some(("snapshot_volumes", None)),
        "CreateNetworkAclEntry" | "ReplaceNetworkAclEntry" => Some(("block_ip", Some("block_ip"))),
        "CreateSecurityGroup"
        | "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupEgress"
        | "CreateTags"
        | "ModifyInstanceAttribute"
        | "ModifyNetworkInterfaceAttribute" => Some(("isolate_instance", Some("isolate_instance"))),
        _ => None,
    }
}

/// A brute force isolates the instance and snapshots its volumes: every
/// read either needs goes out in the first round trip, beside the claims
/// and the budget — one DescribeInstances for both (the interfaces, their
/// groups and the volumes are in its answer, never read again), the
/// termination protection, Firebreak's groups in the finding's VPC, this
/// incident's snapshots, the NACL. No change reaches AWS before the
/// answers of its action's claim and budget calls (the gate), the first
/// time in a VPC and where the groups exist (the budget counter then needs
/// its update first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_reads_leave_in_the_first_trip_and_no_change_precedes_the_gate() {
    let rig = rig().await;
    let delay = Duration::from_millis(300);
    rig.proxy.delay_all(Some(delay));
    let seeded = &rig.local.seeded;
    let first_in_vpc = seeded.event("guardduty-ssh-brute-force.json");
    let other =
        support::instance_in(&rig.local.clients.ec2, &seeded.subnet, &seeded.web_group).await;
    let mut groups_exist = seeded.event("guardduty-ssh-brute-force.json");
    groups_exist["detail"]["id"] = "second-brute-force-in-this-vpc".into();
    groups_exist["detail"]["resource"]["instanceDetails"]["instanceId"] = other.into();
    groups_exist["detail"]["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]
        ["ipAddressV4"] = "198.51.100.200".into();
    for ev in [first_in_vpc, groups_exist] {
        let (r, seen) = rig.traced(&ev).await;
        for kind in [
            ActionKind::IsolateInstance,
            ActionKind::SnapshotVolumes,
            ActionKind::BlockIp,
        ] {
            assert_eq!(status_of(&r, kind), Status::Done, "{:#?}", shown(&r));
        }
        let order = order_of(&seen);
        let count = |name: &'static str| positions(&seen, op("ec2", name)).len();
        assert_eq!(
            count("DescribeInstances"),
            1,
            "one read for both: {order:#?}"
        );
        assert_eq!(count("DescribeNetworkInterfaces"), 0, "{order:#?}");
        assert_eq!(count("DescribeVolumes"), 0, "{order:#?}");
        assert_eq!(count("DescribeSecurityGroups"), 1, "{order:#?}");
        let first = seen[0].at;
        for read in [
            "DescribeInstances",
            "DescribeInstanceAttribute",
            "DescribeSecurityGroups",
            "DescribeSnapshots",
            "DescribeNetworkAcls",
        ] {
            let at = seen[positions(&seen, op("ec2", read))[0]].at;
            assert!(
                at < first + delay / 2,
                "{read} leaves in the first round trip, not after an answer: {at:?} {order:#?}"
            );
        }
        let changes: Vec<&Call> = seen.iter().filter(|c| gated_by(&c.op).is_some()).collect();
        assert!(changes.len() >= 5, "{order:#?}");
        for change in changes {
            let (action, budget) = gated_by(&change.op).unwrap();
            let claim = format!("/claims/{action}-");
            let spent = budget.map(|b| format!("/budget/{ACCOUNT}/{b}/"));
            let gate: Vec<&Call> = seen
                .iter()
                .filter(|c| {
                    c.path.contains(&claim) || spent.as_ref().is_some_and(|b| c.path.contains(b))
                })
                .filter(|c| c.at <= change.at)
                .collect();
            assert!(
                !gate.is_empty(),
                "{} without its gate: {order:#?}",
                change.op
            );
            for g in gate {
                assert!(
                    change.at >= g.at + delay,
                    "{} {} sent before {} {} was answered: {order:#?}",
                    change.op,
                    change.path,
                    g.op,
                    g.path
                );
            }
        }
    }
}

/// The finding names the VPC its groups are read in; when the instance's
/// interface is in another (a stale or wrong finding), Firebreak's groups
/// there are read too before anything is made or trusted: a group named
/// like the isolation group that is not Firebreak's is still refused, and
/// nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_naming_another_vpc_does_not_skip_the_isolation_group_check() {
    let rig = rig().await;
    let seeded = &rig.local.seeded;
    let ec2 = &rig.local.clients.ec2;
    let fake = ec2
        .create_security_group()
        .vpc_id(&seeded.vpc)
        .group_name(firebreak_aws::actions::isolate::ISOLATION_GROUP)
        .description("looks like Firebreak's, is not")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let mut ev = seeded.event("guardduty-ssh-brute-force.json");
    ev["detail"]["resource"]["instanceDetails"]["networkInterfaces"][0]["vpcId"] =
        "vpc-00000000000000000".into();
    rig.proxy.clear_seen();
    let r = rig.deliver_event(&ev).await;
    let seen = rig.proxy.seen();
    let order = order_of(&seen);
    assert_eq!(
        status_of(&r, ActionKind::IsolateInstance),
        Status::Failed,
        "{:#?}",
        shown(&r)
    );
    let iso = r.incidents[0]
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::IsolateInstance)
        .unwrap();
    let err = iso.error.as_ref().unwrap();
    assert_eq!(
        err.code.as_deref(),
        Some("UntrustedIsolationGroup"),
        "{err:?}"
    );
    assert!(err.message.contains(&fake), "{err:?}");
    assert_eq!(
        positions(&seen, op("ec2", "DescribeSecurityGroups")).len(),
        2,
        "the finding's VPC, then the interface's: {order:#?}"
    );
    for change in [
        "CreateSecurityGroup",
        "ModifyNetworkInterfaceAttribute",
        "CreateTags",
    ] {
        assert!(
            positions(&seen, op("ec2", change)).is_empty(),
            "{change}: {order:#?}"
        );
    }
}
