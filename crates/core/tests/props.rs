//! Nothing panics, whatever the input; and whatever a (possibly hostile)
//! event says, the plan keeps the safety envelope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use firebreak_core::policy::{check_block, reserved_range};
use firebreak_core::{plan_event, ActionKind, Config, CustomAction, PlanSet, PlanStatus, Source};
use proptest::prelude::*;
use serde_json::Value;

fn policy() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/policy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Config::load(&BTreeMap::new(), Some(("policy.toml", &text))).unwrap()
    })
}

/// The defaults, built once: building a Config compiles the protected
/// principals' globs, which in an unoptimised test build costs about a
/// quarter of a second — per case, that made this file take minutes.
fn defaults() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(Config::default)
}

fn sample_events() -> &'static [Value] {
    static EVENTS: OnceLock<Vec<Value>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
            }
        }
        out.sort_by_key(|v: &Value| v.to_string());
        out
    })
}

/// The invariants every plan keeps, whatever the input.
fn assert_envelope(plan: &PlanSet, cfg: &Config) {
    for p in &plan.incidents {
        let i = &p.incident;
        let planned: Vec<_> = p
            .actions
            .iter()
            .filter(|a| a.status == PlanStatus::Planned)
            .collect();
        if i.sample {
            assert!(
                planned.iter().all(|a| !a.kind.is_containment()),
                "sample finding plans a change: {planned:?}"
            );
        }
        for a in &planned {
            match a.kind {
                ActionKind::BlockIp => {
                    let net: ipnet::IpNet = a.target.parse().unwrap();
                    assert_eq!(
                        check_block(net, cfg),
                        Ok(net),
                        "planned block outside the envelope"
                    );
                    assert!(
                        i.subjects.addresses.iter().any(|x| x.ip == net.addr()),
                        "block of an address the incident does not name"
                    );
                }
                ActionKind::DeactivateAccessKey => {
                    let named = i.subjects.access_key.as_ref().map(|k| k.id.as_str());
                    assert_eq!(
                        named,
                        Some(a.target.as_str()),
                        "deactivates a key the incident does not name"
                    );
                    assert!(a.target.starts_with("AKIA"));
                    assert!(!cfg.is_protected_principal(a.params.user_name.as_deref().unwrap()));
                }
                ActionKind::RevokeRoleSessions => assert!(!cfg.is_protected_principal(&a.target)),
                _ => {}
            }
        }
        // Another product's Security Hub finding changes something only
        // when a responder asked, and then only an instance it names.
        if i.source == Source::SecurityHub {
            for a in planned.iter().filter(|a| a.kind.is_containment()) {
                assert_eq!(
                    i.requested,
                    Some(CustomAction::Contain),
                    "another product's finding contained unasked: {a:?}"
                );
                assert!(
                    matches!(
                        a.kind,
                        ActionKind::IsolateInstance | ActionKind::SnapshotVolumes
                    ),
                    "another product's finding plans {a:?}"
                );
            }
        }
        if i.requested == Some(CustomAction::Record) {
            assert!(
                planned.iter().all(|a| !a.kind.is_containment()),
                "a record-only custom action plans a change: {planned:?}"
            );
        }
        let blocks = planned
            .iter()
            .filter(|a| a.kind == ActionKind::BlockIp)
            .count();
        assert!(blocks <= cfg.max_blocks_per_incident);
        // Whatever an attacker (or a paste) put in the event, what the
        // incident keeps is capped and has no raw control characters.
        assert_clean(&serde_json::to_value(i).unwrap());
    }
}

