//! The Zendesk connector's deployment settings, read once at cold start from the environment (never from a
//! request):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `ZENDESK_BASE_URL` | unset | Replaces `https://{subdomain}.zendesk.com` for every request (tests, proxies) |
//! | `ZENDESK_INCLUDE_STAFF` | `false` | Also sync agents and admins, not only end-users |
//! | `ZENDESK_USER_FIELDS` | unset | Custom user fields for `title`, `address`, `websites`, `twitter`, e.g. `title=job_title,address=address` |
//! | `ZENDESK_CONNECT_TIMEOUT_MS` | `3000` | TCP + TLS connect timeout of each request |
//! | `ZENDESK_TIMEOUT_MS` | `10000` | Whole-request timeout of each request |

use std::time::Duration;

use crate::config::ConfigError;

/// Which Zendesk custom user field (by key) feeds each Talkdesk contact field that Zendesk has no
/// standard field for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFieldMap {
    pub title: Option<String>,
    pub address: Option<String>,
    pub websites: Option<String>,
    pub twitter: Option<String>,
}

impl UserFieldMap {
    /// Whether no contact field comes from a user field.
    pub fn is_empty(&self) -> bool {
        [&self.title, &self.address, &self.websites, &self.twitter]
            .iter()
            .all(|k| k.is_none())
    }

    /// Parses `title=job_title,address=address`: comma-separated `target=key` pairs, targets among
    /// `title`, `address`, `websites`, `twitter`, keys as Zendesk writes user field keys.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = UserFieldMap::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((target, key)) = pair.split_once('=') else {
                return Err(format!("`{pair}` is not `target=field_key`"));
            };
            let (target, key) = (target.trim(), key.trim());
            if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(format!("`{key}` is not a user field key (letters, digits, `_` or `-`, at most 64)"));
            }
            let slot = match target {
                "title" => &mut map.title,
                "address" => &mut map.address,
                "websites" => &mut map.websites,
                "twitter" => &mut map.twitter,
                other => {
                    return Err(format!(
                        "`{other}` is not a contact field that can come from a user field; expected title, address, websites or twitter"
                    ))
                }
            };
            if slot.is_some() {
                return Err(format!("`{target}` is mapped twice"));
            }
            *slot = Some(key.to_string());
        }
        Ok(map)
    }
}

/// Settings of the Zendesk connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZendeskConfig {
    /// `ZENDESK_BASE_URL`, without a trailing slash.
    pub base_url: Option<String>,
    /// `ZENDESK_INCLUDE_STAFF`.
    pub include_staff: bool,
    /// `ZENDESK_USER_FIELDS`.
    pub user_fields: UserFieldMap,
    /// `ZENDESK_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `ZENDESK_TIMEOUT_MS`.
    pub request_timeout: Duration,
}

impl Default for ZendeskConfig {
    fn default() -> Self {
        ZendeskConfig {
            base_url: None,
            include_staff: false,
            user_fields: UserFieldMap::default(),
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

/// Checks `ZENDESK_BASE_URL`: an absolute http(s) URL with a host and nothing after the path.
pub fn parse_base_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not carry credentials, a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl ZendeskConfig {
    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base_url = match get("ZENDESK_BASE_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(parse_base_url(&v).map_err(|problem| ConfigError::Invalid {
                name: "ZENDESK_BASE_URL",
                problem,
            })?),
        };
        let include_staff = match get("ZENDESK_INCLUDE_STAFF")
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
        {
            None => false,
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "ZENDESK_INCLUDE_STAFF",
                        problem: format!("expected true or false, got `{v}`"),
                    })
                }
            },
        };
        let user_fields = match get("ZENDESK_USER_FIELDS") {
            None => UserFieldMap::default(),
            Some(v) => UserFieldMap::parse(&v).map_err(|problem| ConfigError::Invalid {
                name: "ZENDESK_USER_FIELDS",
                problem,
            })?,
        };
        let defaults = ZendeskConfig::default();
        Ok(ZendeskConfig {
            base_url,
            include_staff,
            user_fields,
            connect_timeout: millis(get, "ZENDESK_CONNECT_TIMEOUT_MS", defaults.connect_timeout)?,
            request_timeout: millis(get, "ZENDESK_TIMEOUT_MS", defaults.request_timeout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<ZendeskConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ZendeskConfig::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn zendesk_defaults_sync_end_users_from_the_real_host() {
        assert_eq!(read(&[]).unwrap(), ZendeskConfig::default());
    }

    #[test]
    fn zendesk_user_fields_map_named_targets_to_field_keys() {
        let c = read(&[(
            "ZENDESK_USER_FIELDS",
            " title=job_title, address=address ,twitter=twitter_handle,websites=web-site",
        )])
        .unwrap();
        assert_eq!(
            c.user_fields,
            UserFieldMap {
                title: Some("job_title".into()),
                address: Some("address".into()),
                websites: Some("web-site".into()),
                twitter: Some("twitter_handle".into())
            }
        );
    }

    #[test]
    fn zendesk_bad_settings_name_the_variable() {
        for (pairs, name) in [
            (vec![("ZENDESK_USER_FIELDS", "company=org")], "ZENDESK_USER_FIELDS"),
            (vec![("ZENDESK_USER_FIELDS", "title")], "ZENDESK_USER_FIELDS"),
            (vec![("ZENDESK_USER_FIELDS", "title=a,title=b")], "ZENDESK_USER_FIELDS"),
            (vec![("ZENDESK_USER_FIELDS", "title=job title")], "ZENDESK_USER_FIELDS"),
            (vec![("ZENDESK_INCLUDE_STAFF", "maybe")], "ZENDESK_INCLUDE_STAFF"),
            (vec![("ZENDESK_BASE_URL", "ftp://x")], "ZENDESK_BASE_URL"),
            (vec![("ZENDESK_BASE_URL", "http://127.0.0.1:9?x=1")], "ZENDESK_BASE_URL"),
            (vec![("ZENDESK_BASE_URL", "not a url")], "ZENDESK_BASE_URL"),
            (vec![("ZENDESK_TIMEOUT_MS", "0")], "ZENDESK_TIMEOUT_MS"),
        ] {
            let err = read(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn zendesk_base_url_loses_its_trailing_slash_and_staff_flag_reads_booleans() {
        let c = read(&[
            ("ZENDESK_BASE_URL", "http://127.0.0.1:8081/"),
            ("ZENDESK_INCLUDE_STAFF", "TRUE"),
            ("ZENDESK_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert!(c.include_staff);
        assert_eq!(c.request_timeout, Duration::from_millis(250));
    }
}
