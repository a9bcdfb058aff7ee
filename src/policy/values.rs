//! Reading RDF literals as the XSD values they denote, so that constraints compare numbers as
//! numbers, instants as instants and durations as durations. Literals whose datatype says nothing
//! (plain strings) are read as the type of what they are compared with when their text allows it,
//! because policies in the wild often write `"rightOperand": "2027-01-01T00:00:00Z"` untyped.

use super::model::Value;
use super::vocab::XSD;
use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

/// An `xsd:duration`: months and seconds are kept apart, because a month has no fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct XsdDuration {
    /// Whole months (years × 12 + months).
    pub months: i64,
    /// Seconds (weeks, days, hours, minutes, seconds).
    pub seconds: f64,
}

impl XsdDuration {
    /// Reads `PnYnMnWnDTnHnMnS` (with an optional leading `-`).
    pub fn parse(text: &str) -> Option<Self> {
        static DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| {
            Regex::new(
                r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$",
            )
            .ok()
        });
        let text = text.trim();
        if text.ends_with('P') || text.ends_with('T') {
            return None;
        }
        let captures = DURATION.as_ref()?.captures(text)?;
        let number = |i: usize| -> Option<f64> {
            captures
                .get(i)
                .map_or(Some(0.0), |m| m.as_str().parse::<f64>().ok())
        };
        let integer = |i: usize| -> Option<i64> {
            captures
                .get(i)
                .map_or(Some(0), |m| m.as_str().parse::<i64>().ok())
        };
        let months = integer(2)?.checked_mul(12)?.checked_add(integer(3)?)?;
        let seconds = number(4)? * 7.0 * 86_400.0
            + number(5)? * 86_400.0
            + number(6)? * 3_600.0
            + number(7)? * 60.0
            + number(8)?;
        let sign: i32 = if captures.get(1).is_some() { -1 } else { 1 };
        Some(Self {
            months: i64::from(sign) * months,
            seconds: f64::from(sign) * seconds,
        })
    }

    /// `instant` moved forward by the duration (months first, as XSD adds them).
    pub fn after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let moved = if self.months >= 0 {
            instant.checked_add_months(Months::new(u32::try_from(self.months).ok()?))?
        } else {
            instant.checked_sub_months(Months::new(u32::try_from(-self.months).ok()?))?
        };
        let millis = (self.seconds * 1000.0).round();
        if !millis.is_finite() || millis.abs() > 1e15 {
            return None;
        }
        // In range: |millis| ≤ 1e15 fits an i64.
        moved.checked_add_signed(chrono::Duration::milliseconds(millis as i64))
    }

    /// An approximate length in seconds (a month as 1/12 of 365.2425 days), to order durations
    /// that mix months and days.
    fn approximate_seconds(&self) -> f64 {
        self.months as f64 * 2_629_746.0 + self.seconds
    }

    /// The duration between two instants.
    pub fn between(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            months: 0,
            seconds: (end - start).num_milliseconds() as f64 / 1000.0,
        }
    }
}

impl fmt::Display for XsdDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.months < 0 || self.seconds < 0.0;
        let months = self.months.unsigned_abs();
        let seconds = self.seconds.abs();
        if negative {
            f.write_str("-")?;
        }
        f.write_str("P")?;
        if months >= 12 {
            write!(f, "{}Y", months / 12)?;
        }
        if !months.is_multiple_of(12) {
            write!(f, "{}M", months % 12)?;
        }
        let days = (seconds / 86_400.0).floor();
        let rest = seconds - days * 86_400.0;
        if days > 0.0 {
            write!(f, "{days}D")?;
        }
        if rest > 0.0 {
            write!(f, "T{rest}S")?;
        } else if months == 0 && days == 0.0 {
            f.write_str("T0S")?;
        }
        Ok(())
    }
}

/// A value read as what it denotes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed {
    /// A number: exact when it is an integer.
    Number { exact: Option<i128>, approx: f64 },
    /// An instant (`xsd:dateTime`; without a time zone it is read as UTC).
    Instant(DateTime<Utc>),
    /// A calendar day (`xsd:date`), compared as the interval it covers.
    Day(NaiveDate),
    /// A duration.
    Duration(XsdDuration),
    /// A boolean.
    Boolean(bool),
    /// Text with no more specific reading.
    Text(String),
    /// An IRI.
    Iri(String),
}

