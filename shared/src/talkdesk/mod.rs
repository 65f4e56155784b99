//! Talkdesk's bridge protocol: the requests Talkdesk sends and the responses it expects, exactly as
//! `contact-retriever.md` and `interaction-retriever.md` describe them, plus the rules this bridge adds
//! (see [`request`]). Nothing here knows about AWS, HTTP clients or any one external system.

pub mod registration;
pub mod request;
pub mod response;

pub use request::{
    auth_request_from, contacts_request_from, interactions_request_from, parse_body, parse_contacts_request, parse_interactions_request,
    take_auth_field, Auth, ContactLookup, ContactsRequest, InteractionsRequest, RequestError, MAX_BODY_BYTES,
};
pub use response::{Agent, AgentsResponse, Contact, ContactsResponse, Interaction, Priority, Status};
