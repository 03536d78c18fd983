//! S3, for the emergency lockdown: every object under a prefix copied aside
//! as evidence, server-side, before anyone can change or delete it.
//!
//! - **Bounded.** The prefix is listed first; more objects or bytes than
//!   the bounds allow (`FIREBREAK_EVIDENCE_MAX_OBJECTS`, `…_MAX_BYTES`),
//!   or an object over the 5 GiB one `CopyObject` takes, and nothing is
//!   copied: the action is refused with the numbers, so a responder can
//!   raise the bounds and send the lockdown again rather than keep half
//!   the evidence.
//! - **Once.** Each copy is `evidence/<incident>/<bucket>/<key>` with the
//!   source's ETag in its metadata, written with `If-None-Match: *` and
//!   `x-amz-copy-source-if-match` (the object as listed, or nothing). A
//!   retry skips every key whose copy exists, so an attempt cut short
//!   resumes where it stopped and nothing is copied twice. A copy that
//!   exists from an earlier attempt is kept even if the source changed
//!   since: it is the nearer to the lockdown.
//! - **Encrypted** as the records are (SSE-S3, or SSE-KMS with the
//!   records' key).
//! - **Kept.** A release leaves the copies where they are.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption};
use futures_util::stream::{self, StreamExt};

use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, EvidenceObject, EvidencePrior};
use crate::progress::Progress;

/// The largest object one `CopyObject` copies.
pub const MAX_SINGLE_COPY: u64 = 5 << 30;

/// Copies at once.
const AT_ONCE: usize = 8;

/// Metadata of a copy: its source's ETag, and the incident that made it.
pub const SOURCE_ETAG: &str = "firebreak-source-etag";
const INCIDENT: &str = "firebreak-incident";

/// One copy of a large object takes longer than the ordinary 10 s attempt
/// (S3 answers when the copy is done).
const COPY_ATTEMPT: Duration = Duration::from_secs(60);
const COPY_OPERATION: Duration = Duration::from_secs(120);

/// Where the objects are read: the place's own S3.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// S3 with the credentials of the account the lockdown acts in.
    pub s3: &'a aws_sdk_s3::Client,
    /// The bucket.
    pub bucket: &'a str,
    /// The prefix.
    pub prefix: &'a str,
}

/// Where the copies go.
#[derive(Debug, Clone)]
pub struct Destination<'a> {
    /// S3 in the evidence bucket's region, with the same credentials.
    pub s3: &'a aws_sdk_s3::Client,
    /// The evidence bucket.
    pub bucket: &'a str,
    /// `evidence/<incident>/<source bucket>/`.
    pub prefix: String,
    /// The incident (kept in each copy's metadata).
    pub incident_id: &'a str,
    /// SSE-KMS with this key; SSE-S3 (AES256) when `None`.
    pub kms_key_id: Option<&'a str>,
}

/// How much one copy takes at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Objects.
    pub max_objects: u64,
    /// Bytes in all.
    pub max_bytes: u64,
}

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its ETag.
    pub etag: String,
    /// Its size.
    pub size: u64,
}

/// The prefix as listed: at most one object beyond the bound (`more` then
/// says the listing stopped there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The objects.
    pub objects: Vec<Listed>,
    /// The prefix holds more than were listed.
    pub more: bool,
}

/// Why nothing is to be copied, if nothing is: over a bound, an object too
/// large for one copy, or no object at all. Pure: decided on the listing.
pub fn refusal(listing: &Listing, bounds: Bounds, source: &str) -> Option<String> {
    let count = listing.objects.len() as u64;
    let bytes: u64 = listing.objects.iter().map(|o| o.size).sum();
    let again = "nothing was copied; raise it and send the lockdown again, or copy by hand";
    if listing.more || count > bounds.max_objects {
        return Some(format!(
            "{source} holds more than {} objects (FIREBREAK_EVIDENCE_MAX_OBJECTS): {again}",
            bounds.max_objects
        ));
    }
    if bytes > bounds.max_bytes {
        return Some(format!(
            "{source} holds {bytes} bytes, over {} (FIREBREAK_EVIDENCE_MAX_BYTES): {again}",
            bounds.max_bytes
        ));
    }
    if let Some(big) = listing.objects.iter().find(|o| o.size > MAX_SINGLE_COPY) {
        return Some(format!(
            "{source}: {} is {} bytes, over the 5 GiB one server-side copy takes: nothing was copied; copy it by hand",
            big.key, big.size
        ));
    }
    if count == 0 {
        return Some(format!("{source} holds no object: nothing to copy"));
    }
    None
}

/// Lists the prefix, stopping one object past `max_objects`.
pub async fn list(from: &Source<'_>, max_objects: u64) -> Result<Listing, AwsError> {
    let mut listing = Listing::default();
    let mut token = None;
    loop {
        let page = from
            .s3
            .list_objects_v2()
            .bucket(from.bucket)
            .prefix(from.prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListObjectsV2", e))?;
        for o in page.contents() {
            if listing.objects.len() as u64 >= max_objects {
                listing.more = true;
                return Ok(listing);
            }
            listing.objects.push(Listed {
                key: o.key().unwrap_or_default().to_string(),
                etag: o.e_tag().unwrap_or_default().to_string(),
                size: u64::try_from(o.size().unwrap_or_default()).unwrap_or_default(),
            });
        }
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(listing),
        }
    }
}

