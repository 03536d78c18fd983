//! Throughput of parse → classify → plan over every sample event in `events/`.
//! `make bench` (or `cargo bench -p firebreak-core --bench plan`) runs it;
//! criterion reports events per second (one core).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firebreak_core::{plan_event, Config};

fn events() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/policy.toml");
    let text = std::fs::read_to_string(dir).unwrap();
    let cfg = Config::load(&BTreeMap::new(), Some(("policy.toml", &text))).unwrap();
    let events = events();
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("all_sample_events", |b| {
        b.iter(|| {
            for e in &events {
                std::hint::black_box(plan_event(std::hint::black_box(e), &cfg).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
