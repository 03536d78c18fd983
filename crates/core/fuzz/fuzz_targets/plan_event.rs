//! Fuzz the whole pure pipeline: any bytes → parse → incidents → plans.
//! Run: `make fuzz` (cargo fuzz run plan_event, seeded with events/).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn config() -> &'static firebreak_core::Config {
    static CFG: OnceLock<firebreak_core::Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let text = include_str!("../../../../events/policy.toml");
        firebreak_core::Config::load(&Default::default(), Some(("policy.toml", text))).unwrap_or_default()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = firebreak_core::plan_event(data, config());
});
