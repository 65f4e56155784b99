//! Fills one page of a contact sync from a connector.
//!
//! The page is a prefix of the `(updated_at, id)`-ordered stream of records after the run's resume position
//! and no later than the run's frozen upper bound. It ends when the stream ends (last page), or when the page
//! has no room for another whole upstream page, the byte cap or the time budget would be exceeded, the
//! provider's rate limit leaves no time for another request, an upstream call fails after some records were
//! gathered, or the connector broke its order. In every case but the first it carries a `next_offset` that
//! resumes exactly where it ended; the checkpoint never passes a record that was not returned, nor the run's
//! upper bound.
//!
//! # Whole upstream pages
//! Each request asks for the connector's largest page (or the Talkdesk page size, when that is smaller), and
//! another request is made only while the Talkdesk page has room for a whole one: a page is never topped up
//! with a request for the few records left. When an upstream page turns out larger than the room left (in
//! bytes), the page is cut inside it and the next page re-reads it, dropping what was returned.
//!
//! # What the engine assumes of a connector's order, and how it copes when that fails
//! Records within one upstream page may come in any order: the engine sorts every batch by
//! `(updated_at, id)` (and keeps one record per id, the latest). Across requests:
//! - [`Order::Strict`] connectors (Zendesk's cursor export) promise that a cursor continues
//!   right after the last record returned. A record at or before the position on such a continuation breaks
//!   the promise: it may be one the connector skipped. The engine then *rewinds*: it ends the page, and the
//!   next one reads the same upstream page again with its position moved back to that record's instant,
//!   so the record is admitted and the rest of its instant is sent again. Duplicates are possible (Talkdesk
//!   upserts by id); loss is not, and a misorder the provider repeats on every read cannot loop. On a re-read (a restart from a
//!   position, or the same upstream page read again after a cut) records at or before the position are what
//!   was already returned, and are dropped. Because the broken promise shows only when the misplaced record
//!   arrives, a page's checkpoint stops before the instant of its last record: a sync abandoned between the
//!   two pages re-reads that instant. What the engine assumes: a strict connector's disorder stays within one
//!   instant or one upstream page; a record delivered later than a page of another instant, and not read
//!   again, cannot be told from one that does not exist.
//! - [`Order::Keyset`] connectors (a SQL keyset over a unique sort key) cannot break that promise: they are
//!   handled as strict ones, but a page's checkpoint keeps its exact position, so a sync resumed from a
//!   checkpoint inside a large tie does not send the tie again.
//! - [`Order::UpdatedAt`] connectors order by `updated_at` alone: records sharing an instant come in any id
//!   order, also across requests, so a tie split by a page boundary cannot be resumed by id. The engine
//!   *holds back* the last instant of every upstream page that is not the stream's end: the records before it
//!   are complete (the page holds everything up to its last instant) and are returned; the held-back ones are
//!   read again by the next request, which starts at that instant. When a whole upstream page shares one
//!   instant, the tie is larger than a page: the engine *drains* it with [`ContactQuery::only_at`] requests in
//!   id order, then moves past the instant.
//!
//! # Rate limits and failures
//! Before every request the engine asks the container's [`Pacer`] whether the provider's window allows it; it
//! waits while the time budget allows, and otherwise ends the page as it stands. A 429 is waited out the
//! same way. A page that could not gather anything because of the rate limit is still a page: empty, with a
//! `next_offset` that resumes at the same place, so a Talkdesk that never retries a failed page still
//! completes the sync. Other transient failures are retried once within the budget; a failure after some
//! records were gathered returns them with an offset that retries the failed call; a failure before any is
//! an error response (Talkdesk may retry the same offset). A provider that refuses its own cursor is asked
//! again from the keyset position.

use std::time::Duration;

use serde::Serialize;

use super::budget::Budget;
use super::pacer::Pacer;
use super::plan::RunState;
use super::position::{from_micros, Position, SyncKey};
use super::token::{CheckpointState, OffsetState};
use crate::connectors::{Connector, ConnectorError, ContactQuery, ContactRecord, Order};
use crate::talkdesk::{Auth, Contact};