/// Reads a value by its datatype.
pub(crate) fn typed(value: &Value) -> Typed {
    let literal = match value {
        Value::Iri(node) => return Typed::Iri(node.as_str().to_owned()),
        Value::Literal(literal) => literal,
    };
    let text = literal.value();
    let datatype = literal.datatype();
    let Some(name) = datatype.as_str().strip_prefix(XSD) else {
        return Typed::Text(text.to_owned());
    };
    let read = match name {
        "integer" | "int" | "long" | "short" | "byte" | "nonNegativeInteger"
        | "positiveInteger" | "nonPositiveInteger" | "negativeInteger" | "unsignedLong"
        | "unsignedInt" | "unsignedShort" | "unsignedByte" | "decimal" | "double" | "float" => {
            number(text)
        }
        "dateTime" | "dateTimeStamp" => instant(text).map(Typed::Instant),
        "date" => day(text).map(Typed::Day),
        "duration" | "dayTimeDuration" | "yearMonthDuration" => {
            XsdDuration::parse(text).map(Typed::Duration)
        }
        "boolean" => match text.trim() {
            "true" | "1" => Some(Typed::Boolean(true)),
            "false" | "0" => Some(Typed::Boolean(false)),
            _ => None,
        },
        _ => None,
    };
    read.unwrap_or_else(|| Typed::Text(text.to_owned()))
}

fn number(text: &str) -> Option<Typed> {
    let text = text.trim();
    let approx = match text {
        "INF" | "+INF" => f64::INFINITY,
        "-INF" => f64::NEG_INFINITY,
        _ => text.parse::<f64>().ok()?,
    };
    if approx.is_nan() {
        return None;
    }
    Some(Typed::Number {
        exact: text.parse::<i128>().ok(),
        approx,
    })
}

/// Reads an `xsd:dateTime`; one without a time zone is taken as UTC.
pub(crate) fn instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| Utc.from_utc_datetime(&naive))
}

/// Reads an `xsd:date` (a time zone suffix is ignored: days are UTC days).
pub(crate) fn day(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let date_part = text.get(..10).unwrap_or(text);
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
    let suffix = text.get(date_part.len()..).unwrap_or("");
    let valid_suffix = suffix.is_empty()
        || suffix == "Z"
        || (suffix.len() == 6 && (suffix.starts_with('+') || suffix.starts_with('-')));
    valid_suffix.then_some(date)
}

