//! The MySQL-style format strings of Trino's `date_format` and `date_parse`
//! (`%Y-%m-%d %H:%i:%s`), which differ from chrono's (`%M` is the month
//! name, `%i` the minutes, `%s` the seconds).
//!
//! Specifiers Trino does not support (`%D %U %u %V %w %X`) are errors here
//! too, so a query never quietly prints something else than on Athena.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::common::{DataFusionError, Result};

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One piece of a parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(char),
    Spec(char),
}

/// A checked format string, parsed once per query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MySqlFormat {
    pieces: Vec<Piece>,
}

impl MySqlFormat {
    /// Parses `format`, rejecting specifiers Trino does not support.
    pub(crate) fn parse(format: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                pieces.push(Piece::Literal(c));
                continue;
            }
            match chars.next() {
                None => pieces.push(Piece::Literal('%')),
                Some(spec @ ('D' | 'U' | 'u' | 'V' | 'w' | 'X')) => {
                    return Err(DataFusionError::Plan(format!(
                        "%{spec} is not supported in date_format/date_parse (as in Trino){}",
                        if spec == 'w' {
                            "; day_of_week(x) gives 1 (Monday) to 7 (Sunday)"
                        } else {
                            ""
                        }
                    )));
                }
                Some(
                    spec @ ('a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'H' | 'h' | 'I' | 'i' | 'j' | 'k'
                    | 'l' | 'M' | 'm' | 'p' | 'r' | 'S' | 's' | 'T' | 'v' | 'W' | 'x' | 'Y'
                    | 'y'),
                ) => pieces.push(Piece::Spec(spec)),
                // `%%` is a percent sign and `%x` any other character is `x`.
                Some(other) => pieces.push(Piece::Literal(other)),
            }
        }
        Ok(Self { pieces })
    }

    /// Formats a local date and time; `nanos` below the millisecond are
    /// dropped, as Trino keeps milliseconds.
    pub(crate) fn format(&self, t: &NaiveDateTime) -> String {
        let mut out = String::with_capacity(self.pieces.len() * 2);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(c) => out.push(*c),
                Piece::Spec(spec) => write_spec(&mut out, *spec, t),
            }
        }
        out
    }

    /// Parses `text` as a whole; fields the format lacks default to
    /// 1970-01-01 00:00:00.
    pub(crate) fn parse_datetime(&self, text: &str) -> std::result::Result<NaiveDateTime, String> {
        let mut fields = Fields::default();
        let mut rest = text;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(c) => {
                    rest = rest
                        .strip_prefix(*c)
                        .ok_or_else(|| format!("expected '{c}' at \"{rest}\""))?;
                }
                Piece::Spec(spec) => rest = fields.read(*spec, rest)?,
            }
        }
        if !rest.is_empty() {
            return Err(format!("unexpected text \"{rest}\" at the end"));
        }
        fields.build()
    }
}

fn write_spec(out: &mut String, spec: char, t: &NaiveDateTime) {
    use std::fmt::Write;
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let am_pm = if t.hour() < 12 { "AM" } else { "PM" };
    let weekday = WEEKDAYS[t.weekday().num_days_from_monday() as usize];
    let month = MONTHS[t.month0() as usize];
    let _ = match spec {
        'a' => write!(out, "{}", &weekday[..3]),
        'b' => write!(out, "{}", &month[..3]),
        'c' => write!(out, "{}", t.month()),
        'd' => write!(out, "{:02}", t.day()),
        'e' => write!(out, "{}", t.day()),
        'f' => write!(
            out,
            "{:06}",
            t.nanosecond() % 1_000_000_000 / 1_000_000 * 1000
        ),
        'H' => write!(out, "{:02}", t.hour()),
        'h' | 'I' => write!(out, "{hour12:02}"),
        'i' => write!(out, "{:02}", t.minute()),
        'j' => write!(out, "{:03}", t.ordinal()),
        'k' => write!(out, "{}", t.hour()),
        'l' => write!(out, "{hour12}"),
        'M' => write!(out, "{month}"),
        'm' => write!(out, "{:02}", t.month()),
        'p' => write!(out, "{am_pm}"),
        'r' => write!(
            out,
            "{hour12:02}:{:02}:{:02} {am_pm}",
            t.minute(),
            t.second()
        ),
        'S' | 's' => write!(out, "{:02}", t.second()),
        'T' => write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
        'v' => write!(out, "{:02}", t.iso_week().week()),
        'W' => write!(out, "{weekday}"),
        'x' => write!(out, "{:04}", t.iso_week().year()),
        'Y' => write!(out, "{:04}", t.year()),
        'y' => write!(out, "{:02}", t.year().rem_euclid(100)),
        _ => unreachable!("MySqlFormat::parse admits only known specifiers"),
    };
}

