//! The connector-agnostic contact-sync engine.
//!
//! - [`position`]: the `(updated_at, id)` keyset order every sync follows, and exclusive lower bounds in it.
//! - [`token`]: opaque, versioned, signed tokens for `next_offset` and `synchronization_checkpoint`.
//! - [`plan`]: where a request starts (pure).
//! - [`engine`]: fills one page from a connector within a count, byte and time budget, whatever its order.
//! - [`pacer`]: holds requests back while a provider's rate-limit window is spent.

pub mod budget;
pub mod engine;
pub mod pacer;
pub mod plan;
pub mod position;
pub mod token;

pub use budget::{Budget, Deadline};
pub use engine::{sync_page, ContactsJson, PageLimits, PageOutcome, PageRequest, PageStats, StopReason};
pub use pacer::Pacer;
pub use plan::{plan_run, RunState};
pub use position::{cmp_ids, Position, SyncKey};
pub use token::{CheckpointState, OffsetState, TokenError, TokenSigner};
