//! `talkdesk-config`: prints the integration's configuration document for a deployment (see
//! `bridge::talkdesk::registration`). The endpoint URLs come from `--base-url` or from the stack's outputs
//! (`aws cloudformation describe-stacks --stack-name NAME > stack.json`, then `--stack-outputs stack.json`);
//! the connector from `--connector`, else `BRIDGE_CONNECTOR`, else the stack's `Connector` parameter.

use bridge::connectors::ConnectorKind;
use bridge::talkdesk::registration::{self, Endpoints, Images};
use serde_json::Value;

pub const USAGE: &str = "usage: talkdesk-config (--base-url URL | --stack-outputs FILE) --logo-url URL --icon-url URL \
[--connector sandbox|zendesk|postgres] [--name NAME] [--credentials-in-ssm] [--no-bridge-token]
  --stack-outputs FILE   the JSON `aws cloudformation describe-stacks --stack-name NAME` prints
  --credentials-in-ssm   the connector's credentials are kept in SSM (single tenant): Talkdesk asks only for the bridge token
  --no-bridge-token      the deployment accepts every caller (AllowUnauthenticated=true)
  the connector defaults to BRIDGE_CONNECTOR, then to the stack's Connector parameter, then to sandbox";

/// What the command was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub base_url: Option<String>,
    pub stack_outputs: Option<String>,
    pub connector: Option<String>,
    pub name: Option<String>,
    pub logo_url: Option<String>,
    pub icon_url: Option<String>,
    pub credentials_in_ssm: bool,
    pub no_bridge_token: bool,
}

/// Reads the command line (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--base-url" => o.base_url = Some(value()?),
            "--stack-outputs" => o.stack_outputs = Some(value()?),
            "--connector" => o.connector = Some(value()?),
            "--name" => o.name = Some(value()?),
            "--logo-url" => o.logo_url = Some(value()?),
            "--icon-url" => o.icon_url = Some(value()?),
            "--credentials-in-ssm" => o.credentials_in_ssm = true,
            "--no-bridge-token" => o.no_bridge_token = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// The endpoints a `describe-stacks` output names (the template's `ContactsUrl`, `InteractionsUrl`,
/// `AuthValidationUrl` and `AgentsUrl` outputs).
pub fn endpoints_from_stack(described: &Value) -> Result<Endpoints, String> {
    let outputs = stack(described)?
        .get("Outputs")
        .and_then(Value::as_array)
        .ok_or("the stack has no `Outputs`: is it deployed (CREATE_COMPLETE or UPDATE_COMPLETE)?")?;
    let output = |key: &str| -> Result<String, String> {
        outputs
            .iter()
            .find(|o| o.get("OutputKey").and_then(Value::as_str) == Some(key))
            .and_then(|o| o.get("OutputValue").and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| format!("the stack has no `{key}` output: deploy the current template.yaml"))
    };
    Ok(Endpoints {
        contacts: output("ContactsUrl")?,
        interactions: output("InteractionsUrl")?,
        auth_validation: output("AuthValidationUrl")?,
        agents: output("AgentsUrl")?,
    })
}

/// The connector a described stack was deployed with (its `Connector` parameter), if it says.
pub fn stack_connector(described: &Value) -> Option<String> {
    stack(described)
        .ok()?
        .get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("ParameterKey").and_then(Value::as_str) == Some("Connector"))?
        .get("ParameterValue")?
        .as_str()
        .map(str::to_string)
}

fn stack(described: &Value) -> Result<&Value, String> {
    let stacks = described
        .get("Stacks")
        .and_then(Value::as_array)
        .ok_or("not the output of `aws cloudformation describe-stacks` (no `Stacks` array)")?;
    match stacks.as_slice() {
        [one] => Ok(one),
        [] => Err("`Stacks` is empty".into()),
        _ => Err("`Stacks` holds several stacks: describe one with --stack-name".into()),
    }
}

fn https_url(flag: &str, value: Option<&str>) -> Result<String, String> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{flag} is mandatory in Talkdesk's configuration: give the HTTPS URL of an image you host"))?;
    if !v.starts_with("https://") {
        return Err(format!("{flag} must be an https:// URL, got `{v}`"));
    }
    Ok(v.to_string())
}

/// The document for `options`; `env` reads the environment (`BRIDGE_CONNECTOR`, the connector's settings
/// such as `POSTGRES_INTERACTION_TYPES`) and `read_file` the stack outputs.
pub fn run(
    options: &Options,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Value, String> {
    let described = match &options.stack_outputs {
        Some(path) => {
            let text = read_file(path)?;
            Some(serde_json::from_str::<Value>(&text).map_err(|e| format!("{path} is not JSON: {e}"))?)
        }
        None => None,
    };
    let endpoints = match (&options.base_url, &described) {
        (Some(_), Some(_)) => return Err("give --base-url or --stack-outputs, not both".into()),
        (Some(base), None) => {
            let base = base.trim();
            if !(base.starts_with("https://") || base.starts_with("http://127.0.0.1") || base.starts_with("http://localhost")) {
                return Err(format!(
                    "--base-url must be an https:// URL (or a local http://127.0.0.1 one), got `{base}`"
                ));
            }
            Endpoints::under(base)
        }
        (None, Some(d)) => endpoints_from_stack(d)?,
        (None, None) => return Err("give --base-url URL or --stack-outputs FILE".into()),
    };
    let connector_name = options
        .connector
        .clone()
        .or_else(|| env("BRIDGE_CONNECTOR").filter(|v| !v.trim().is_empty()))
        .or_else(|| described.as_ref().and_then(stack_connector))
        .unwrap_or_else(|| "sandbox".into());
    let kind = ConnectorKind::parse(&connector_name).ok_or_else(|| {
        format!(
            "unknown connector `{connector_name}`: expected one of {}",
            ConnectorKind::NAMES.join(", ")
        )
    })?;
    let kind_name = ConnectorKind::NAMES
        .iter()
        .find(|n| ConnectorKind::parse(n) == Some(kind))
        .copied()
        .unwrap_or("sandbox");
    let config = bridge::Config::from_lookup(&|k: &str| {
        if k == "BRIDGE_CONNECTOR" {
            Some(kind_name.to_string())
        } else {
            env(k)
        }
    })
    .map_err(|e| e.to_string())?;
    let mut integration = kind.integration(&config);
    if options.credentials_in_ssm {
        integration.auth_fields.clear();
    }
    if let Some(name) = &options.name {
        integration.name = name.clone();
    }
    let images = Images {
        logo_url: https_url("--logo-url", options.logo_url.as_deref())?,
        icon_url: https_url("--icon-url", options.icon_url.as_deref())?,
    };
    Ok(registration::document(&integration, &endpoints, &images, !options.no_bridge_token))
}