fn assert_clean(v: &Value) {
    match v {
        Value::String(s) => {
            assert!(
                !s.chars().any(char::is_control),
                "raw control character kept: {s:?}"
            );
            assert!(s.chars().count() <= 4096, "uncapped text kept");
        }
        Value::Array(a) => a.iter().for_each(assert_clean),
        Value::Object(o) => o.values().for_each(assert_clean),
        _ => {}
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("198.51.100.7"),
            Just("10.0.0.1"),
            Just("::1"),
            Just("2001:db8::1"),
            Just("GeneratedFindingAccessKeyId"),
            Just("AKIAIOSFODNN7EXAMPLE"),
            Just("ASIAY34FZKBOKMUTVV7A"),
            Just("i-0abc123def4567890"),
            Just("break-glass-admin"),
            Just("INBOUND"),
            Just("OUTBOUND"),
            Just("AssumedRole"),
            Just("Root"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,12}",
                    Just("Records".to_string()),
                    Just("Message".to_string()),
                    Just("detail".to_string()),
                    Just("severity".to_string()),
                    Just("ipAddressV4".to_string()),
                    Just("command".to_string()),
                    Just("findings".to_string()),
                    Just("Severity".to_string()),
                    Just("ProductFields".to_string()),
                    Just("Resources".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn product_field_key() -> impl Strategy<Value = String> {
    let action = prop_oneof![
        Just("networkConnectionAction"),
        Just("awsApiCallAction"),
        Just("kubernetesApiCallAction"),
        Just("rdsLoginAttemptAction"),
    ];
    prop_oneof![
        (action, prop_oneof![Just("ipAddressV4"), Just("ipAddressV6")]).prop_map(|(a, f)| format!(
            "aws/guardduty/service/action/{a}/remoteIpDetails/{f}"
        )),
        (any::<u16>(), prop_oneof![Just(".{}_/"), Just(":{}/")], prop_oneof![Just("ipAddressV4"), Just("ipAddressV6")])
            .prop_map(|(n, sep, f)| format!(
                "aws/guardduty/service/action/portProbeAction/portProbeDetails{}remoteIpDetails/{f}",
                sep.replace("{}", &n.to_string())
            )),
        Just("aws/guardduty/service/action/networkConnectionAction/connectionDirection".to_string()),
        Just("aws/guardduty/service/additionalInfo/sample".to_string()),
        Just("aws/guardduty/service/resourceRole".to_string()),
        Just("aws/guardduty/service/count".to_string()),
        Just("aws/guardduty/service/eventFirstSeen".to_string()),
        "[a-zA-Z/._:0-9]{0,40}",
    ]
}

fn product_field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("198.51.100.7".to_string()),
        Just("10.0.0.1".to_string()),
        Just("::ffff:10.0.0.1".to_string()),
        Just("2001:db8::1".to_string()),
        Just("INBOUND".to_string()),
        Just("OUTBOUND".to_string()),
        Just("true".to_string()),
        Just("GeneratedFindingIp".to_string()),
        ".{0,20}",
    ]
}

/// Replaces the value at a pseudo-random position in `v` with `with`.
fn mutate(v: &mut Value, mut choice: usize, with: Value) {
    let mut cur = v;
    loop {
        let n = match cur {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || choice % 5 == 0 {
            *cur = with;
            return;
        }
        let idx = (choice / 5) % n;
        choice /= 3;
        cur = match cur {
            Value::Object(m) => m.values_mut().nth(idx).unwrap(),
            Value::Array(a) => &mut a[idx],
            _ => unreachable!(),
        };
    }
}

/// Re-encodes SNS `Message` strings after mutating inside them, so mutations
/// reach the nested alarm or finding too.
fn mutate_nested(v: &mut Value, choice: usize, with: Value) {
    if let Some(records) = v.get_mut("Records").and_then(Value::as_array_mut) {
        if let Some(rec) = records.first_mut() {
            if let Some(Value::String(msg)) = rec.get_mut("Sns").and_then(|s| s.get_mut("Message"))
            {
                if let Ok(mut inner) = serde_json::from_str::<Value>(msg) {
                    mutate(&mut inner, choice, with);
                    *msg = inner.to_string();
                    return;
                }
            }
        }
    }
    mutate(v, choice, with);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = plan_event(&bytes, policy());
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let cfg = policy();
        if let Ok(plan) = plan_event(v.to_string().as_bytes(), cfg) {
            assert_envelope(&plan, cfg);
        }
    }

    #[test]
    fn mutated_sample_events_keep_the_envelope(which in any::<usize>(), choice in any::<usize>(), with in arb_json()) {
        let events = sample_events();
        let mut v = events[which % events.len()].clone();
        mutate_nested(&mut v, choice, with);
        let cfg = policy();
        if let Ok(plan) = plan_event(v.to_string().as_bytes(), cfg) {
            assert_envelope(&plan, cfg);
        }
    }

    /// GuardDuty's flattened `ProductFields` are read by key: any keys and
    /// values (item numbers, addresses, junk) keep the envelope.
    #[test]
    fn arbitrary_guardduty_product_fields_keep_the_envelope(
        which in any::<usize>(),
        fields in prop::collection::vec((product_field_key(), product_field_value()), 0..24),
        custom in any::<bool>(),
    ) {
        let names = [
            "securityhub-guardduty-ssh-brute-force-imported.json",
            "securityhub-guardduty-port-probe-many-imported.json",
            "securityhub-guardduty-leaked-key-custom-record.json",
            "securityhub-inspector-vulnerability-custom-action.json",
        ];
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events")
            .join(names[which % names.len()]);
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let f = &mut v["detail"]["findings"][0];
        if custom {
            f.as_object_mut().unwrap().remove("Action");
        }
        let pf = f["ProductFields"].as_object_mut().unwrap();
        for (k, val) in fields {
            pf.insert(k, Value::String(val));
        }
        let cfg = policy();
        if let Ok(plan) = plan_event(v.to_string().as_bytes(), cfg) {
            assert_envelope(&plan, cfg);
        }
    }

    #[test]
    fn no_reserved_address_is_ever_blockable(a in any::<[u8; 4]>()) {
        let ip = std::net::IpAddr::from(a);
        let verdict = check_block(ipnet::IpNet::from(ip), defaults());
        prop_assert_eq!(verdict.is_err(), reserved_range(ip).is_some());
    }

    #[test]
    fn planning_is_deterministic(which in any::<usize>()) {
        let events = sample_events();
        let bytes = events[which % events.len()].to_string();
        let cfg = policy();
        prop_assert_eq!(plan_event(bytes.as_bytes(), cfg), plan_event(bytes.as_bytes(), cfg));
    }
}

/// Every input the fuzzer ever found a defect with stays fixed.
#[test]
fn fuzz_regressions_keep_the_envelope() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(plan) = plan_event(&bytes, policy()) {
            assert_envelope(&plan, policy());
        }
        seen += 1;
    }
    assert!(seen >= 1, "no regression inputs in {}", dir.display());
}

