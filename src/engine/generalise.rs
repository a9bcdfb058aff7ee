//! Time generalisation without a calendar library per value. DataFusion's `date_trunc` goes
//! through chrono for every year or month it truncates (and for every date, which it first
//! widens to a timestamp); a policy that reduces birth dates to the year then costs more than
//! reading the column. Dates and zone-less timestamps are plain day or unit counts since
//! 1970-01-01, so truncating them is integer arithmetic: a floor division for hours and days,
//! and the proleptic Gregorian conversion between day numbers and (year, month, day) for years
//! and months. Timestamps with a time zone keep `date_trunc`, which knows the zone's rules.

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Date64Array, PrimitiveArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, TimeUnit};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The calendar unit a value is truncated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unit {
    /// January 1st, 00:00.
    Year,
    /// The 1st of the month, 00:00.
    Month,
    /// 00:00 of the day.
    Day,
    /// The start of the hour.
    Hour,
}

/// Whether [`TruncateTime`] computes this type itself: dates and timestamps without a zone.
pub(crate) fn handles(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, None)
    )
}

/// The scalar function that truncates a date or zone-less timestamp to the start of its
/// [`Unit`], keeping the column's type; nulls stay null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TruncateTime {
    unit: Unit,
    signature: Signature,
}

impl TruncateTime {
    /// The function for `unit`.
    pub(crate) fn new(unit: Unit) -> Self {
        Self {
            unit,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TruncateTime {
    fn name(&self) -> &str {
        match self.unit {
            Unit::Year => "agora_truncate_year",
            Unit::Month => "agora_truncate_month",
            Unit::Day => "agora_truncate_day",
            Unit::Hour => "agora_truncate_hour",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::common::Result<DataType> {
        match args {
            [data_type] if handles(data_type) => Ok(data_type.clone()),
            _ => Err(DataFusionError::Internal(format!(
                "{} takes one date or zone-less timestamp, not {args:?}",
                self.name()
            ))),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes one argument",
                self.name()
            )));
        };
        let array = value.to_array(1)?;
        let truncated = truncate_array(&array, self.unit)?;
        Ok(match value {
            ColumnarValue::Array(_) => ColumnarValue::Array(truncated),
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&truncated, 0)?)
            }
        })
    }
}

/// Units of `unit` in one day.
fn per_day(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    }
}

fn truncate_array(array: &ArrayRef, unit: Unit) -> datafusion::common::Result<ArrayRef> {
    let out: ArrayRef = match array.data_type() {
        DataType::Date32 => {
            let dates = downcast::<Date32Array>(array)?;
            Arc::new(
                dates.try_unary::<_, datafusion::arrow::datatypes::Date32Type, DataFusionError>(
                    |days| {
                        let truncated = truncate_days(i64::from(days), unit);
                        i32::try_from(truncated).map_err(|_| out_of_range())
                    },
                )?,
            )
        }
        DataType::Date64 => Arc::new(truncate_counts(
            downcast::<Date64Array>(array)?,
            per_day(TimeUnit::Millisecond),
            unit,
        )?),
        DataType::Timestamp(time_unit, None) => {
            let per_day = per_day(*time_unit);
            match time_unit {
                TimeUnit::Second => Arc::new(truncate_counts(
                    downcast::<TimestampSecondArray>(array)?,
                    per_day,
                    unit,
                )?),
                TimeUnit::Millisecond => Arc::new(truncate_counts(
                    downcast::<TimestampMillisecondArray>(array)?,
                    per_day,
                    unit,
                )?),
                TimeUnit::Microsecond => Arc::new(truncate_counts(
                    downcast::<TimestampMicrosecondArray>(array)?,
                    per_day,
                    unit,
                )?),
                TimeUnit::Nanosecond => Arc::new(truncate_counts(
                    downcast::<TimestampNanosecondArray>(array)?,
                    per_day,
                    unit,
                )?),
            }
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "time truncation does not handle {other}"
            )));
        }
    };
    Ok(out)
}

fn downcast<T: 'static>(array: &ArrayRef) -> datafusion::common::Result<&T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| DataFusionError::Internal("unexpected array type".into()))
}

