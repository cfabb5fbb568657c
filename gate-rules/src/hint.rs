//! "Did you mean …?": the closest known name to a misspelt one, shared by config validation,
//! the rule language and the CLI so every hint is chosen the same way.

/// The candidate closest to `word` (Jaro–Winkler similarity), if it is close enough to be a
/// likely misspelling: similarity at least 0.8, or at most `max_edits` edits away.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max_edits: usize,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, c)| *score >= 0.8 || strsim::levenshtein(word, c) <= max_edits)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_closest_likely_misspelling() {
        let names = ["checkout-availability", "payments-availability"];
        assert_eq!(
            closest("checkout-availabilty", names, 0),
            Some("checkout-availability")
        );
        assert_eq!(closest("zzz", names, 2), None);
        assert_eq!(closest("ab", ["ax", "zz"], 1), Some("ax"));
    }
}
