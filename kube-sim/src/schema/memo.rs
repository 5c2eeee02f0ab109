//! Verdicts of CEL rules, and the memo of those on large values.

use std::collections::HashMap;
use std::sync::Mutex;

/// What a rule made of the values it saw.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    Pass,
    /// The rule returned something other than true; the message to report.
    Fail(String),
    /// Evaluation failed (no such key, overflow...); the detail to report.
    RuntimeError(String),
    /// The rule uses something the interpreter lacks.
    NotEvaluated,
}

/// Verdicts of one rule on values it has judged before. The cel interpreter copies values
/// deeply on every comprehension step, so a rule over a list of n items costs far more than
/// cel-go's; objects are written again and again with the same large lists (every status
/// write re-validates the spec), and rules are pure functions of `self` and `oldSelf`. Only
/// values of at least [`MEMO_MIN_BYTES`] are kept, at most [`MEMO_ENTRIES`] of them.
#[derive(Default)]
pub(crate) struct VerdictMemo(Mutex<HashMap<MemoKey, Verdict>>);

/// `self` and (for transition rules) `oldSelf`, serialized.
type MemoKey = (Vec<u8>, Option<Vec<u8>>);
pub(crate) type MemoKeyRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Serialized size from which a value's verdict is remembered: small values are cheap to judge.
pub(crate) const MEMO_MIN_BYTES: usize = 1024;
/// Verdicts kept per rule; the memo starts over when full.
const MEMO_ENTRIES: usize = 256;

impl VerdictMemo {
    pub(crate) fn verdict(
        &self,
        key: Option<MemoKeyRef<'_>>,
        evaluate: impl FnOnce() -> Verdict,
    ) -> Verdict {
        let Some((value, old)) = key else {
            return evaluate();
        };
        let key: MemoKey = (value.to_vec(), old.map(<[u8]>::to_vec));
        if let Some(known) = self.0.lock().ok().and_then(|memo| memo.get(&key).cloned()) {
            return known;
        }
        let verdict = evaluate();
        if let Ok(mut memo) = self.0.lock() {
            if memo.len() >= MEMO_ENTRIES {
                memo.clear();
            }
            memo.insert(key, verdict.clone());
        }
        verdict
    }
}