/// A key as `x-amz-copy-source` takes it: percent-encoded, `/` kept.
fn encoded(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The source ETag an existing copy holds, if the copy exists.
async fn copied(to: &Destination<'_>, key: &str) -> Result<Option<String>, AwsError> {
    match to.s3.head_object().bucket(to.bucket).key(key).send().await {
        Ok(head) => Ok(Some(
            head.metadata()
                .and_then(|m| m.get(SOURCE_ETAG))
                .cloned()
                .unwrap_or_default(),
        )),
        Err(e) => {
            let err = AwsError::from_sdk("HeadObject", e);
            if err.is("NotFound") || err.is("NoSuchKey") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Copies one object unless its copy exists; `(existed, the source ETag
/// the copy holds)`.
async fn copy_one(
    from: &Source<'_>,
    to: &Destination<'_>,
    o: &Listed,
) -> Result<(bool, String), AwsError> {
    let key = format!("{}{}", to.prefix, o.key);
    if let Some(etag) = copied(to, &key).await? {
        return Ok((true, etag));
    }
    let limits = aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(COPY_ATTEMPT)
            .operation_timeout(COPY_OPERATION)
            .build(),
    );
    let mut req = to
        .s3
        .copy_object()
        .bucket(to.bucket)
        .key(&key)
        .copy_source(format!("{}/{}", from.bucket, encoded(&o.key)))
        .copy_source_if_match(&o.etag)
        .if_none_match("*")
        .metadata_directive(MetadataDirective::Replace)
        .metadata(SOURCE_ETAG, &o.etag)
        .metadata(INCIDENT, to.incident_id);
    req = match to.kms_key_id {
        Some(k) => req
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k),
        None => req.server_side_encryption(ServerSideEncryption::Aes256),
    };
    match req.customize().config_override(limits).send().await {
        Ok(_) => Ok((false, o.etag.clone())),
        Err(e) => {
            let err = AwsError::from_sdk("CopyObject", e);
            if !(err.is("PreconditionFailed") || err.is("ConditionalRequestConflict")) {
                return Err(err);
            }
            // Either another attempt made the copy meanwhile, or the
            // source is no longer the object listed.
            match copied(to, &key).await? {
                Some(etag) => Ok((true, etag)),
                None => Err(Own::EvidenceChanged {
                    bucket: from.bucket.to_string(),
                    key: o.key.clone(),
                    etag: o.etag.clone(),
                }
                .into()),
            }
        }
    }
}

/// Copies every object under the source prefix into the destination, once
/// (see the module's doc), telling `progress` of each.
pub async fn copy_evidence(
    from: &Source<'_>,
    to: &Destination<'_>,
    bounds: Bounds,
    progress: &Progress,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let source = format!("s3://{}/{}", from.bucket, from.prefix);
    let listing = list(from, bounds.max_objects).await?;
    let mut calls = vec!["ListObjectsV2".to_string()];
    if let Some(why) = refusal(&listing, bounds, &source) {
        return Ok(Step::refused(why, calls));
    }
    gate.pass().await?;
    let total = listing.objects.len();
    let mut done = 0usize;
    let mut copies = stream::iter(listing.objects.iter())
        .map(|o| async move { (o, copy_one(from, to, o).await) })
        .buffer_unordered(AT_ONCE);
    let mut objects = Vec::with_capacity(total);
    let mut first_error = None;
    while let Some((o, copied)) = copies.next().await {
        done += 1;
        progress.step(done, total, &o.key);
        match copied {
            Ok((existed, etag)) => objects.push(EvidenceObject {
                key: o.key.clone(),
                etag,
                size: o.size,
                existed,
            }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // What was copied stays; a retry copies the rest.
    if let Some(e) = first_error {
        return Err(e);
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let made = objects.iter().filter(|o| !o.existed).count();
    calls.push("HeadObject".into());
    if made > 0 {
        calls.push("CopyObject".into());
    }
    let prior = EvidencePrior {
        source: source.clone(),
        destination: format!("s3://{}/{}", to.bucket, to.prefix),
        bytes: objects.iter().map(|o| o.size).sum(),
        objects,
    };
    let detail = format!(
        "{total} object(s), {} bytes, from {source} kept in {} ({made} copied now, {} already there)",
        prior.bytes,
        prior.destination,
        total - made
    );
    Ok(Step::new(made == 0, detail, prior::to_json(&prior), calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64) -> Listed {
        Listed {
            key: key.into(),
            etag: "\"e\"".into(),
            size,
        }
    }

    #[test]
    fn the_bounds_refuse_before_anything_is_copied() {
        let bounds = Bounds {
            max_objects: 2,
            max_bytes: 100,
        };
        let src = "s3://b/p/";
        let ok = Listing {
            objects: vec![listed("p/a", 40), listed("p/b", 60)],
            more: false,
        };
        assert_eq!(refusal(&ok, bounds, src), None);
        let more = Listing {
            more: true,
            ..ok.clone()
        };
        assert!(refusal(&more, bounds, src)
            .unwrap()
            .contains("more than 2 objects"));
        let heavy = Listing {
            objects: vec![listed("p/a", 40), listed("p/b", 61)],
            more: false,
        };
        assert!(refusal(&heavy, bounds, src)
            .unwrap()
            .contains("101 bytes, over 100"));
        let huge = Listing {
            objects: vec![listed("p/a", MAX_SINGLE_COPY + 1)],
            more: false,
        };
        let roomy = Bounds {
            max_objects: 2,
            max_bytes: 1 << 40,
        };
        assert!(refusal(&huge, roomy, src).unwrap().contains("5 GiB"));
        assert!(refusal(&Listing::default(), bounds, src)
            .unwrap()
            .contains("no object"));
    }

    #[test]
    fn copy_sources_are_percent_encoded_but_for_slashes() {
        assert_eq!(encoded("users/a b+c/é.json"), "users/a%20b%2Bc/%C3%A9.json");
        assert_eq!(encoded("plain/key-1_2.~x"), "plain/key-1_2.~x");
    }
}
