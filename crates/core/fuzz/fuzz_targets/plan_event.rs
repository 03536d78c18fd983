//! Fuzz the whole pure pipeline: any bytes → parse → incidents → plans, and
//! check the safety envelope on every plan that comes out (not only that
//! nothing panics). Run: `make fuzz` (seeded with the files in events/).
#![no_main]

use std::sync::OnceLock;

use firebreak_core::policy::check_block;
use firebreak_core::{ActionKind, PlanStatus};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static firebreak_core::Config {
    static CFG: OnceLock<firebreak_core::Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let text = include_str!("../../../../events/policy.toml");
        firebreak_core::Config::load(&Default::default(), Some(("policy.toml", text)))
            .expect("events/policy.toml loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let cfg = config();
    let Ok(plans) = firebreak_core::plan_event(data, cfg) else {
        return;
    };
    for p in &plans.incidents {
        let planned = p.actions.iter().filter(|a| a.status == PlanStatus::Planned);
        let mut blocks = 0;
        for a in planned {
            assert!(
                !(p.incident.sample && a.kind.is_containment()),
                "a sample finding plans {:?}",
                a.kind
            );
            if a.kind == ActionKind::BlockIp {
                blocks += 1;
                let net = a.target.parse().expect("a planned block is a CIDR");
                assert_eq!(check_block(net, cfg), Ok(net), "block outside the envelope");
            }
            if a.kind == ActionKind::DeactivateAccessKey {
                assert!(a.target.starts_with("AKIA"), "deactivates {}", a.target);
            }
        }
        assert!(blocks <= cfg.max_blocks_per_incident);
        // Whatever an attacker put in a finding, what is kept of it is
        // capped and has no raw control characters.
        let v = serde_json::to_value(&p.incident).expect("serializes");
        assert_clean(&v);
    }
});

fn assert_clean(v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            assert!(!s.chars().any(char::is_control), "raw control character kept: {s:?}");
            assert!(s.chars().count() <= 4096, "uncapped text kept");
        }
        serde_json::Value::Array(a) => a.iter().for_each(assert_clean),
        serde_json::Value::Object(o) => o.values().for_each(assert_clean),
        _ => {}
    }
}
