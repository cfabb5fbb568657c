//! Package URLs (purl, <https://github.com/package-url/purl-spec>): the `artifactId` of the
//! CDEvents gate sends.
//!
//! A train may carry its artifact as the registration label `artifact`; [`is_purl`] decides
//! whether such a label is accepted (the API refuses a registration whose label is not one).
//! A train without it is named by [`generic`]. gate only checks the purl's shape — scheme,
//! type, a non-empty name, well-formed percent escapes — and never rewrites one it was given:
//! the label reaches receivers byte for byte.

/// The characters a purl component keeps as they are; all others are percent-encoded.
fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')
}

/// `pkg:generic/<name>` with `name` percent-encoded (so a `/` or `:` of a train ID stays
/// part of the name).
pub fn generic(name: &str) -> String {
    let mut purl = String::from("pkg:generic/");
    for c in name.chars() {
        if unreserved(c) {
            purl.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                purl.push_str(&format!("%{b:02X}"));
            }
        }
    }
    purl
}

/// Whether `text` has the shape of a package URL:
/// `pkg:<type>/[<namespace>/]<name>[@<version>][?<qualifiers>][#<subpath>]`, where the type
/// starts with a letter and has only letters, digits, `.`, `+` and `-`, the name is not
/// empty, and there is no whitespace and no malformed `%` escape.
pub fn is_purl(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("pkg:") else {
        return false;
    };
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) || !escapes_are_valid(text) {
        return false;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let Some((kind, path)) = rest.split_once('/') else {
        return false;
    };
    let type_ok = kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    let path = path.rsplit_once('@').map_or(path, |(path, _version)| path);
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    type_ok && !name.is_empty()
}

fn escapes_are_valid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_from_the_spec_are_accepted_and_malformed_ones_refused() {
        for good in [
            "pkg:oci/checkout@sha256%3A244fd47e07d10?repository_url=ghcr.io/acme",
            "pkg:maven/org.apache.xmlgraphics/batik-anim@1.9.1?packaging=sources",
            "pkg:github/package-url/purl-spec@244fd47e07d1004#everybody/loves/dogs",
            "pkg:generic/t-123",
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
        ] {
            assert!(is_purl(good), "{good}");
        }
        for bad in [
            "",
            "checkout:1.2.3",
            "pkg:",
            "pkg:oci",
            "pkg:oci/",
            "pkg:1oci/checkout",
            "pkg:o_ci/checkout",
            "pkg:oci/check out",
            "pkg:oci/checkout%zz",
            "pkg:oci/@1.2",
            "PKG:oci/checkout",
        ] {
            assert!(!is_purl(bad), "{bad:?}");
        }
    }

    #[test]
    fn generic_purls_keep_the_whole_train_id_in_the_name() {
        assert_eq!(generic("t-123"), "pkg:generic/t-123");
        assert_eq!(generic("checkout/v2:7"), "pkg:generic/checkout%2Fv2%3A7");
        for id in ["t-123", "checkout/v2:7", "a.b_c~d"] {
            assert!(is_purl(&generic(id)), "{id}");
        }
    }
}