#[test]
fn a_control_character_in_a_command_id_is_escaped() {
    let cmd = br#"{"command":"isolate_instance","instance_id":"i-\u007fdef456abc7890123","requested_by":"oncall","reason":"r"}"#;
    let plan = plan_event(cmd, policy()).unwrap();
    let kept = serde_json::to_string(&plan.incidents[0].incident).unwrap();
    assert!(kept.contains(r"i-\\u{7f}def456abc7890123"), "{kept}");
    assert_envelope(&plan, policy());
}

/// Found by `mutated_sample_events_keep_the_envelope` (a region of
/// "🕴\r2D\0t\t"): the incident's key is built from the event's account,
/// region and finding id, and kept them raw.
#[test]
fn control_characters_in_the_parts_of_an_incident_key_are_escaped() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/guardduty-leaked-key.json");
    let mut ev: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let plan_with_region = |ev: &mut Value, region: &str| {
        ev["detail"]["region"] = region.into();
        plan_event(ev.to_string().as_bytes(), policy()).unwrap()
    };
    let raw = plan_with_region(&mut ev, "eu-west-1\r\u{0}x");
    let key = &raw.incidents[0].incident.key;
    assert!(key.contains(r"eu-west-1\r\u{0}x"), "{key}");
    assert_envelope(&raw, policy());
    // The id still comes from the key as the event gave it: a region that
    // is the escaped text itself is another incident.
    let look_alike = plan_with_region(&mut ev, r"eu-west-1\r\u{0}x");
    assert_eq!(look_alike.incidents[0].incident.key, *key);
    assert_ne!(
        look_alike.incidents[0].incident.id,
        raw.incidents[0].incident.id
    );
}

#[test]
fn reserved_ranges_table() {
    let cfg = Config::default();
    let refused = [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:81.2.69.144",
        "::",
    ];
    let blockable = [
        "198.51.100.7",
        "81.2.69.144",
        "2001:db8::1",
        "2a00:1450:4009:81f::200e",
    ];
    for (ip, want_refused) in refused
        .iter()
        .map(|i| (i, true))
        .chain(blockable.iter().map(|i| (i, false)))
    {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert_eq!(
            check_block(ip.into(), &cfg).is_err(),
            want_refused,
            "{ip}: refused should be {want_refused}"
        );
    }
    let wide: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
    assert!(check_block(wide, &cfg)
        .unwrap_err()
        .contains("wider than one host"));
    let mut allow = Config::default();
    allow.allow_private = true;
    assert!(check_block("10.1.2.3/32".parse().unwrap(), &allow).is_ok());
}
