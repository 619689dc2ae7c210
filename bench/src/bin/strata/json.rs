//! Hand-written JSON for `--json`: the rows are flat records of strings and numbers, so a
//! serializer crate would add weight without adding safety.

use std::fmt::Write;

use crate::{ReplayRow, Row};

/// The bench rows as a JSON array, one object per line.
pub fn rows(rows: &[Row]) -> String {
    array(rows.iter().map(|row| {
        format!(
            "{{\"scenario\": {}, \"threads\": {}, \"seed_ns\": {}, \"strata_ns\": {}, \"ratio\": {}, \"mops\": {}}}",
            string(&row.scenario),
            row.threads,
            number(row.seed_ns, 1),
            number(row.strata_ns, 2),
            number(row.ratio(), 3),
            number(row.mops, 3),
        )
    }))
}

/// The replay rows as a JSON array, one object per line.
pub fn replay_rows(rows: &[ReplayRow]) -> String {
    array(rows.iter().map(|row| {
        format!(
            "{{\"trace\": {}, \"size\": {}, \"unique_keys\": {}, \"requests\": {}, \"hits\": {}, \"hit_ratio\": {}}}",
            string(&row.trace),
            row.size,
            row.unique,
            row.requests,
            row.hits,
            number(row.hit_ratio(), 4),
        )
    }))
}

fn array(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return "[]\n".to_owned();
    }
    format!("[\n  {}\n]\n", items.join(",\n  "))
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number with `decimals` places; `null` for NaN and infinities (not JSON numbers).
fn number(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "null".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a \"b\" \\ c\n\u{1}"), r#""a \"b\" \\ c\n\u0001""#);
        assert_eq!(string("80/10/10 ÷"), "\"80/10/10 ÷\"");
    }

    #[test]
    fn numbers() {
        assert_eq!(number(169.0, 1), "169.0");
        assert_eq!(number(1.23456, 2), "1.23");
        assert_eq!(number(f64::NAN, 2), "null");
        assert_eq!(number(f64::INFINITY, 2), "null");
    }

    #[test]
    fn row_objects() {
        let out = rows(&[Row {
            scenario: "L1 hit (2 layers)".into(),
            threads: 1,
            seed_ns: 169.0,
            strata_ns: 16.9,
            mops: 59.17,
        }]);
        assert_eq!(
            out,
            "[\n  {\"scenario\": \"L1 hit (2 layers)\", \"threads\": 1, \"seed_ns\": 169.0, \"strata_ns\": 16.90, \"ratio\": 10.000, \"mops\": 59.170}\n]\n"
        );
        assert_eq!(rows(&[]), "[]\n");
    }
}
