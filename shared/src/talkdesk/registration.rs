//! The integration's configuration document: the JSON an admin sends to Talkdesk to register the bridge,
//! as Talkdesk's configuration reference (`Talkdesk/api`, `integrations/configuration/README.md`)
//! describes it. Built from what a connector says of itself ([`Integration`]) and where the deployment
//! serves its routes ([`Endpoints`]); nothing here knows a connector or AWS.
//!
//! Two points of the reference are unsettled and chosen here: the reference's field list calls the
//! authentication fields `authentication_fields` (its example says `authentication_configuration`), and
//! the URLs `contact_synchronization_url` / `interaction_retrieval_url` (its example says `..._endpoint`);
//! the field list is followed. The reference has no field for an agent synchronization URL, so the
//! document has none: `POST /agents` is given to Talkdesk by other means (the stack's `AgentsUrl` output).

use serde_json::{json, Map, Value};

/// One `auth` field the integration asks the admin for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthField {
    /// The key in `auth`.
    pub name: &'static str,
    /// How Talkdesk labels the input.
    pub display: &'static str,
    pub mandatory: bool,
    /// A hint shown with the input.
    pub help: &'static str,
    /// A template that shows the input in context, e.g. `https://{{subdomain}}.zendesk.com`.
    pub format: Option<&'static str>,
}

/// What a connector says of itself for the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// Talkdesk's unique system name of the integration.
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// The `auth` fields the connector reads from Talkdesk's requests.
    pub auth_fields: Vec<AuthField>,
    pub interaction_types: Vec<String>,
}

/// Where the deployment serves the routes Talkdesk calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub contacts: String,
    pub interactions: String,
    pub auth_validation: String,
    /// Not part of Talkdesk's configuration reference; kept for the admin's information.
    pub agents: String,
}

impl Endpoints {
    /// The routes under one base URL (`https://abc.execute-api.us-east-1.amazonaws.com`).
    pub fn under(base_url: &str) -> Self {
        let base = base_url.trim().trim_end_matches('/');
        Endpoints {
            contacts: format!("{base}{CONTACTS_PATH}"),
            interactions: format!("{base}{INTERACTIONS_PATH}"),
            auth_validation: format!("{base}{AUTH_VALIDATION_PATH}"),
            agents: format!("{base}{AGENTS_PATH}"),
        }
    }
}

/// The paths the template routes (`template.yaml`'s `HttpApi` events).
pub const CONTACTS_PATH: &str = "/contacts";
pub const INTERACTIONS_PATH: &str = "/interactions";
pub const AUTH_VALIDATION_PATH: &str = "/auth/validate";
pub const AGENTS_PATH: &str = "/agents";

/// The bridge token field every closed deployment asks for (`auth.bridge_token`).
pub const BRIDGE_TOKEN_FIELD: AuthField = AuthField {
    name: crate::secrets::inbound::AUTH_FIELD,
    display: "Bridge token",
    mandatory: true,
    help: "The bridge token of this deployment: the value of the SSM parameter inbound-tokens under the stack's SsmPrefix (one of them while rotating).",
    format: None,
};

/// The images Talkdesk shows; both mandatory in the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub logo_url: String,
    pub icon_url: String,
}

/// The configuration document. `bridge_token` adds the [`BRIDGE_TOKEN_FIELD`] (a deployment closed by
/// default needs it); without any field the authentication type is `none`, else `custom`.
pub fn document(integration: &Integration, endpoints: &Endpoints, images: &Images, bridge_token: bool) -> Value {
    let mut fields: Vec<&AuthField> = integration.auth_fields.iter().collect();
    if bridge_token {
        fields.push(&BRIDGE_TOKEN_FIELD);
    }
    let authentication_fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut spec = Map::new();
            spec.insert("source".into(), json!("input"));
            spec.insert("display".into(), json!(f.display));
            spec.insert("mandatory".into(), json!(f.mandatory));
            spec.insert("type".into(), json!("input"));
            spec.insert("store".into(), json!(true));
            spec.insert("help".into(), json!(f.help));
            if let Some(format) = f.format {
                spec.insert("format".into(), json!(format));
            }
            json!({ f.name: spec })
        })
        .collect();
    let mut doc = json!({
        "name": integration.name,
        "display_name": integration.display_name,
        "description": integration.description,
        "logo_url": images.logo_url,
        "icon_url": images.icon_url,
        "authentication_type": if authentication_fields.is_empty() { "none" } else { "custom" },
        "contact_synchronization_url": endpoints.contacts,
        "interaction_retrieval_url": endpoints.interactions,
        "auth_validation_endpoint": endpoints.auth_validation,
        "interaction_types": integration.interaction_types,
    });
    if !authentication_fields.is_empty() {
        doc["authentication_fields"] = Value::Array(authentication_fields);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration() -> Integration {
        Integration {
            name: "x".into(),
            display_name: "X".into(),
            description: "d".into(),
            auth_fields: vec![AuthField {
                name: "subdomain",
                display: "Subdomain",
                mandatory: true,
                help: "h",
                format: Some("https://{{subdomain}}.x.com"),
            }],
            interaction_types: vec!["ticket".into()],
        }
    }

    #[test]
    fn endpoints_under_a_base_url_follow_the_template_paths() {
        let e = Endpoints::under("https://abc.execute-api.eu-west-1.amazonaws.com/");
        assert_eq!(e.contacts, "https://abc.execute-api.eu-west-1.amazonaws.com/contacts");
        assert_eq!(e.auth_validation, "https://abc.execute-api.eu-west-1.amazonaws.com/auth/validate");
    }

    #[test]
    fn a_document_without_fields_asks_for_no_authentication() {
        let mut i = integration();
        i.auth_fields.clear();
        let images = Images {
            logo_url: "https://l".into(),
            icon_url: "https://i".into(),
        };
        let doc = document(&i, &Endpoints::under("https://b"), &images, false);
        assert_eq!(doc["authentication_type"], "none");
        assert!(doc.get("authentication_fields").is_none());
        let doc = document(&integration(), &Endpoints::under("https://b"), &images, true);
        assert_eq!(doc["authentication_type"], "custom");
        let fields = doc["authentication_fields"].as_array().unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0]["subdomain"]["format"], "https://{{subdomain}}.x.com");
        assert_eq!(fields[1]["bridge_token"]["mandatory"], true);
    }
}
