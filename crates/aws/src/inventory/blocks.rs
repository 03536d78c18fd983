//! `blocks`: the deny entries in the ledger, each checked against its NACL.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{HeldBlock, Inventory};
use crate::actions::nacl;
use crate::bucket::ledger::BlockMarker;
use crate::error::AwsError;

impl Inventory<'_> {
    /// Every deny entry in the ledger, each checked against its NACL (one
    /// DescribeNetworkAcls per account and region).
    pub async fn blocks(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<HeldBlock>, AwsError> {
        let store = self.store;
        let markers = store.markers().await?;
        let mut by_place: HashMap<(Option<String>, Option<String>), Vec<BlockMarker>> =
            HashMap::new();
        for (_, m) in markers {
            by_place
                .entry((m.account.clone(), m.region.clone()))
                .or_default()
                .push(m);
        }
        let total = by_place.len();
        let mut out = Vec::new();
        for (n, ((account, region), ms)) in by_place.into_iter().enumerate() {
            let place = self
                .places
                .get(account.as_deref(), region.as_deref(), "blocks")
                .await;
            let entries = match place {
                Ok(here) => {
                    let mut ids: Vec<String> =
                        ms.iter().map(|m| m.network_acl_id.clone()).collect();
                    ids.sort();
                    ids.dedup();
                    nacl::all_entries(&here.clients.ec2, &ids).await
                }
                Err(why) => Err(why.into_error("DescribeNetworkAcls")),
            };
            for m in ms {
                let (state, error) = match &entries {
                    Ok(e) => {
                        let here = m.cidr.parse::<IpNet>().ok().is_some_and(|c| {
                            e.iter().any(|e| {
                                e.nacl == m.network_acl_id
                                    && e.egress == m.egress
                                    && e.rule == m.rule_number
                                    && e.cidr == c
                            })
                        });
                        (if here { "in_place" } else { "gone" }, None)
                    }
                    Err(e) => ("unknown", Some(e.to_string())),
                };
                out.push(HeldBlock {
                    marker: m,
                    state,
                    error,
                });
            }
            progress(n + 1, total);
        }
        out.sort_by(|a, b| {
            (
                &a.marker.network_acl_id,
                a.marker.egress,
                a.marker.rule_number,
            )
                .cmp(&(
                    &b.marker.network_acl_id,
                    b.marker.egress,
                    b.marker.rule_number,
                ))
        });
        Ok(out)
    }
}
