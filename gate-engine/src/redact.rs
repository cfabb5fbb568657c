//! URLs as they may be shown in logs, errors and metrics: without credentials.
//!
//! The Prometheus URL and webhook URLs from the config may carry a user name and password
//! (`https://user:pass@host/`) or a token in the query string (`?token=…`). Everything the
//! engine prints about a URL goes through [`url`] (or [`url_text`] for text that does not
//! parse as a URL), which drops the user info, the query string and the fragment.

/// The URL without user name, password, query string and fragment
/// (`https://user:pass@host/hook?token=x` → `https://host/hook`).
pub fn url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot carry credentials, which then have none to drop.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// [`url`] for text that does not parse as a URL.
pub fn url_text(text: &str) -> String {
    let end = text.find(['?', '#']).unwrap_or(text.len());
    let text = &text[..end];
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &text[..scheme_end + 3], &text[at + 1..])
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let url = Url::parse("https://bob:hunter2@hooks.example:8443/a/b?token=t0p#frag").unwrap();
        assert_eq!(super::url(&url), "https://hooks.example:8443/a/b");
        let plain = Url::parse("http://127.0.0.1:8081/hook").unwrap();
        assert_eq!(super::url(&plain), "http://127.0.0.1:8081/hook");
        assert_eq!(
            super::url_text("http://u:p@host:9/x y?k=secret"),
            "http://host:9/x y"
        );
    }

    #[test]
    fn strips_credentials_from_urls() {
        let url = Url::parse("https://user:pw@mimir.example/prometheus").expect("url");
        assert_eq!(super::url(&url), "https://mimir.example/prometheus");
        assert_eq!(
            super::url_text("http://u:p@host:9/x y"),
            "http://host:9/x y"
        );
    }
}
