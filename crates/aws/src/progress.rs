//! Progress of a long operation (a release of many actions, a listing of
//! many records), for a terminal to show.

use std::sync::Arc;

/// Told of each step of a long operation (a release of many actions), for
/// a terminal to show; does nothing unless set.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<StepFn>>);

/// `(done, total, what)`.
type StepFn = dyn Fn(usize, usize, &str) + Send + Sync;

impl Progress {
    /// Calls `f(done, total, what)` after each step.
    pub fn new(f: impl Fn(usize, usize, &str) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    pub(crate) fn step(&self, done: usize, total: usize, what: &str) {
        if let Some(f) = &self.0 {
            f(done, total, what);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(set)"
        } else {
            "Progress(none)"
        })
    }
}
