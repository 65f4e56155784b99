//! Fills one page of a contact sync from a connector.
//!
//! The page is a prefix of the connector's `(updated_at, id)`-ordered stream after the run's resume
//! position and no later than the run's frozen upper bound. It ends when the stream ends (last page), or
//! when the page is full, the byte cap or the time budget would be exceeded, an upstream call fails after
//! some records were gathered, or the connector breaks the order. In every case but the first it carries
//! a `next_offset` that resumes exactly after the last record returned; the checkpoint never passes a record
//! that was not returned, nor the run's upper bound.

use std::time::Duration;

use serde::Serialize;

use super::budget::Budget;
use super::plan::RunState;
use super::position::{from_micros, Position, SyncKey};
use super::token::{CheckpointState, OffsetState};
use crate::connectors::{Connector, ConnectorError, ContactQuery};
use crate::talkdesk::{Auth, Contact};

/// Bytes kept free in a response for the tokens and the envelope around the contacts.
pub const RESPONSE_OVERHEAD_BYTES: usize = 4096;

/// Size limits of one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub max_contacts: usize,
    /// Upper bound of the serialized response, in bytes.
    pub max_bytes: usize,
}

/// Why a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The run is complete: this is the last page.
    #[default]
    Exhausted,
    PageFull,
    ByteCap,
    TimeBudget,
    UpstreamFailure,
    OrderViolation,
}

/// Counters of one page, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageStats {
    pub upstream_calls: usize,
    pub records_seen: usize,
    pub rereads_dropped: usize,
    pub beyond_run_bound: usize,
    pub bytes: usize,
    pub stop: StopReason,
}

/// One filled page.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    pub contacts: Vec<Contact>,
    pub checkpoint: CheckpointState,
    /// `None` on the last page.
    pub next: Option<OffsetState>,
    pub stats: PageStats,
    /// The transient failure that cut the page short, if one did.
    pub upstream_error: Option<ConnectorError>,
}

/// Fills one page. Errors only when nothing could be gathered (or the failure is not transient); a
/// failure after some records returns them with an offset that retries the failed call.
pub async fn sync_page(
    connector: &dyn Connector,
    auth: &Auth,
    run: RunState,
    limits: PageLimits,
    budget: &dyn Budget,
) -> Result<PageOutcome, ConnectorError> {
    let until = from_micros(run.t_run);
    let max_contacts = limits.max_contacts.max(1);
    let mut pos = run.after.clone();
    let mut cursor = run.cursor.clone();
    let mut out: Vec<Contact> = Vec::new();
    let mut bytes = RESPONSE_OVERHEAD_BYTES;
    let mut stats = PageStats::default();
    let mut upstream_error = None;

    let stop = 'page: loop {
        if out.len() >= max_contacts {
            break StopReason::PageFull;
        }
        if stats.upstream_calls > 0 && budget.exhausted() {
            break StopReason::TimeBudget;
        }
        let query = ContactQuery {
            after: pos.as_ref(),
            cursor: cursor.as_deref(),
            until,
            limit: (max_contacts - out.len()).min(connector.max_page_size()).max(1),
            budget,
        };
        stats.upstream_calls += 1;
        let batch = match connector.contacts(auth, &query).await {
            Ok(batch) => batch,
            Err(e) if e.is_transient() && !out.is_empty() => {
                tracing::warn!(error = %e, gathered = out.len(), "upstream failed mid-page; returning what was gathered");
                upstream_error = Some(e);
                break StopReason::UpstreamFailure;
            }
            Err(e) => return Err(e),
        };

        let batch_cursor = cursor.clone();
        let floor = pos.clone();
        let mut admitted = 0usize;
        let mut cut: Option<StopReason> = None;
        let mut beyond = false;
        for record in batch.records.iter() {
            stats.records_seen += 1;
            let key = record.key();
            if key.ts > run.t_run {
                // Changed after the run began: the next run picks it up.
                stats.beyond_run_bound += 1;
                beyond = true;
                break;
            }
            if admitted == 0 && !super::position::admits(floor.as_ref(), &key) {
                stats.rereads_dropped += 1;
                continue;
            }
            if !super::position::admits(pos.as_ref(), &key) {
                tracing::error!(
                    connector = connector.name(),
                    id = %key.id,
                    previous_id = ?pos.as_ref().and_then(|p| p.id.clone()),
                    "connector returned contacts out of (updated_at, id) order; cutting the page"
                );
                cut = Some(StopReason::OrderViolation);
                break;
            }
            if out.len() >= max_contacts {
                cut = Some(StopReason::PageFull);
                break;
            }
            let size = serde_json::to_vec(&record.contact).map(|v| v.len() + 1).unwrap_or(0);
            if !out.is_empty() && bytes + size > limits.max_bytes {
                cut = Some(StopReason::ByteCap);
                break;
            }
            bytes += size;
            out.push(record.contact.clone());
            pos = Some(Position::after(&key));
            admitted += 1;
        }

        if let Some(reason) = cut {
            // Resume by re-reading this upstream page and dropping what was returned.
            cursor = batch_cursor;
            break 'page reason;
        }
        if beyond || batch.done {
            break 'page StopReason::Exhausted;
        }
        if admitted == 0 && batch.next_cursor == batch_cursor {
            let e = ConnectorError::BadGateway {
                message: format!("{} returned a page that makes no progress", connector.name()),
            };
            if out.is_empty() {
                return Err(e);
            }
            upstream_error = Some(e);
            break 'page StopReason::UpstreamFailure;
        }
        cursor = batch.next_cursor.clone();
    };

    stats.bytes = bytes;
    stats.stop = stop;
    let (checkpoint, next) = if stop == StopReason::Exhausted {
        (
            CheckpointState {
                after: Some(Position::after_instant(until)),
            },
            None,
        )
    } else {
        let next = OffsetState {
            t_run: run.t_run,
            since: run.since.clone(),
            after: pos.clone(),
            cursor,
            page: run.page.saturating_add(1),
        };
        (CheckpointState { after: pos }, Some(next))
    };
    Ok(PageOutcome {
        contacts: out,
        checkpoint,
        next,
        stats,
        upstream_error,
    })
}

/// The `Retry-After` to suggest when a page could not start.
pub fn retry_hint(e: &ConnectorError) -> Option<Duration> {
    e.retry_after()
        .or(if e.is_transient() { Some(Duration::from_secs(5)) } else { None })
}

/// Verifies the page invariant the protocol relies on: strictly ascending `(updated_at, id)`. Used by
/// tests and the conformance kit; the engine enforces it while filling.
pub fn strictly_ascending(keys: &[SyncKey]) -> bool {
    keys.windows(2).all(|w| w[0] < w[1])
}
