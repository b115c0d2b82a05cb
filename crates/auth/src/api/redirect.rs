//! `redirect_to` checking, as GoTrue's `isRedirectURLValid`: a target on the site URL's host is
//! allowed, as is one matching a `uri_allow_list` glob; anything else falls back to the site URL
//! (no open redirects).

use manifold_config::AuthConfig;
use url::Url;

/// The redirect target to use: `requested` when allowed, else the site URL.
pub(crate) fn resolve(config: &AuthConfig, requested: Option<&str>) -> String {
    match requested {
        Some(target) if is_allowed(config, target) => target.to_owned(),
        _ => config.site_url.clone(),
    }
}

/// True when `target` may be redirected to.
pub(crate) fn is_allowed(config: &AuthConfig, target: &str) -> bool {
    let Ok(url) = Url::parse(target) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") && url.host_str().is_none() {
        // Custom app schemes (`myapp://callback`) are only allowed through the allow list.
        return config
            .uri_allow_list
            .iter()
            .any(|pattern| glob_matches(pattern, target));
    }
    if let Ok(site) = Url::parse(&config.site_url)
        && site.host_str().is_some()
        && site.host_str() == url.host_str()
        && site.port_or_known_default() == url.port_or_known_default()
    {
        return true;
    }
    config
        .uri_allow_list
        .iter()
        .any(|pattern| pattern == target || glob_matches(pattern, target))
}

/// Glob as GoTrue's (gobwas with `.` and `/` separators): `*` matches within a host label or
/// path segment, `**` matches anything, everything else literally.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    matches_from(pattern, text)
}

fn matches_from(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => {
            let (rest, crosses) = if pattern.get(1) == Some(&b'*') {
                (&pattern[2..], true)
            } else {
                (&pattern[1..], false)
            };
            for split in 0..=text.len() {
                if matches_from(rest, &text[split..]) {
                    return true;
                }
                if let Some(&byte) = text.get(split)
                    && !crosses
                    && (byte == b'/' || byte == b'.')
                {
                    return false;
                }
            }
            false
        }
        Some(&byte) => text.first() == Some(&byte) && matches_from(&pattern[1..], &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(list: &[&str]) -> AuthConfig {
        AuthConfig {
            site_url: "http://localhost:3000".into(),
            uri_allow_list: list.iter().map(|s| (*s).to_owned()).collect(),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn site_host_and_allow_list() {
        let config = config(&["https://*.example.com/**", "myapp://callback"]);
        assert!(is_allowed(&config, "http://localhost:3000/reset"));
        assert!(!is_allowed(&config, "http://localhost:4000/reset"));
        assert!(is_allowed(&config, "https://app.example.com/a/b"));
        assert!(!is_allowed(&config, "https://a.b.example.com/a"));
        assert!(!is_allowed(
            &config,
            "https://evil.com/?https://app.example.com/"
        ));
        assert!(is_allowed(&config, "myapp://callback"));
        assert_eq!(
            resolve(&config, Some("https://evil.com")),
            "http://localhost:3000"
        );
        assert_eq!(resolve(&config, None), "http://localhost:3000");
    }
}
