//! The only Firebreak crate that talks to AWS.
//!
//! Each service has one module of small async functions that do one
//! containment step idempotently and return the state they changed, so the
//! record holds enough to undo it. [`execute`] runs a core plan: containment
//! first and concurrently, then the record, then the notices.
//!
//! Errors keep AWS's error code and say whether a retry can help; an
//! "already done" answer (a key already Inactive, a record already written)
//! is handled explicitly where it can occur, never by ignoring all errors.

pub mod account;
pub mod actions;
pub mod bucket;
pub mod clients;
pub mod error;
pub mod gate;
pub mod inventory;
pub mod jitter;
pub mod outcome;
pub mod place;
pub mod prior;
pub mod progress;
pub mod report;
pub mod respond;
pub mod undo;

pub use clients::Clients;
pub use error::AwsError;
pub use respond::{
    respond, respond_asking, Executor, HomeAnswer, IncidentReport, Progress, Response,
};
