//! Content negotiation on `Accept` (RFC 9110 §12.5.1): quality values, wildcards, and the
//! server's order of preference to break ties.

/// Picks the offer the client prefers. `offers` pairs a value with its media type, in the
/// server's order of preference. `None` when nothing acceptable is offered.
pub fn choose<T: Copy>(accept: Option<&str>, offers: &[(T, &str)]) -> Option<T> {
    let accept = match accept.map(str::trim) {
        None | Some("") => return offers.first().map(|(value, _)| *value),
        Some(accept) => accept,
    };
    let ranges: Vec<(String, f32)> = accept
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let range = pieces.next()?.trim().to_ascii_lowercase();
            let quality = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!range.is_empty()).then_some((range, quality))
        })
        .take(32)
        .collect();
    let mut best: Option<(T, f32, usize)> = None;
    for (position, (value, media_type)) in offers.iter().enumerate() {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        let (kind, _) = essence.split_once('/').unwrap_or((essence, ""));
        // The most specific matching range decides the quality of this offer.
        let quality = ranges
            .iter()
            .filter_map(|(range, q)| {
                let specificity = if range == essence {
                    3
                } else if range.strip_suffix("/*") == Some(kind) {
                    2
                } else if range == "*/*" {
                    1
                } else {
                    return None;
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, q)| q)
            .unwrap_or(0.0);
        if quality > 0.0 && best.is_none_or(|(_, q, _)| quality > q) {
            best = Some((*value, quality, position));
        }
    }
    best.map(|(value, _, _)| value)
}

#[cfg(test)]
mod tests {
    use super::choose;

    const OFFERS: [(u8, &str); 3] = [
        (1, "application/ld+json"),
        (2, "text/turtle"),
        (3, "text/html"),
    ];

    #[test]
    fn quality_and_wildcards() {
        assert_eq!(choose(None, &OFFERS), Some(1));
        assert_eq!(choose(Some("text/turtle"), &OFFERS), Some(2));
        assert_eq!(
            choose(Some("text/*;q=0.5, application/ld+json;q=0.4"), &OFFERS),
            Some(2)
        );
        assert_eq!(choose(Some("*/*"), &OFFERS), Some(1));
        assert_eq!(
            choose(Some("text/html,application/xhtml+xml,*/*;q=0.8"), &OFFERS),
            Some(3)
        );
        assert_eq!(choose(Some("image/png"), &OFFERS), None);
        assert_eq!(choose(Some("text/turtle;q=0, */*;q=0.1"), &OFFERS), Some(1));
    }
}
