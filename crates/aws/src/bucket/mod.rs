//! What Firebreak keeps in S3, and how: the records bucket is its only
//! shared state, so every delivery of every function agrees through it.
//!
//! Every write is conditional where it must be (`If-None-Match: *` for what
//! is written once; `If-Match` on an ETag for what changes): a replay never
//! overwrites a record, each action outcome is its own object, and
//! concurrent runs cannot lose each other's results.
//!
//! - [`layout`]: every key and its parser.
//! - [`RecordStore`] (here): object I/O — conditional put, get with ETag,
//!   delete-if, list.
//! - [`index`]: finding an incident's record from its id or by when
//!   Firebreak handled it.
//! - [`ledger`]: the block ledger (which deny entries Firebreak placed).
//! - [`claim`], [`lock`], [`budget`]: exactly-once claims, short locks on
//!   NACL entries being evicted, and the blast-radius budget.

pub mod budget;
pub mod claim;
pub mod index;
pub mod layout;
pub mod ledger;
pub mod lock;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{AwsError, Own};
use crate::outcome::ActionOutcome;

/// Where and how records are written.
#[derive(Debug, Clone)]
pub struct RecordStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: Option<String>,
}

/// Whether a conditional write created the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This call created it.
    Created,
    /// It was already there (a replay); it was left untouched.
    AlreadyThere,
}

/// The condition of a conditional write.
#[derive(Debug, Clone, Copy)]
pub enum Cond<'a> {
    /// Only if no object is there (`If-None-Match: *`).
    New,
    /// Only if the object is still the one with this ETag (`If-Match`).
    Match(&'a str),
}

impl RecordStore {
    /// A store in `bucket`, encrypted with AES256 or the given KMS key.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> RecordStore {
        RecordStore {
            s3,
            bucket: bucket.into(),
            kms_key_id,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `body` as JSON at `key` unless something is already there.
    pub async fn put_new<T: Serialize>(&self, key: &str, body: &T) -> Result<Written, AwsError> {
        self.put(key, body, true).await
    }

    async fn put<T: Serialize>(
        &self,
        key: &str,
        body: &T,
        only_new: bool,
    ) -> Result<Written, AwsError> {
        let written = if only_new {
            self.put_cond(key, body, Some(Cond::New)).await?
        } else {
            self.put_cond(key, body, None).await?
        };
        Ok(match written {
            Some(_) => Written::Created,
            None => Written::AlreadyThere,
        })
    }

    /// Writes `body` as JSON at `key` if the condition holds. `Some(etag)`
    /// when written, `None` when the condition did not hold (412, or a
    /// concurrent conditional write to the same key: 409).
    pub async fn put_cond<T: Serialize>(
        &self,
        key: &str,
        body: &T,
        cond: Option<Cond<'_>>,
    ) -> Result<Option<String>, AwsError> {
        let bytes = serde_json::to_vec_pretty(body)
            .map_err(|e| AwsError::from(Own::Serialization(e.to_string())))?;
        let (if_none_match, if_match) = match cond {
            Some(Cond::New) => (Some("*".to_string()), None),
            Some(Cond::Match(etag)) => (None, Some(etag.to_string())),
            None => (None, None),
        };
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .body(ByteStream::from(bytes));
        req = match &self.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        match req.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                let err = AwsError::from_sdk("PutObject", e);
                // 412: someone (an earlier delivery) already wrote it, or
                // changed it since we read it; 409: a concurrent conditional
                // write to the same key won; 404 on If-Match: it is gone.
                if err.is("PreconditionFailed")
                    || err.is("ConditionalRequestConflict")
                    || (matches!(cond, Some(Cond::Match(_))) && err.is("NoSuchKey"))
                {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Reads a JSON object; `None` when it is missing or not the expected shape.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AwsError> {
        Ok(self.get_tagged(key).await?.map(|(v, _)| v))
    }

    /// Reads a JSON object with its ETag (for a later `If-Match` write);
    /// `None` when it is missing or not the expected shape.
    pub async fn get_tagged<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, String)>, AwsError> {
        let body = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                let err = AwsError::from_sdk("GetObject", e);
                if err.is("NoSuchKey") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        let etag = body.e_tag().unwrap_or_default().to_string();
        let bytes = body
            .body
            .collect()
            .await
            .map_err(|e| AwsError::from(Own::ReadBody(e.to_string())))?;
        Ok(serde_json::from_slice::<T>(&bytes.into_bytes())
            .ok()
            .map(|v| (v, etag)))
    }

    /// Deletes an object only while it is the one with this ETag (a claim
    /// this delivery holds; not one another delivery took over since).
    pub async fn delete_if(&self, key: &str, etag: &str) -> Result<(), AwsError> {
        match self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match((!etag.is_empty()).then(|| etag.to_string()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = AwsError::from_sdk("DeleteObject", e);
                if err.is("PreconditionFailed") || err.is("NoSuchKey") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The keys under `prefix`, every page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        self.list_after(prefix, None).await
    }

    /// The keys under `prefix` that sort after `start_after`, every page.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<String>,
    ) -> Result<Vec<String>, AwsError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_start_after(start_after.clone())
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListObjectsV2", e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Deletes one object.
    pub async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteObject", e))?;
        Ok(())
    }

    /// Final outcomes an earlier run recorded (`done` and `already_done`;
    /// skipped and failed attempts are kept under other names and are not
    /// final, so a later run tries those actions again).
    pub async fn completed(&self, prefix: &str) -> Result<Vec<ActionOutcome>, AwsError> {
        let mut out = Vec::new();
        for key in self.list(&format!("{prefix}actions/")).await? {
            if key.contains(".failed-")
                || key.ends_with(".skipped.json")
                || key.ends_with(".held.json")
            {
                continue;
            }
            if let Some(o) = self.get_json::<ActionOutcome>(&key).await? {
                out.push(o);
            }
        }
        Ok(out)
    }
}
