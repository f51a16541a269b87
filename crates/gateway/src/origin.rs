//! [`AllowedOrigins`]: which browser pages may open a WebSocket (`allowed_origins`).
//!
//! Browsers send `Origin` on every WebSocket upgrade and let any page connect anywhere, so the
//! server is the one to refuse pages it does not serve. Clients that are not browsers send no
//! `Origin` and are always let through: the token, not the origin, is what authenticates them.

use axum::http::HeaderValue;

/// The origins allowed to open a WebSocket; every origin when the setting is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// `None` means any origin.
    patterns: Option<Vec<Pattern>>,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: any origin.
    Any,
    /// `https://app.example.com`: that origin exactly (compared without case).
    Exact(String),
    /// `https://*.example.com`: the scheme, then any host ending in `.example.com` (and the port, if given).
    Subdomains { scheme: String, suffix: String },
}

impl AllowedOrigins {
    /// Every origin is allowed (the default).
    pub fn any() -> Self {
        Self { patterns: None }
    }

    /// Parses entries such as `https://app.example.com`, `http://localhost:3000`,
    /// `https://*.example.com`, `null` or `*`; the error says which entry is wrong.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let patterns = entries.iter().map(|e| parse_entry(e)).collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err("is empty; leave it unset to allow every origin".to_owned());
        }
        Ok(Self { patterns: Some(patterns) })
    }

    /// Whether an upgrade request with this `Origin` header (absent for non-browser clients)
    /// may proceed.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        let (Some(patterns), Some(origin)) = (&self.patterns, origin) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        patterns.iter().any(|p| match p {
            Pattern::Any => true,
            Pattern::Exact(allowed) => *allowed == origin,
            Pattern::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|sub| !sub.is_empty() && !sub.contains(['/', ':', '@'])),
        })
    }
}

fn parse_entry(entry: &str) -> Result<Pattern, String> {
    let e = entry.trim().trim_end_matches('/').to_ascii_lowercase();
    if e == "*" {
        return Ok(Pattern::Any);
    }
    if e == "null" {
        // What sandboxed iframes and file:// pages send; allowed only when listed.
        return Ok(Pattern::Exact(e));
    }
    let bad = || format!("expected origins such as https://app.example.com or https://*.example.com, got {entry:?}");
    let (scheme, host) = e.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    match host.strip_prefix("*") {
        Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*') => {
            Ok(Pattern::Subdomains { scheme: scheme.to_owned(), suffix: suffix.to_owned() })
        }
        Some(_) => Err(bad()),
        None if host.contains('*') => Err(bad()),
        None => Ok(Pattern::Exact(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn allows(origins: &AllowedOrigins, origin: &str) -> bool {
        origins.allows(Some(&HeaderValue::from_str(origin).unwrap()))
    }

    #[test]
    fn exact_origins_match_without_case_or_trailing_slash() {
        let o = list(&["https://app.example.com", "http://localhost:3000/"]);
        assert!(allows(&o, "https://app.example.com"));
        assert!(allows(&o, "HTTPS://App.Example.com"));
        assert!(allows(&o, "http://localhost:3000"));
        assert!(!allows(&o, "http://app.example.com"), "another scheme");
        assert!(!allows(&o, "https://app.example.com:8443"), "another port");
        assert!(!allows(&o, "https://evil.com"));
        assert!(!allows(&o, "null"));
        assert!(o.allows(None), "non-browser clients send no Origin");
    }

    #[test]
    fn subdomain_patterns_need_a_subdomain() {
        let o = list(&["https://*.example.com"]);
        assert!(allows(&o, "https://app.example.com"));
        assert!(allows(&o, "https://a.b.example.com"));
        assert!(!allows(&o, "https://example.com"));
        assert!(!allows(&o, "https://evilexample.com"));
        assert!(!allows(&o, "https://app.example.com:444"));
        assert!(!allows(&o, "http://app.example.com"));
    }

    #[test]
    fn any_allows_everything() {
        assert!(allows(&AllowedOrigins::any(), "https://whatever.test"));
        assert!(allows(&list(&["*"]), "null"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["example.com", "ftp://x.com", "https://", "https://x.com/path", "https://a*.x.com", "https://*"] {
            let entries = vec![bad.to_owned()];
            assert!(AllowedOrigins::parse(&entries).is_err(), "{bad}");
        }
        assert!(AllowedOrigins::parse(&[]).is_err());
    }
}
