#![allow(clippy::unwrap_used)]

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// An entry: rule, deny, CIDR.
fn e(rule: i32, deny: bool, cidr: &str) -> Entry {
    Entry {
        rule,
        deny,
        cidr: Some(net(cidr)),
    }
}

/// `n` foreign allow entries at rules 100.. and the default rule.
fn foreign(n: i32) -> Vec<Entry> {
    let mut v: Vec<Entry> = (0..n)
        .map(|i| e(100 + i, false, &format!("10.0.{i}.0/24")))
        .collect();
    v.push(e(DEFAULT_RULE, true, "0.0.0.0/0"));
    v
}

const RANGE: (u16, u16) = (1, 90);
const QUOTA: usize = 20;

#[test]
fn a_block_takes_its_existing_deny_else_the_lowest_free_number_else_nothing() {
    let target = net("198.51.100.9/32");
    let with = |extra: &[Entry]| {
        let mut v = foreign(1);
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(&str, Vec<Entry>, Slot)> = vec![
        ("empty range", with(&[]), Slot::Free(1)),
        (
            "a deny for the address is reused, wherever it is",
            with(&[e(57, true, "198.51.100.9/32")]),
            Slot::Exists(57),
        ),
        (
            "an allow for the address is not a block",
            with(&[e(1, false, "198.51.100.9/32")]),
            Slot::Free(2),
        ),
        (
            "the lowest free number, gaps first",
            with(&[e(1, true, "198.51.100.1/32"), e(3, true, "198.51.100.3/32")]),
            Slot::Free(2),
        ),
        (
            "the quota counts every entry",
            foreign(QUOTA as i32 - 1),
            Slot::Full,
        ),
        (
            "one under the quota still fits",
            foreign(QUOTA as i32 - 2),
            Slot::Free(1),
        ),
    ];
    for (case, entries, want) in cases {
        assert_eq!(slot(&entries, target, RANGE, QUOTA), want, "{case}");
    }
    // The default rule counts even where a reader left it out.
    let mut without_default = foreign(QUOTA as i32 - 1);
    without_default.retain(|x| x.rule != DEFAULT_RULE);
    assert_eq!(slot(&without_default, target, RANGE, QUOTA), Slot::Full);
    // A full range is full whatever the quota.
    let range: Vec<Entry> = (1..=3)
        .map(|n| e(n, true, &format!("198.51.100.{n}/32")))
        .collect();
    assert_eq!(slot(&range, target, (1, 3), QUOTA), Slot::Full);
}

#[test]
fn eviction_takes_the_oldest_known_entry_first_and_never_a_foreign_one() {
    let mut entries = foreign(3);
    entries.extend([
        e(1, true, "198.51.100.1/32"),
        e(2, true, "198.51.100.2/32"),
        e(3, true, "198.51.100.3/32"),
        e(5, true, "198.51.100.5/32"),
    ]);
    let order = |ages: &[(i32, &str)]| {
        let ages: Vec<(i32, IpNet)> = ages.iter().map(|(n, c)| (*n, net(c))).collect();
        eviction_order(&entries, RANGE, &ages)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    type Case<'a> = (&'a str, Vec<(i32, &'a str)>, Vec<i32>);
    let cases: Vec<Case<'_>> = vec![
        ("no ledger: by rule number", vec![], vec![1, 2, 3, 5]),
        (
            "oldest known first, then the unknown ones",
            vec![(3, "198.51.100.3/32"), (1, "198.51.100.1/32")],
            vec![3, 1, 2, 5],
        ),
        (
            "a marker whose rule holds another CIDR now is not trusted",
            vec![(2, "198.51.100.99/32"), (5, "198.51.100.5/32")],
            vec![5, 1, 2, 3],
        ),
        (
            "a marker outside the range is never a candidate",
            vec![(100, "10.0.0.0/24"), (2, "198.51.100.2/32")],
            vec![2, 1, 3, 5],
        ),
    ];
    for (case, ages, want) in cases {
        assert_eq!(order(&ages), want, "{case}");
    }
    // The foreign entries (100..) are never offered, whatever the ledger says.
    assert!(order(&[(100, "10.0.0.0/24")]).iter().all(|n| *n <= 90));
    // Each candidate comes with the CIDR its rule holds now (what its
    // guard and the re-read check).
    let with_cidr = eviction_order(&entries, RANGE, &[]);
    assert_eq!(with_cidr[0], (1, net("198.51.100.1/32")));
}
