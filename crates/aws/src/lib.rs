//! The only Firebreak crate that talks to AWS: it carries out the core's
//! plans, exactly once however often a signal is delivered, keeps the record
//! every action can be undone from, and reads it back.
//!
//! The rooms, from the use cases down (dependencies point only downward;
//! `make style` checks it):
//!
//! - **Use cases.** [`respond`]: one planned incident carried out exactly
//!   once, as named phases ([`Executor`] is where it acts, with what;
//!   [`respond()`] and [`respond_asking`] are the ways in). [`undo`]: a
//!   responder's release and the expirer's lift of expired blocks, sharing
//!   one lift-a-block routine. [`inventory`]: what Firebreak recorded and
//!   holds, read back for the CLI.
//! - **What Firebreak keeps in S3**: [`bucket`] — conditional object I/O,
//!   every key and its parser ([`bucket::layout`]), the id and handling-time
//!   indexes, the block ledger, claims, locks and the blast-radius budget.
//! - **Where it acts**: [`place`] (the incident's own account and region, a
//!   member account's role) and [`account`] (which account the credentials
//!   act in, asked of STS once).
//! - **What it does to an account**: [`actions`] — one module per kind of
//!   change (NACL blocks, isolation and its groups, snapshots, IAM, Logs,
//!   notices, the Security Hub write-back, and the emergency lockdown's ECS
//!   services, load balancer listeners, secrets and evidence copies), each
//!   returning the prior state it changed. They pass the
//!   [`gate`] before their first change and know nothing of the bucket.
//! - **Leaves**: [`outcome`] (how an action ended, [`outcome::Change`]),
//!   [`prior`] (each action kind's recorded prior state, typed), [`report`],
//!   [`error`] (AWS's answers and Firebreak's own failures, [`error::Own`]),
//!   [`gate`], [`jitter`], [`progress`], [`clients`].
//!
//! Errors keep AWS's error code and say whether a retry can help; an
//! "already done" answer (a key already Inactive, a record already written)
//! is handled explicitly where it can occur, never by ignoring all errors.

// A function over ~80 lines wants to be its named steps (clippy.toml).
#![deny(clippy::too_many_lines)]

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

pub use account::caller_account;
pub use clients::Clients;
pub use error::AwsError;
pub use respond::{
    respond, respond_asking, respond_showing, Executor, HomeAnswer, IncidentReport, Progress,
    Response,
};
