//! Where a contact-sync request starts: pure arithmetic on the decoded checkpoint and offset.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::position::{micros, Position};
use super::token::{CheckpointState, OffsetState};

/// The state of a sync run while one page is being filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// Frozen upper bound of the run (microseconds): run start minus the provider's indexing lag.
    pub t_run: i64,
    /// The run's lower bound (`None`: initial sync).
    pub since: Option<Position>,
    /// Resume after this position.
    pub after: Option<Position>,
    /// Provider cursor to resume with.
    pub cursor: Option<String>,
    /// Pages already returned in this run.
    pub page: u32,
    /// The cursor continues right after `after` (see [`OffsetState::continues`]).
    pub continues: bool,
    /// The instant whose tie is being drained (see [`OffsetState::tie`]).
    pub tie: Option<i64>,
}

/// Starts a new run (no offset) at `now - lag` from the checkpoint, or resumes the run an offset
/// describes (the checkpoint sent alongside an offset does not move a run that is under way).
pub fn plan_run(checkpoint: Option<&CheckpointState>, offset: Option<OffsetState>, now: DateTime<Utc>, lag: Duration) -> RunState {
    match offset {
        Some(o) => RunState {
            t_run: o.t_run,
            since: o.since,
            after: o.after,
            cursor: o.cursor,
            page: o.page,
            continues: o.continues,
            tie: o.tie,
        },
        None => {
            let lag = chrono::Duration::from_std(lag).unwrap_or(chrono::Duration::zero());
            let since = checkpoint.and_then(|c| c.after.clone());
            RunState {
                t_run: micros(now - lag),
                after: since.clone(),
                since,
                cursor: None,
                page: 0,
                continues: false,
                tie: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_new_run_freezes_its_upper_bound_at_start_minus_lag() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 2, 0).unwrap();
        let cp = CheckpointState {
            after: Some(Position {
                ts: 7,
                id: Some("3".into()),
            }),
        };
        let run = plan_run(Some(&cp), None, now, Duration::from_secs(120));
        assert_eq!(run.t_run, micros(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
        assert_eq!(run.since, cp.after);
        assert_eq!(run.after, cp.after);
        assert_eq!(run.page, 0);
    }

    #[test]
    fn an_offset_resumes_its_run_whatever_the_clock_says() {
        let o = OffsetState {
            t_run: 99,
            since: None,
            after: Some(Position { ts: 50, id: None }),
            cursor: Some("c".into()),
            page: 4,
            continues: true,
            tie: None,
        };
        let run = plan_run(None, Some(o.clone()), Utc::now(), Duration::ZERO);
        assert_eq!((run.t_run, run.after, run.cursor, run.page), (99, o.after, o.cursor, 4));
    }
}
