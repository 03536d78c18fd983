#![allow(clippy::unwrap_used)]

use super::*;

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

use crate::outcome::fixture as outcome;

#[test]
fn incident_objects_round_trip() {
    let prefix = incident_prefix("2026-11-20", "fb-a600cce2b4010f814d5f");
    assert_eq!(prefix, "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/");
    let parsed = parse_incident_key(&record_key(&prefix)).unwrap();
    assert_eq!(
        incident_prefix(&parsed.day, &parsed.incident_id),
        prefix,
        "{parsed:?}"
    );
    assert_eq!(parsed.tail, "incident.json");
    assert_eq!(parse_incident_key("index/fb-1.json"), None);
    assert_eq!(parse_incident_key("incidents/dt=2026-11-20/fb-1"), None);
}

#[test]
fn action_objects_round_trip_for_every_status() {
    let prefix = incident_prefix("2026-11-20", "fb-1");
    for (kind, target) in [
        (ActionKind::BlockIp, "198.51.100.7/32"),
        (ActionKind::IsolateInstance, "i-0abc123def4567890"),
        (
            ActionKind::RevokeRoleSessions,
            "arn:aws:iam::111122223333:role/a very long role name with spaces and more",
        ),
    ] {
        let name = action_name(kind, target);
        assert!(name.starts_with(kind.as_str()), "{name}");
        assert!(!name.contains(['/', ' ', ':']), "{name}");
        for (status, want) in [
            (Status::Done, ActionObject::Done),
            (Status::AlreadyDone, ActionObject::Done),
            (Status::Failed, ActionObject::Failed),
            (Status::Held, ActionObject::Held),
            (Status::Skipped, ActionObject::Skipped),
        ] {
            let key = outcome_key(&prefix, &outcome(kind, target, status));
            let tail = parse_incident_key(&key).unwrap().tail;
            assert_eq!(
                parse_action_object(&tail),
                Some((name.clone(), want)),
                "{key}"
            );
        }
        let claim = parse_incident_key(&claim_key(&prefix, &name)).unwrap();
        assert_eq!(
            parse_action_object(&claim.tail),
            Some((name.clone(), ActionObject::Claimed))
        );
        assert_eq!(
            done_key(&prefix, &name),
            outcome_key(&prefix, &outcome(kind, target, Status::Done))
        );
    }
    let release = parse_incident_key(&release_key(&prefix, "fb-2")).unwrap();
    assert_eq!(parse_release_tail(&release.tail), Some("fb-2"));
    assert_eq!(parse_action_object("incident.json"), None);
}

#[test]
fn handled_keys_carry_time_incident_and_filing_day() {
    let at = at("2027-12-04T10:11:12.345Z");
    let prefix = "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/";
    let key = handled_key("fb-a600cce2b4010f814d5f", prefix, at);
    assert_eq!(
        key,
        "handled/dt=2027-12-04/1827915072345_fb-a600cce2b4010f814d5f_2026-11-20.json"
    );
    let parsed = parse_handled_key(&key).unwrap();
    assert_eq!(parsed.at_ms, at.timestamp_millis());
    assert_eq!(parsed.record_prefix(), prefix);
    assert!(key.starts_with(&handled_day_prefix(at)));
    for bad in [
        "handled/dt=2027-12-04/x_fb-1_2026-11-20.json",
        "handled/dt=2027-12-04/1_fb-1_yesterday.json",
        "handled/dt=2027-12-04/1_id_2026-11-20.json",
        "blocks/acl-1/ingress/00001/1_198.51.100.7_32.json",
    ] {
        assert_eq!(parse_handled_key(bad), None, "{bad}");
    }
}

#[test]
fn marker_keys_carry_rule_time_and_cidr() {
    for cidr in ["198.51.100.7/32", "2001:db8::4/128"] {
        let key = marker_key("acl-0a1b2c3d4e5f60718", false, 7, 1_790_000_000_123, cidr);
        assert!(
            key.starts_with("blocks/acl-0a1b2c3d4e5f60718/ingress/00007/"),
            "{key}"
        );
        assert!(key.starts_with(&marker_rule_prefix("acl-0a1b2c3d4e5f60718", false, 7)));
        assert_eq!(
            parse_marker_key(&key),
            Some(MarkerKey {
                rule: 7,
                created_ms: 1_790_000_000_123,
                cidr: cidr.parse().unwrap()
            })
        );
        let lifted = expired_key(at("2026-11-24T00:00:00Z"), &key);
        assert!(
            lifted.starts_with("expired/dt=2026-11-24/acl-0a1b2c3d4e5f60718-ingress-00007-"),
            "{lifted}"
        );
    }
    assert_eq!(parse_marker_key("blocks/acl-1/ingress/x/1_a.json"), None);
}

#[test]
fn budget_and_lock_keys_name_what_they_count_and_hold() {
    assert_eq!(
        budget_key(
            "111122223333",
            ActionKind::BlockIp,
            at("2026-11-23T10:00:00Z")
        ),
        "budget/111122223333/block_ip/2026-11-23T1000Z.json"
    );
    assert_eq!(
        victim_key("acl-1", true, 7, "198.51.100.7/32".parse().unwrap()),
        "locks/acl-1/egress/00007-198.51.100.7_32.json"
    );
    assert_eq!(index_key("fb-1"), "index/fb-1.json");
}