/// The first instant of a day (UTC).
pub(crate) fn start_of(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The first instant after a day (UTC).
pub(crate) fn end_of(day: NaiveDate) -> DateTime<Utc> {
    start_of(day.succ_opt().unwrap_or(day))
}

/// Reads text as the same kind of value as `like`, when its text allows it.
fn coerce(text: &str, like: &Typed) -> Option<Typed> {
    match like {
        Typed::Number { .. } => number(text),
        Typed::Instant(_) => instant(text)
            .map(Typed::Instant)
            .or_else(|| day(text).map(Typed::Day)),
        Typed::Day(_) => day(text)
            .map(Typed::Day)
            .or_else(|| instant(text).map(Typed::Instant)),
        Typed::Duration(_) => XsdDuration::parse(text).map(Typed::Duration),
        Typed::Boolean(_) => match text.trim() {
            "true" => Some(Typed::Boolean(true)),
            "false" => Some(Typed::Boolean(false)),
            _ => None,
        },
        Typed::Iri(_) => Some(Typed::Iri(text.to_owned())),
        Typed::Text(_) => None,
    }
}

/// Brings two values to comparable readings (coercing untyped text to the other side's type).
pub(crate) fn align(left: &Value, right: &Value) -> (Typed, Typed) {
    let (a, b) = (typed(left), typed(right));
    match (&a, &b) {
        (Typed::Text(text), other) if !matches!(other, Typed::Text(_)) => {
            (coerce(text, other).unwrap_or(a.clone()), b)
        }
        (other, Typed::Text(text)) if !matches!(other, Typed::Text(_)) => {
            let coerced = coerce(text, other).unwrap_or(b.clone());
            (a, coerced)
        }
        _ => (a, b),
    }
}

/// How `a` compares with `b`, if they are comparable. An instant is compared with a day as with
/// the day's first instant (callers that need the day as an interval use [`compare_op`]).
pub(crate) fn ordering(a: &Typed, b: &Typed) -> Option<Ordering> {
    match (a, b) {
        (
            Typed::Number {
                exact: Some(x),
                approx: _,
            },
            Typed::Number {
                exact: Some(y),
                approx: _,
            },
        ) => Some(x.cmp(y)),
        (Typed::Number { approx: x, .. }, Typed::Number { approx: y, .. }) => x.partial_cmp(y),
        (Typed::Instant(x), Typed::Instant(y)) => Some(x.cmp(y)),
        (Typed::Day(x), Typed::Day(y)) => Some(x.cmp(y)),
        (Typed::Instant(x), Typed::Day(y)) => Some(x.cmp(&start_of(*y))),
        (Typed::Day(x), Typed::Instant(y)) => Some(start_of(*x).cmp(y)),
        (Typed::Duration(x), Typed::Duration(y)) => x
            .approximate_seconds()
            .partial_cmp(&y.approximate_seconds()),
        (Typed::Boolean(x), Typed::Boolean(y)) => Some(x.cmp(y)),
        (Typed::Text(x), Typed::Text(y)) | (Typed::Iri(x), Typed::Iri(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A comparison operator applied to two readings; an instant compared with a day treats the day
/// as the interval it covers (`lteq 2027-06-30` holds until the end of that day).
pub(crate) fn compare_op(op: CompareOp, a: &Typed, b: &Typed) -> Option<bool> {
    if let (Typed::Instant(x), Typed::Day(d)) = (a, b) {
        let (start, end) = (start_of(*d), end_of(*d));
        return Some(match op {
            CompareOp::Eq => *x >= start && *x < end,
            CompareOp::Lt => *x < start,
            CompareOp::Lteq => *x < end,
            CompareOp::Gt => *x >= end,
            CompareOp::Gteq => *x >= start,
        });
    }
    let order = ordering(a, b)?;
    Some(match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Lteq => order != Ordering::Greater,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Gteq => order != Ordering::Less,
    })
}

/// The comparisons [`compare_op`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Lt,
    Lteq,
    Gt,
    Gteq,
}

/// A short form of an instant for people (`2027-06-30T23:59:59Z`).
pub(crate) fn show_instant(instant: DateTime<Utc>) -> String {
    if instant.timestamp_subsec_millis() == 0 {
        instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{Literal, NamedNode};

    fn lit(value: &str, datatype: &str) -> Value {
        Value::Literal(Literal::new_typed_literal(
            value,
            NamedNode::new_unchecked(format!("{XSD}{datatype}")),
        ))
    }

    #[test]
    fn durations_read_and_move_instants() {
        let d = XsdDuration::parse("P90D").expect("valid");
        assert_eq!(d.months, 0);
        assert_eq!(d.seconds, 90.0 * 86_400.0);
        let y = XsdDuration::parse("P1Y2M3DT4H5M6.5S").expect("valid");
        assert_eq!(y.months, 14);
        assert!(XsdDuration::parse("P").is_none());
        assert!(XsdDuration::parse("PT").is_none());
        assert!(XsdDuration::parse("90 days").is_none());
        let start = instant("2026-01-31T00:00:00Z").expect("valid");
        let month = XsdDuration::parse("P1M").expect("valid");
        assert_eq!(
            month.after(start),
            instant("2026-02-28T00:00:00Z"),
            "months are calendar months"
        );
        assert_eq!(
            XsdDuration::parse("P90D").map(|d| d.to_string()),
            Some("P90D".into())
        );
    }

    #[test]
    fn instants_days_and_numbers_compare_by_value() {
        let (a, b) = align(
            &lit("2017-12-19T15:00:00", "dateTime"),
            &lit("2018-01-01", "date"),
        );
        assert_eq!(compare_op(CompareOp::Lt, &a, &b), Some(true));
        let (a, b) = align(
            &lit("2027-06-30T23:00:00Z", "dateTime"),
            &lit("2027-06-30", "date"),
        );
        assert_eq!(compare_op(CompareOp::Lteq, &a, &b), Some(true));
        assert_eq!(compare_op(CompareOp::Lt, &a, &b), Some(false));
        let (a, b) = align(&lit("10", "integer"), &lit("9.5", "decimal"));
        assert_eq!(compare_op(CompareOp::Gt, &a, &b), Some(true));
        let (a, b) = align(&lit("11", "integer"), &Value::string("11"));
        assert_eq!(compare_op(CompareOp::Eq, &a, &b), Some(true));
        let (a, b) = align(&lit("true", "boolean"), &Value::string("a"));
        assert_eq!(compare_op(CompareOp::Eq, &a, &b), None);
        assert_eq!(
            day("2024-01-0\u{e9}-01"),
            None,
            "multibyte text is refused, not sliced"
        );
        assert_eq!(day("2024-01-02+01:00"), NaiveDate::from_ymd_opt(2024, 1, 2));
    }
}
