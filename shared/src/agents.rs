//! Agent synchronization: every agent of the external system in one response, as Talkdesk's protocol
//! wants (it describes no paging). The rules live here once; a connector only reads one upstream page
//! ([`Connector::agents`]).
//!
//! - Pages are followed until the connector says there is no next one, at most [`MAX_AGENT_PAGES`] of them.
//! - The answer never outgrows `BRIDGE_MAX_RESPONSE_BYTES` (counted as the response is sent: escaped
//!   inside the proxy envelope, as contact pages are).
//! - Another page is asked for only while the time budget lasts.
//! - A list that cannot be completed within these bounds is an error that says which bound was hit, never
//!   a silently truncated list: Talkdesk would take a missing agent as removed.
//! - Agents are deduplicated by id (the first one read wins); ids, names and emails are trimmed, and a
//!   connector never returns an agent without all three (it skips and counts those itself).

use std::collections::HashSet;

use crate::connectors::{Connector, ConnectorError};
use crate::sync::engine::{escaped_len, RESPONSE_OVERHEAD_BYTES};
use crate::sync::Budget;
use crate::talkdesk::{Agent, Auth};

/// The most upstream pages one agent synchronization reads (Zendesk: 100 agents a page, so 20,000 agents).
pub const MAX_AGENT_PAGES: usize = 200;

/// Why the list of agents could not be answered complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentsError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The time budget ran out with pages still to read.
    #[error(
        "listing the agents did not finish within the time budget ({pages} pages, {agents} agents read so far); no partial list is sent"
    )]
    OutOfTime { pages: usize, agents: usize },
    /// The list does not fit in one response.
    #[error("the {agents} agents read so far take more than BRIDGE_MAX_RESPONSE_BYTES ({max_bytes} bytes); raise it (at most 6000000) to send them all")]
    TooLarge { agents: usize, max_bytes: usize },
    /// More pages than [`MAX_AGENT_PAGES`], or a cursor the provider gave twice.
    #[error("the agents list has more than {pages} pages, or the provider repeated a cursor; no partial list is sent")]
    TooManyPages { pages: usize },
}

/// Counters of one agent synchronization, for logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub pages: usize,
    pub duplicates: usize,
    pub bytes: usize,
}

/// Bytes one agent adds to the response as sent (its JSON escaped in the envelope, plus a comma).
fn wire_size(agent: &Agent) -> usize {
    serde_json::to_vec(agent).map(|v| escaped_len(&v) + 1).unwrap_or(0)
}

/// Every agent `connector` has, within `max_bytes` and `budget`.
pub async fn all_agents(
    connector: &dyn Connector,
    auth: &Auth,
    max_bytes: usize,
    budget: &dyn Budget,
) -> Result<(Vec<Agent>, AgentStats), AgentsError> {
    let mut agents: Vec<Agent> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let mut stats = AgentStats {
        bytes: RESPONSE_OVERHEAD_BYTES,
        ..AgentStats::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        if stats.pages >= MAX_AGENT_PAGES {
            return Err(AgentsError::TooManyPages { pages: MAX_AGENT_PAGES });
        }
        if stats.pages > 0 && budget.exhausted() {
            return Err(AgentsError::OutOfTime {
                pages: stats.pages,
                agents: agents.len(),
            });
        }
        let page = connector.agents(auth, cursor.as_deref(), budget).await?;
        stats.pages += 1;
        for agent in page.agents {
            let agent = Agent {
                id: agent.id.trim().to_string(),
                name: agent.name.trim().to_string(),
                email: agent.email.trim().to_string(),
            };
            if !seen.insert(agent.id.clone()) {
                stats.duplicates += 1;
                continue;
            }
            stats.bytes += wire_size(&agent);
            agents.push(agent);
            if stats.bytes > max_bytes {
                return Err(AgentsError::TooLarge {
                    agents: agents.len(),
                    max_bytes,
                });
            }
        }
        match page.next_cursor {
            None => return Ok((agents, stats)),
            Some(next) => {
                if !cursors.insert(next.clone()) {
                    return Err(AgentsError::TooManyPages { pages: stats.pages });
                }
                cursor = Some(next);
            }
        }
    }
}