/// Fields read so far by [`MySqlFormat::parse_datetime`].
#[derive(Default)]
struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: Option<u32>,
    second: Option<u32>,
    nanos: Option<u32>,
    iso_year: Option<i32>,
    iso_week: Option<u32>,
}

/// Reads 1 to `max` ASCII digits.
fn digits(text: &str, max: usize) -> std::result::Result<(u32, &str), String> {
    let len = text
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if len == 0 {
        return Err(format!("expected a number at \"{text}\""));
    }
    let value = text[..len].parse().map_err(|e| format!("{e}"))?;
    Ok((value, &text[len..]))
}

/// Reads one of `names` (or its first three letters), case-insensitively.
fn name<'t>(
    text: &'t str,
    names: &[&str],
    short: bool,
) -> std::result::Result<(u32, &'t str), String> {
    for (i, full) in names.iter().enumerate() {
        let candidate = if short { &full[..3] } else { full };
        if text.len() >= candidate.len()
            && text.is_char_boundary(candidate.len())
            && text[..candidate.len()].eq_ignore_ascii_case(candidate)
        {
            return Ok((i as u32, &text[candidate.len()..]));
        }
    }
    Err(format!("expected a name at \"{text}\""))
}

impl Fields {
    fn read<'t>(&mut self, spec: char, text: &'t str) -> std::result::Result<&'t str, String> {
        let rest = match spec {
            'Y' => {
                let (v, rest) = digits(text, 4)?;
                self.year = Some(v as i32);
                rest
            }
            'y' => {
                let (v, rest) = digits(text, 2)?;
                // Trino: two-digit years are 1970 … 2069.
                self.year = Some(if v >= 70 {
                    1900 + v as i32
                } else {
                    2000 + v as i32
                });
                rest
            }
            'x' => {
                let (v, rest) = digits(text, 4)?;
                self.iso_year = Some(v as i32);
                rest
            }
            'v' => {
                let (v, rest) = digits(text, 2)?;
                self.iso_week = Some(v);
                rest
            }
            'm' | 'c' => {
                let (v, rest) = digits(text, 2)?;
                self.month = Some(v);
                rest
            }
            'M' | 'b' => {
                let (v, rest) = name(text, &MONTHS, spec == 'b')?;
                self.month = Some(v + 1);
                rest
            }
            'W' | 'a' => name(text, &WEEKDAYS, spec == 'a')?.1,
            'd' | 'e' => {
                let (v, rest) = digits(text, 2)?;
                self.day = Some(v);
                rest
            }
            'j' => {
                let (v, rest) = digits(text, 3)?;
                self.day_of_year = Some(v);
                rest
            }
            'H' | 'k' => {
                let (v, rest) = digits(text, 2)?;
                self.hour = Some(v);
                rest
            }
            'h' | 'I' | 'l' => {
                let (v, rest) = digits(text, 2)?;
                self.hour12 = Some(v);
                rest
            }
            'p' => {
                let (v, rest) = name(text, &["AM", "PM"], false)?;
                self.pm = Some(v == 1);
                rest
            }
            'i' => {
                let (v, rest) = digits(text, 2)?;
                self.minute = Some(v);
                rest
            }
            'S' | 's' => {
                let (v, rest) = digits(text, 2)?;
                self.second = Some(v);
                rest
            }
            'f' => {
                let len = text.bytes().take(9).take_while(u8::is_ascii_digit).count();
                if len == 0 {
                    return Err(format!("expected a fraction at \"{text}\""));
                }
                let (v, rest) = digits(text, len)?;
                self.nanos = Some(v * 10u32.pow(9 - len as u32));
                rest
            }
            'T' => {
                let rest = self.read('H', text)?;
                let rest = rest.strip_prefix(':').ok_or("expected ':'")?;
                let rest = self.read('i', rest)?;
                let rest = rest.strip_prefix(':').ok_or("expected ':'")?;
                self.read('s', rest)?
            }
            'r' => {
                let rest = self.read('h', text)?;
                let rest = rest.strip_prefix(':').ok_or("expected ':'")?;
                let rest = self.read('i', rest)?;
                let rest = rest.strip_prefix(':').ok_or("expected ':'")?;
                let rest = self.read('s', rest)?;
                let rest = rest.strip_prefix(' ').ok_or("expected ' '")?;
                self.read('p', rest)?
            }
            _ => unreachable!("MySqlFormat::parse admits only known specifiers"),
        };
        Ok(rest)
    }

    fn build(self) -> std::result::Result<NaiveDateTime, String> {
        let date = if let (Some(year), Some(week)) = (self.iso_year, self.iso_week) {
            NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)
        } else if let Some(day_of_year) = self.day_of_year {
            NaiveDate::from_yo_opt(self.year.unwrap_or(1970), day_of_year)
        } else {
            NaiveDate::from_ymd_opt(
                self.year.unwrap_or(1970),
                self.month.unwrap_or(1),
                self.day.unwrap_or(1),
            )
        }
        .ok_or("the date does not exist")?;
        let hour = match (self.hour, self.hour12, self.pm) {
            (Some(h), _, _) => h,
            (None, Some(h), pm) if (1..=12).contains(&h) => {
                h % 12 + if pm == Some(true) { 12 } else { 0 }
            }
            (None, Some(h), _) => return Err(format!("hour {h} is not between 1 and 12")),
            (None, None, _) => 0,
        };
        let time = NaiveTime::from_hms_nano_opt(
            hour,
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nanos.unwrap_or(0),
        )
        .ok_or("the time does not exist")?;
        Ok(date.and_time(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, i: u32, s: u32, ms: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_milli_opt(h, i, s, ms)
            .unwrap()
    }

    #[test]
    fn every_supported_specifier_formats() {
        let t = at(2001, 1, 9, 13, 4, 5, 321);
        let format = MySqlFormat::parse(
            "%a %b %c %d %e %f %H %h %I %i %j %k %l %M %m %p %r %S %s %T %v %W %x %Y %y %% %q",
        )
        .unwrap();
        assert_eq!(
            format.format(&t),
            "Tue Jan 1 09 9 321000 13 01 01 04 009 13 1 January 01 PM 01:04:05 PM 05 05 13:04:05 02 Tuesday 2001 2001 01 % q"
        );
    }

    #[test]
    fn parsing_reads_what_formatting_writes() {
        let t = at(2022, 10, 20, 17, 10, 0, 123);
        for spec in [
            "%Y-%m-%d %H:%i:%s.%f",
            "%d/%b/%Y:%T",
            "%W %e %M %y %r",
            "%Y %j %k",
        ] {
            let format = MySqlFormat::parse(spec).unwrap();
            let text = format.format(&t);
            let back = format.parse_datetime(&text).unwrap();
            assert_eq!(format.format(&back), text, "{spec}");
        }
        let parsed = MySqlFormat::parse("%Y/%m/%d/%H")
            .unwrap()
            .parse_datetime("2022/10/20/05");
        assert_eq!(parsed.unwrap(), at(2022, 10, 20, 5, 0, 0, 0));
    }

    #[test]
    fn bad_text_and_unsupported_specifiers_are_errors() {
        let format = MySqlFormat::parse("%Y-%m-%d").unwrap();
        assert!(format.parse_datetime("2022-02-30").is_err());
        assert!(format.parse_datetime("2022-02-03 extra").is_err());
        assert!(format.parse_datetime("22-02").is_err());
        assert!(MySqlFormat::parse("%w").is_err());
        assert!(MySqlFormat::parse("%U").is_err());
    }

    #[test]
    fn format_keeps_milliseconds() {
        use crate::sql::functions::mysql_format::MySqlFormat;
        use chrono::NaiveDate;
        let t = NaiveDate::from_ymd_opt(2022, 10, 20)
            .unwrap()
            .and_hms_opt(5, 10, 0)
            .unwrap();
        assert_eq!(
            MySqlFormat::parse("%m-%d-%Y %H").unwrap().format(&t),
            "10-20-2022 05"
        );
    }
}