/// Bytes kept free in a response for the tokens and the envelope around the contacts: the two tokens and
/// the context (under 2 KiB even with a long provider cursor), the Lambda proxy envelope and its headers.
pub const RESPONSE_OVERHEAD_BYTES: usize = 4096;

/// Time kept in hand after a wait for the request that follows it.
const REQUEST_RESERVE: Duration = Duration::from_secs(2);
/// Time kept to answer after a page with nothing in it waited out its budget.
const ANSWER_RESERVE: Duration = Duration::from_millis(200);
/// The longest wait when the budget has no clock (tools and tests).
const MAX_UNTIMED_WAIT: Duration = Duration::from_secs(2);
/// A 429 without `Retry-After` holds the account this long.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);
/// Rate-limit answers taken in one page before it ends as it stands.
const MAX_RATE_LIMITED: u32 = 5;
/// Pause before retrying a transient failure without `Retry-After`, once.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Size limits of one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub max_contacts: usize,
    /// Upper bound of the Lambda response as sent (envelope, headers and the body as an escaped JSON
    /// string), in bytes.
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
    /// The provider's rate limit left no time for another request.
    RateLimit,
    UpstreamFailure,
    /// The connector broke its order; the next page rewinds.
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
    /// Waits for the provider's rate limit, and their total length.
    pub rate_waits: usize,
    pub rate_wait_ms: u64,
    /// 429 answers.
    pub rate_limited: usize,
    /// Records held back to the next request (ties at the end of an upstream page).
    pub held_back: usize,
    /// Rewinds after a record broke the connector's order.
    pub rewinds: usize,
}

/// One filled page.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    pub contacts: ContactsJson,
    pub checkpoint: CheckpointState,
    /// `None` on the last page.
    pub next: Option<OffsetState>,
    pub stats: PageStats,
    /// The transient failure that cut the page short, if one did.
    pub upstream_error: Option<ConnectorError>,
}

/// Everything one page is filled with.
pub struct PageRequest<'a> {
    pub connector: &'a dyn Connector,
    pub auth: &'a Auth,
    /// The account the request is for (keys the pacer).
    pub account: &'a str,
    pub run: RunState,
    pub limits: PageLimits,
    pub budget: &'a dyn Budget,
    pub pacer: &'a Pacer,
}

/// Bytes one contact adds to the Lambda response as sent: its JSON, plus a comma, with every character
/// that JSON escapes counted as it is escaped again when the body is put in the proxy envelope as a string.
pub fn wire_size(contact: &Contact) -> usize {
    let mut json = Vec::new();
    contact.write_json(&mut json);
    escaped_len(&json) + 1
}

/// A page's contacts, each serialised once, as it is admitted, into one buffer: the elements of the
/// response's `contacts` array, joined by commas. The engine measures a contact by what it wrote (no second
/// serialisation to measure it) and takes it back out when it does not fit; the response is written around
/// the buffer ([`crate::talkdesk::contacts_page_json`]).
#[derive(Debug, Clone, Default)]
pub struct ContactsJson {
    json: Vec<u8>,
    count: usize,
}

impl ContactsJson {
    /// Appends `contact`, and returns the bytes it adds to the response as sent ([`wire_size`]).
    pub fn push(&mut self, contact: &Contact) -> usize {
        if self.count > 0 {
            self.json.push(b',');
        }
        let at = self.json.len();
        contact.write_json(&mut self.json);
        self.count += 1;
        escaped_len(&self.json[at..]) + 1
    }

