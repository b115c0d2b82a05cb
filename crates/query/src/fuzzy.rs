//! "Perhaps you meant …" suggestions, scored like the fuzzyset library PostgREST uses: n-gram
//! cosine similarity (3-grams, then 2-grams) to shortlist, Levenshtein similarity to score.

use std::collections::HashMap;

/// Minimum score for table and function names (PostgREST 14.6+).
pub(crate) const STRICT: f64 = 0.75;
/// Minimum score for relationship and parameter hints.
pub(crate) const LOOSE: f64 = 0.33;
/// Candidates kept after the cosine pass.
const SHORTLIST: usize = 50;

/// The best candidate scoring at least `min_score`, with its score.
pub(crate) fn best_match<'a>(
    needle: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    min_score: f64,
) -> Option<(&'a str, f64)> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let wanted = normalize(needle);
    if let Some(exact) = candidates.iter().find(|c| normalize(c) == wanted) {
        return Some((exact, 1.0));
    }
    for gram_size in [3, 2] {
        let needle_grams = grams(&wanted, gram_size);
        let needle_norm = norm(&needle_grams);
        let mut scored: Vec<(&str, f64)> = candidates
            .iter()
            .map(|candidate| {
                let candidate_grams = grams(&normalize(candidate), gram_size);
                let dot: f64 = needle_grams
                    .iter()
                    .filter_map(|(gram, count)| {
                        candidate_grams
                            .get(gram)
                            .map(|other| f64::from(count * other))
                    })
                    .sum();
                let denominator = needle_norm * norm(&candidate_grams);
                (
                    *candidate,
                    if denominator == 0.0 {
                        0.0
                    } else {
                        dot / denominator
                    },
                )
            })
            .filter(|(_, score)| *score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(SHORTLIST);
        let mut rescored: Vec<(&str, f64)> = scored
            .into_iter()
            .map(|(candidate, _)| {
                let other = normalize(candidate);
                let longest = wanted.chars().count().max(other.chars().count()).max(1);
                let distance = levenshtein(&wanted, &other);
                (candidate, 1.0 - distance as f64 / longest as f64)
            })
            .filter(|(_, score)| *score >= min_score)
            .collect();
        rescored.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(best) = rescored.into_iter().next() {
            return Some(best);
        }
    }
    None
}

fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | ','))
        .collect()
}

fn grams(text: &str, size: usize) -> HashMap<String, u32> {
    let mut padded: Vec<char> = std::iter::once('-')
        .chain(text.chars())
        .chain(std::iter::once('-'))
        .collect();
    while padded.len() < size {
        padded.push('-');
    }
    let mut counts = HashMap::new();
    for window in padded.windows(size) {
        *counts.entry(window.iter().collect()).or_insert(0) += 1;
    }
    counts
}

fn norm(grams: &HashMap<String, u32>) -> f64 {
    grams
        .values()
        .map(|count| f64::from(count * count))
        .sum::<f64>()
        .sqrt()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let tables = ["bottles", "customers", "deliveries"];
        assert_eq!(
            best_match("bottle", tables, STRICT).map(|m| m.0),
            Some("bottles")
        );
        assert_eq!(
            best_match("custmers", tables, STRICT).map(|m| m.0),
            Some("customers")
        );
        assert_eq!(best_match("zzz", tables, STRICT), None);
        assert_eq!(
            best_match("BOTTLES", tables, STRICT),
            Some(("bottles", 1.0))
        );
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
