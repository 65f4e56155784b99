//! The Talkdesk bridge library: the bridge protocol (`talkdesk`), the connector-agnostic sync engine
//! (`sync`), one folder per external system behind one trait (`connectors`), phone normalisation,
//! secrets from SSM (`secrets`), configuration read once at cold start (`config`) and the one place that
//! turns errors into HTTP responses (`api`).

pub mod agents;
pub mod api;
pub mod aws;
pub mod config;
pub mod connectors;
pub mod error;
pub mod http;
pub mod json;
pub mod lambda;
pub mod lookup;
pub mod metrics;
pub mod phone;
pub mod secrets;
pub mod sync;
pub mod talkdesk;

pub use api::App;
pub use config::Config;
