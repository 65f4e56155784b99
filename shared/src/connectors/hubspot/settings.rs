//! The HubSpot connector's deployment settings, read once at cold start from the environment (never from a
//! request):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `HUBSPOT_BASE_URL` | unset | Replaces `https://api.hubapi.com` for every request (tests, proxies) |
//! | `HUBSPOT_PHOTO_PROPERTY` | unset | A contact property holding a photo URL, for `photo_url` (HubSpot has no standard one) |
//! | `HUBSPOT_CONNECT_TIMEOUT_MS` | `3000` | TCP + TLS connect timeout of each request |
//! | `HUBSPOT_TIMEOUT_MS` | `10000` | Whole-request timeout of each request |

use std::time::Duration;

use crate::config::ConfigError;

/// HubSpot's API host; requests go nowhere else unless the deployment overrides it.
pub const API_BASE: &str = "https://api.hubapi.com";

/// Settings of the HubSpot connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotConfig {
    /// `HUBSPOT_BASE_URL`, without a trailing slash.
    pub base_url: Option<String>,
    /// `HUBSPOT_PHOTO_PROPERTY`: an internal property name.
    pub photo_property: Option<String>,
    /// `HUBSPOT_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `HUBSPOT_TIMEOUT_MS`.
    pub request_timeout: Duration,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        HubSpotConfig {
            base_url: None,
            photo_property: None,
            connect_timeout: Duration::from_millis(3_000),
            request_timeout: Duration::from_millis(10_000),
        }
    }
}

fn millis(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 1 => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("expected a whole number of milliseconds of at least 1, got `{v}`"),
            }),
        },
    }
}

/// A HubSpot internal property name: lowercase letters, digits and `_`, at most 100 characters.
pub fn valid_property(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl HubSpotConfig {
    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base_url = match get("HUBSPOT_BASE_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(
                crate::connectors::zendesk::settings::parse_base_url(&v).map_err(|problem| ConfigError::Invalid {
                    name: "HUBSPOT_BASE_URL",
                    problem,
                })?,
            ),
        };
        let photo_property = match get("HUBSPOT_PHOTO_PROPERTY")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) if valid_property(&v) => Some(v),
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: "HUBSPOT_PHOTO_PROPERTY",
                    problem: format!("`{v}` is not a HubSpot internal property name (lowercase letters, digits and `_`)"),
                })
            }
        };
        let defaults = HubSpotConfig::default();
        Ok(HubSpotConfig {
            base_url,
            photo_property,
            connect_timeout: millis(get, "HUBSPOT_CONNECT_TIMEOUT_MS", defaults.connect_timeout)?,
            request_timeout: millis(get, "HUBSPOT_TIMEOUT_MS", defaults.request_timeout)?,
        })
    }

    /// Where requests go: `HUBSPOT_BASE_URL`, or HubSpot's API host.
    pub fn base(&self) -> &str {
        self.base_url.as_deref().unwrap_or(API_BASE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<HubSpotConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HubSpotConfig::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn hubspot_defaults_call_the_real_api_host() {
        let c = read(&[]).unwrap();
        assert_eq!(c, HubSpotConfig::default());
        assert_eq!(c.base(), "https://api.hubapi.com");
    }

    #[test]
    fn hubspot_settings_are_read_and_checked() {
        let c = read(&[
            ("HUBSPOT_BASE_URL", "http://127.0.0.1:8082/"),
            ("HUBSPOT_PHOTO_PROPERTY", "photo_url"),
            ("HUBSPOT_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:8082");
        assert_eq!(c.photo_property.as_deref(), Some("photo_url"));
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        for (pairs, name) in [
            (vec![("HUBSPOT_BASE_URL", "ftp://x")], "HUBSPOT_BASE_URL"),
            (vec![("HUBSPOT_BASE_URL", "http://u:p@127.0.0.1")], "HUBSPOT_BASE_URL"),
            (vec![("HUBSPOT_PHOTO_PROPERTY", "Photo URL")], "HUBSPOT_PHOTO_PROPERTY"),
            (vec![("HUBSPOT_CONNECT_TIMEOUT_MS", "0")], "HUBSPOT_CONNECT_TIMEOUT_MS"),
        ] {
            let err = read(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }
}