    /// Takes the contact [`ContactsJson::push`] just added back out (it did not fit).
    fn pop_last(&mut self, before: Snapshot) {
        self.json.truncate(before.bytes);
        self.count = before.count;
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            bytes: self.json.len(),
            count: self.count,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The array's elements: `{...},{...}` (empty when there are none).
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The contacts parsed back (tests and tools).
    pub fn to_contacts(&self) -> Vec<Contact> {
        let mut array = Vec::with_capacity(self.json.len() + 2);
        array.push(b'[');
        array.extend_from_slice(&self.json);
        array.push(b']');
        serde_json::from_slice(&array).unwrap_or_default()
    }
}

#[derive(Clone, Copy)]
struct Snapshot {
    bytes: usize,
    count: usize,
}

pub use crate::json::escaped_len;

/// Where the stream stands while a page is filled.
struct Cursor {
    pos: Option<Position>,
    cursor: Option<String>,
    /// The next request continues right after `pos` (see [`OffsetState::continues`]).
    continues: bool,
    tie: Option<i64>,
}

enum Wait {
    Go,
    Waited,
    NoTime,
}

/// Waits until the pacer lets the account's next request go, within the budget.
async fn pace(req: &PageRequest<'_>, stats: &mut PageStats, nothing_yet: bool) -> Wait {
    let hold = req.pacer.hold(req.account);
    if hold.is_zero() {
        return Wait::Go;
    }
    let left = req.budget.remaining();
    let (wait, then) = match left {
        // No clock (tools and tests): wait a short hold, never a long one.
        None if hold <= MAX_UNTIMED_WAIT => (hold, Wait::Waited),
        None => return Wait::NoTime,
        // The request still fits after the hold: wait for it.
        Some(left) if hold + REQUEST_RESERVE <= left => (hold, Wait::Waited),
        // It does not, and the page has nothing yet: spend the budget waiting (keeping just enough to
        // answer), so the next page waits less and Talkdesk is not sent a stream of empty pages; then answer
        // the empty page. A page with contacts answers them at once.
        Some(left) if nothing_yet => (hold.min(left.saturating_sub(ANSWER_RESERVE)), Wait::NoTime),
        Some(_) => return Wait::NoTime,
    };
    if wait.is_zero() {
        return then;
    }
    stats.rate_waits += 1;
    stats.rate_wait_ms += wait.as_millis() as u64;
    tracing::info!(
        connector = req.connector.name(),
        wait_ms = wait.as_millis() as u64,
        hold_ms = hold.as_millis() as u64,
        "waiting for the provider's rate limit"
    );
    tokio::time::sleep(wait).await;
    if matches!(then, Wait::NoTime) {
        return Wait::NoTime;
    }
    if req.pacer.hold(req.account).is_zero() {
        Wait::Waited
    } else {
        Wait::NoTime
    }
}

/// Whether a pause of `pause` and then a request still fit in the budget.
fn fits(budget: &dyn Budget, pause: Duration) -> bool {
    match budget.remaining() {
        None => pause <= MAX_UNTIMED_WAIT,
        Some(left) => pause + REQUEST_RESERVE <= left,
    }
}

/// Sorts a batch by `(updated_at, id)` and keeps one record per id (the latest).
fn ordered(records: Vec<ContactRecord>) -> Vec<(SyncKey, ContactRecord)> {
    let mut keyed: Vec<(SyncKey, ContactRecord)> = records.into_iter().map(|r| (r.key(), r)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if keyed.len() > 1 {
        // The ids are borrowed, not copied: a page is a thousand of them, and duplicates are rare.
        let mut last_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(keyed.len());
        for (i, (k, _)) in keyed.iter().enumerate() {
            last_of.insert(k.id.as_str(), i);
        }
        if last_of.len() < keyed.len() {
            let keep: Vec<bool> = keyed
                .iter()
                .enumerate()
                .map(|(i, (k, _))| last_of.get(k.id.as_str()) == Some(&i))
                .collect();
            drop(last_of);
            let mut keep = keep.into_iter();
            keyed.retain(|_| keep.next().unwrap_or(true));
        }
    }
    keyed
}

/// Fills one page. Errors only when nothing could be gathered (or the failure is not transient); a
/// failure after some records returns them with an offset that retries the failed call.
pub async fn sync_page(req: PageRequest<'_>) -> Result<PageOutcome, ConnectorError> {
    let PageRequest {
        connector,
        auth,
        run,
        limits,
        budget,
        ..
    } = &req;
    let until = from_micros(run.t_run);
    let max_contacts = limits.max_contacts.max(1);
    let want = connector.max_page_size().min(max_contacts).max(1);
    let order = connector.order();
    let mut at = Cursor {
        pos: run.after.clone(),
        cursor: run.cursor.clone(),
        continues: run.continues,
        tie: run.tie,
    };
    if order == Order::UpdatedAt {
        // Such a connector resumes from an instant; a cursor of its own is never carried.
        at.cursor = None;
        at.continues = false;
    }
    let mut out = ContactsJson::default();
    let mut bytes = RESPONSE_OVERHEAD_BYTES;
    let mut stats = PageStats::default();
    let mut upstream_error = None;
    let mut retried = false;
    let mut cursor_refused = false;
    let mut rate_limited = 0u32;

    let stop = 'page: loop {
        if stats.upstream_calls > 0 {
            if max_contacts - out.len() < want {
                break StopReason::PageFull;
            }
            if !out.is_empty() {
                // Room for another whole upstream page of records like the ones seen, with a margin.
                let per_record = (bytes - RESPONSE_OVERHEAD_BYTES) / out.len();
                if bytes + per_record * want * 5 / 4 > limits.max_bytes {
                    break StopReason::ByteCap;
                }
            }
            if budget.exhausted() {
                break StopReason::TimeBudget;
            }
        }
        match pace(&req, &mut stats, out.is_empty()).await {
            Wait::Go => {}
            Wait::Waited if stats.upstream_calls > 0 && budget.exhausted() => break StopReason::TimeBudget,
            Wait::Waited => {}
            Wait::NoTime => break StopReason::RateLimit,
        }

        let query = ContactQuery {
            after: at.pos.as_ref(),
            cursor: at.cursor.as_deref(),
            until,
            limit: want,
            only_at: at.tie.map(from_micros),
            budget: *budget,
        };
        stats.upstream_calls += 1;
        let batch = match connector.contacts(auth, &query).await {
            Ok(batch) => batch,
            Err(ConnectorError::RateLimited { retry_after, .. }) if rate_limited < MAX_RATE_LIMITED => {
                rate_limited += 1;
                stats.rate_limited += 1;
                crate::metrics::note_retry();
                req.pacer.block(req.account, retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT));
                continue;
            }
            Err(ConnectorError::RateLimited { .. }) => break StopReason::RateLimit,
            Err(ConnectorError::CursorRejected { system }) if at.cursor.is_some() && !cursor_refused => {
                tracing::warn!(
                    connector = connector.name(),
                    system,
                    "the provider refused its own cursor; restarting from the keyset position"
                );
                cursor_refused = true;
                at.cursor = None;
                at.continues = false;
                continue;
            }
            // Nothing gathered yet: one more try (after the provider's `Retry-After`, if it fits), since a
            // Talkdesk that never retries would lose the sync on an error page.
            Err(e) if e.is_transient() && out.is_empty() && !retried && fits(*budget, e.retry_after().unwrap_or(RETRY_PAUSE)) => {
                retried = true;
                let pause = e.retry_after().unwrap_or(RETRY_PAUSE);
                tracing::info!(connector = connector.name(), error = %e, pause_ms = pause.as_millis() as u64, "transient upstream failure; retrying once");
                crate::metrics::note_retry();
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(e) if e.is_transient() && !out.is_empty() => {
                tracing::warn!(error = %e, gathered = out.len(), "upstream failed mid-page; returning what was gathered");
                upstream_error = Some(e);
                break StopReason::UpstreamFailure;
            }
            Err(e) => return Err(e),
        };
        req.pacer.observe(req.account, batch.quota);

        let batch_cursor = at.cursor.clone();
        let continuation = at.continues && at.cursor.is_some();
        let records = ordered(batch.records);
        stats.records_seen += records.len();
        let full = records.len() >= want;

        // Which records of this batch may be returned now, and where the stream stands after them. While a
        // tie is drained, the end of the tie is not the end of the stream.
        let progress_from = (at.pos.clone(), at.tie);
        let mut last = batch.done && at.tie.is_none();
        let mut emit_below: Option<i64> = None; // UpdatedAt: hold back this instant and later
        let mut after_batch: Option<Position> = None; // UpdatedAt: resume here once the batch is returned
        let mut within: Vec<(SyncKey, ContactRecord)> = Vec::with_capacity(records.len());
        for (key, record) in records {
            if key.ts > run.t_run {
                // Changed after the run began: the next run picks it up.
                stats.beyond_run_bound += 1;
                last = true;
                continue;
            }
            within.push((key, record));
        }
        match (order, at.tie) {
            (Order::UpdatedAt, Some(tie)) => {
                within.retain(|(k, _)| k.ts == tie);
                if !full {
                    // The tie is drained: everything at its instant was returned.
                    after_batch = Some(Position::after_instant(from_micros(tie)));
                }
            }
            (Order::UpdatedAt, None) if !last => match (within.first(), within.last()) {
                (Some((first, _)), Some((end, _))) if first.ts == end.ts => {
                    // A whole upstream page shares one instant: drain it in id order.
                    let tie = end.ts;
                    tracing::info!(
                        connector = connector.name(),
                        records = within.len(),
                        "draining a tie larger than an upstream page"
                    );
                    at.tie = Some(tie);
                    if at.pos.as_ref().is_none_or(|p| p.ts < tie) {
                        at.pos = Some(Position { ts: tie, id: None });
                    }
                    continue 'page;
                }
                (_, Some((end, _))) => {
                    emit_below = Some(end.ts);
                    after_batch = Some(Position { ts: end.ts, id: None });
                }
                _ => {}
            },
            _ => {}
        }

        let mut cut: Option<StopReason> = None;
        let mut rewind: Option<Position> = None;
        let mut admitted = 0usize;
        for (key, record) in within {
            if emit_below.is_some_and(|b| key.ts >= b) {
                stats.held_back += 1;
                continue;
            }
            if !at.pos.as_ref().is_none_or(|p| p.admits(&key)) {
                if continuation {
                    tracing::error!(
                        connector = connector.name(),
                        id = %key.id,
                        previous_id = ?at.pos.as_ref().and_then(|p| p.id.clone()),
                        "connector returned a contact at or before the position it continued from; rewinding to its instant"
                    );
                    rewind = Some(Position { ts: key.ts, id: None });
                    break;
                }
                stats.rereads_dropped += 1;
                continue;
            }
            if out.len() >= max_contacts {
                cut = Some(StopReason::PageFull);
                break;
            }
            let before = out.snapshot();
            let size = out.push(&record.contact);
            if before.count > 0 && bytes + size > limits.max_bytes {
                out.pop_last(before);
                cut = Some(StopReason::ByteCap);
                break;
            }
            bytes += size;
            at.pos = Some(Position::after(&key));
            admitted += 1;
        }

        if let Some(to) = rewind {
            // The next page reads this upstream page again from the misplaced record's instant: the
            // record is admitted there, the rest of its instant is sent again, and nothing is skipped.
            // Reading the same page again (not restarting from the instant) also ends a misorder that the
            // provider would repeat.
            stats.rewinds += 1;
            at.pos = Some(to);
            at.cursor = batch_cursor;
            at.continues = at.cursor.is_some();
            break 'page StopReason::OrderViolation;
        }
        if let Some(reason) = cut {
            // Resume by re-reading this upstream page and dropping what was returned.
            at.cursor = batch_cursor;
            at.continues = false;
            break 'page reason;
        }
        if order == Order::UpdatedAt {
            if let Some(p) = after_batch {
                if at.pos.as_ref().is_none_or(|cur| !cur.at_or_after(&p)) {
                    at.pos = Some(p);
                }
                if at.tie.is_some() && !full {
                    at.tie = None;
                }
            }
            if last && at.tie.is_none() {
                break 'page StopReason::Exhausted;
            }
            if (at.pos.clone(), at.tie) != progress_from {
                at.cursor = None;
                at.continues = false;
                continue;
            }
        } else if last {
            break 'page StopReason::Exhausted;
        } else if admitted > 0 || batch.next_cursor != batch_cursor {
            at.continues = batch.next_cursor.is_some();
            at.cursor = batch.next_cursor;
            continue;
        }
        // The stream stands where it stood: the connector makes no progress.
        let e = ConnectorError::BadGateway {
            message: format!("{} returned a page that makes no progress", connector.name()),
        };
        if out.is_empty() {
            return Err(e);
        }
        upstream_error = Some(e);
        break 'page StopReason::UpstreamFailure;
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
            after: at.pos.clone(),
            cursor: at.cursor,
            page: run.page.saturating_add(1),
            continues: at.continues,
            tie: at.tie,
        };
        // A strict connector's checkpoint stops before the instant of the last record returned: a record of
        // that instant that the connector misplaced beyond the page (a tie in the wrong id order) is read
        // again by the next sync instead of being passed. Re-sending the rest of that instant costs little,
        // unless the tie is large: a keyset connector cannot misplace a record, so its checkpoint is exact.
        let checkpoint = match (&at.pos, order) {
            (Some(p), Order::Strict) => Some(Position { ts: p.ts, id: None }),
            (p, _) => p.clone(),
        };
        (CheckpointState { after: checkpoint }, Some(next))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_is_counted_as_it_is_sent_escaped_inside_the_proxy_envelope() {
        let contact = Contact {
            id: "1".into(),
            name: "a \"quoted\" back\\slash\nline \u{1} é".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&contact).unwrap();
        // What the Lambda runtime sends: the body as a JSON string inside the envelope.
        let embedded = serde_json::to_string(&json).unwrap();
        assert_eq!(wire_size(&contact), embedded.len() - 2 + 1, "escaped length plus a comma");
        assert!(wire_size(&contact) > json.len() + 1, "quotes and backslashes count twice");
    }

    #[test]
    fn contacts_are_serialised_once_measured_as_sent_and_taken_back_whole() {
        let contact = |id: &str| Contact {
            id: id.into(),
            name: format!("a \"quoted\" name {id}"),
            emails: vec![format!("{id}@x.co")],
            ..Default::default()
        };
        let mut page = ContactsJson::default();
        assert_eq!(page.push(&contact("1")), wire_size(&contact("1")));
        assert_eq!(page.push(&contact("2")), wire_size(&contact("2")));
        let before = page.snapshot();
        page.push(&contact("3"));
        page.pop_last(before);
        assert_eq!(page.len(), 2);
        assert_eq!(page.to_contacts(), vec![contact("1"), contact("2")]);
        let expected = format!(
            "{},{}",
            serde_json::to_string(&contact("1")).unwrap(),
            serde_json::to_string(&contact("2")).unwrap()
        );
        assert_eq!(page.as_bytes(), expected.as_bytes());
    }

    #[test]
    fn batches_are_sorted_and_keep_the_latest_version_of_each_id() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let rec = |id: &str, s: i64| ContactRecord {
            updated_at: at(s),
            contact: Contact {
                id: id.into(),
                ..Default::default()
            },
        };
        let got: Vec<(String, i64)> = ordered(vec![rec("500", 5), rec("300", 5), rec("9", 7), rec("300", 4), rec("2", 6)])
            .into_iter()
            .map(|(k, _)| (k.id, k.ts / 1_000_000))
            .collect();
        assert_eq!(
            got,
            vec![("300".into(), 5), ("500".into(), 5), ("2".into(), 6), ("9".into(), 7)],
            "sorted by (updated_at, id), the older copy of 300 dropped"
        );
    }
}