fn out_of_range() -> DataFusionError {
    DataFusionError::Execution(
        "a date or time is too far from 1970 to be generalised in its column's type".into(),
    )
}

/// Truncates counts of a time unit since the epoch (`per_day` of them in a day).
fn truncate_counts<T>(
    values: &PrimitiveArray<T>,
    per_day: i64,
    unit: Unit,
) -> datafusion::common::Result<PrimitiveArray<T>>
where
    T: ArrowPrimitiveType<Native = i64>,
{
    let per_hour = per_day / 24;
    let array = values.try_unary::<_, T, DataFusionError>(|count| {
        let start = match unit {
            Unit::Hour => count.div_euclid(per_hour).checked_mul(per_hour),
            Unit::Day => count.div_euclid(per_day).checked_mul(per_day),
            Unit::Year | Unit::Month => {
                truncate_days(count.div_euclid(per_day), unit).checked_mul(per_day)
            }
        };
        start.ok_or_else(out_of_range)
    })?;
    Ok(array.with_data_type(values.data_type().clone()))
}

/// The first day (days since 1970-01-01) of the year, month or day that `days` falls in.
fn truncate_days(days: i64, unit: Unit) -> i64 {
    match unit {
        Unit::Day | Unit::Hour => days,
        Unit::Month => {
            let (year, month, _) = civil_from_days(days);
            days_from_civil(year, month, 1)
        }
        Unit::Year => {
            let (year, _, _) = civil_from_days(days);
            days_from_civil(year, 1, 1)
        }
    }
}

/// (year, month 1–12, day 1–31) of a day number, proleptic Gregorian (Howard Hinnant's
/// public-domain `civil_from_days`, in eras of 400 years so that it needs no table).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number of a (year, month, day), the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    #[test]
    fn day_numbers_round_trip_through_the_calendar() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-800_000..800_000).step_by(37) {
            let date = epoch + chrono::Duration::days(days);
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                (y, m, d),
                (i64::from(date.year()), date.month(), date.day())
            );
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn truncation_agrees_with_the_calendar_before_and_after_1970() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let dates = Arc::new(Date32Array::from(vec![
            Some(-25_000),
            Some(-1),
            None,
            Some(0),
            Some(11_016),
            Some(20_000),
        ])) as ArrayRef;
        let years = truncate_array(&dates, Unit::Year).unwrap();
        let years = years.as_any().downcast_ref::<Date32Array>().unwrap();
        let months = truncate_array(&dates, Unit::Month).unwrap();
        let months = months.as_any().downcast_ref::<Date32Array>().unwrap();
        let source = dates.as_any().downcast_ref::<Date32Array>().unwrap();
        for row in 0..source.len() {
            if source.is_null(row) {
                assert!(years.is_null(row) && months.is_null(row));
                continue;
            }
            let date = epoch + chrono::Duration::days(i64::from(source.value(row)));
            let year = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap();
            let month = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap();
            assert_eq!(i64::from(years.value(row)), (year - epoch).num_days());
            assert_eq!(i64::from(months.value(row)), (month - epoch).num_days());
        }

        // 1969-12-31T23:30:00 and 2024-03-05T17:42:10.5, in milliseconds.
        let times = Arc::new(TimestampMillisecondArray::from(vec![
            -1_800_000,
            1_709_660_530_500,
        ])) as ArrayRef;
        let hours = truncate_array(&times, Unit::Hour).unwrap();
        let hours = hours
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(hours.values().to_vec(), vec![-3_600_000, 1_709_658_000_000]);
        let years = truncate_array(&times, Unit::Year).unwrap();
        let years = years
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        assert_eq!(
            years.values().to_vec(),
            vec![-31_536_000_000, 1_704_067_200_000]
        );
    }

    #[test]
    fn values_too_far_from_1970_are_an_error_not_a_wrapped_number() {
        let times = Arc::new(TimestampNanosecondArray::from(vec![i64::MIN + 1])) as ArrayRef;
        assert!(truncate_array(&times, Unit::Day).is_err());
    }
}
