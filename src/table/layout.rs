//! The key grammar of AWS's flow-log delivery to S3 (pure, no I/O).
//!
//! Four shapes sit below an `AWSLogs/` folder:
//!
//! ```text
//! {acct}/vpcflowlogs/{region}/{yyyy}/{MM}/{dd}/[{HH}/]{file}
//! aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/year={yyyy}/month={MM}/day={dd}/[hour={HH}/]{file}
//! ```
//!
//! and every file is named
//! `{acct}_vpcflowlogs_{region}_{flow-log-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`
//! (gzip text), or `….log.parquet` when the flow log delivers Parquet.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

pub(crate) use crate::scan::ObjectFormat;

/// The folder name AWS delivers under; the user's LOCATION is the folder above it.
pub(crate) const AWS_LOGS: &str = "AWSLogs";

/// Which of AWS's two folder grammars a key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grammar {
    /// `{acct}/vpcflowlogs/{region}/{yyyy}/{MM}/{dd}/[{HH}/]` (the default).
    Positional,
    /// `aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/year=/month=/day=/[hour=/]`.
    Hive,
}

/// What a flow-log key says about its file, before a byte is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFacts {
    /// The folder grammar.
    pub grammar: Grammar,
    /// The account folder (the flow log's owner).
    pub account: String,
    /// The region folder.
    pub region: String,
    /// The day folder (UTC).
    pub date: NaiveDate,
    /// The hour folder, for hourly layouts.
    pub hour: Option<u32>,
    /// The flow-log id from the file name (`fl-…`).
    pub flow_log_id: String,
    /// The 5-minute bucket from the file name (UTC).
    pub file_time: NaiveDateTime,
    /// Text or Parquet, from the file name.
    pub format: ObjectFormat,
}

/// Parses the part of a key below `AWSLogs/`. Returns `None` for keys that are
/// not flow-log files (other services, stray objects).
pub(crate) fn parse_key(below_awslogs: &str) -> Option<KeyFacts> {
    let segments: Vec<&str> = below_awslogs.split('/').collect();
    let (file, folders) = segments.split_last()?;
    let (grammar, account, region, rest) = match folders {
        [acct, service, region, rest @ ..] if acct.starts_with("aws-account-id=") => {
            if *service != "aws-service=vpcflowlogs" {
                return None;
            }
            (
                Grammar::Hive,
                acct.strip_prefix("aws-account-id=")?,
                region.strip_prefix("aws-region=")?,
                rest,
            )
        }
        [acct, service, region, rest @ ..] => {
            if *service != "vpcflowlogs" {
                return None;
            }
            (Grammar::Positional, *acct, *region, rest)
        }
        _ => return None,
    };
    if !is_plain_segment(account) || !is_plain_segment(region) {
        return None;
    }
    let (year, month, day, hour) = match rest {
        [y, m, d] => (*y, *m, *d, None),
        [y, m, d, h] => (*y, *m, *d, Some(*h)),
        _ => return None,
    };
    let strip = |value: &str, key: &str| -> Option<u32> {
        let digits = match grammar {
            Grammar::Positional => value,
            Grammar::Hive => value.strip_prefix(key)?.strip_prefix('=')?,
        };
        parse_fixed_digits(digits)
    };
    let date = NaiveDate::from_ymd_opt(
        strip(year, "year")? as i32,
        strip(month, "month")?,
        strip(day, "day")?,
    )?;
    let hour = match hour {
        Some(h) => Some(strip(h, "hour").filter(|h| *h < 24)?),
        None => None,
    };
    let (flow_log_id, file_time, format) = parse_file_name(file)?;
    Some(KeyFacts {
        grammar,
        account: account.to_string(),
        region: region.to_string(),
        date,
        hour,
        flow_log_id,
        file_time,
        format,
    })
}

/// Parses `{acct}_vpcflowlogs_{region}_{flow-log-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`
/// (or `.log.parquet`) into the flow-log id, the file time and the format.
pub(crate) fn parse_file_name(name: &str) -> Option<(String, NaiveDateTime, ObjectFormat)> {
    let (format, stem) = ObjectFormat::of_name(name)?;
    let parts: Vec<&str> = stem.split('_').collect();
    let [account, service, region, flow_log_id, time, hash] = parts.as_slice() else {
        return None;
    };
    if *service != "vpcflowlogs"
        || account.is_empty()
        || region.is_empty()
        || flow_log_id.is_empty()
        || hash.is_empty()
    {
        return None;
    }
    let file_time = NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%MZ").ok()?;
    Some((flow_log_id.to_string(), file_time, format))
}

fn is_plain_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('=')
}

/// Parses a zero-padded decimal folder name (`2024`, `05`).
fn parse_fixed_digits(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One account folder below `AWSLogs/`, as a delimiter listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AccountFolder {
    /// The folder grammar its name reveals.
    pub grammar: Grammar,
    /// The account id.
    pub account: String,
}

impl AccountFolder {
    /// Reads a folder name directly below `AWSLogs/`.
    pub(crate) fn from_folder_name(name: &str) -> Option<Self> {
        if let Some(account) = name.strip_prefix("aws-account-id=") {
            is_plain_segment(account).then(|| Self {
                grammar: Grammar::Hive,
                account: account.to_string(),
            })
        } else {
            is_plain_segment(name).then(|| Self {
                grammar: Grammar::Positional,
                account: name.to_string(),
            })
        }
    }

    /// The folder holding this account's region folders, relative to `AWSLogs/`.
    pub(crate) fn regions_folder(&self) -> String {
        match self.grammar {
            Grammar::Positional => format!("{}/vpcflowlogs", self.account),
            Grammar::Hive => format!("aws-account-id={}/aws-service=vpcflowlogs", self.account),
        }
    }

    /// Reads a folder name inside [`Self::regions_folder`] as a region.
    pub(crate) fn region_from_folder_name(&self, name: &str) -> Option<String> {
        let region = match self.grammar {
            Grammar::Positional => name,
            Grammar::Hive => name.strip_prefix("aws-region=")?,
        };
        is_plain_segment(region).then(|| region.to_string())
    }

    /// The folder of one region, relative to `AWSLogs/`.
    pub(crate) fn region_folder(&self, region: &str) -> String {
        match self.grammar {
            Grammar::Positional => format!("{}/{region}", self.regions_folder()),
            Grammar::Hive => format!("{}/aws-region={region}", self.regions_folder()),
        }
    }

    /// The name of a date-part folder (`year`, `month`, `day`) holding `value`.
    pub(crate) fn date_part_folder(&self, part: DatePart, value: u32) -> String {
        let digits = match part {
            DatePart::Year => format!("{value:04}"),
            _ => format!("{value:02}"),
        };
        match self.grammar {
            Grammar::Positional => digits,
            Grammar::Hive => format!("{}={digits}", part.hive_key()),
        }
    }

    /// Reads a date-part folder name back into its number.
    pub(crate) fn date_part_from_folder_name(&self, part: DatePart, name: &str) -> Option<u32> {
        let digits = match self.grammar {
            Grammar::Positional => name,
            Grammar::Hive => name.strip_prefix(part.hive_key())?.strip_prefix('=')?,
        };
        parse_fixed_digits(digits)
    }

    /// The folder of one day, relative to `AWSLogs/`.
    pub(crate) fn day_folder(&self, region: &str, date: NaiveDate) -> String {
        format!(
            "{}/{}/{}/{}",
            self.region_folder(region),
            self.date_part_folder(DatePart::Year, date.year() as u32),
            self.date_part_folder(DatePart::Month, date.month()),
            self.date_part_folder(DatePart::Day, date.day()),
        )
    }
}

/// The date levels of the folder tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatePart {
    /// `yyyy` / `year=yyyy`
    Year,
    /// `MM` / `month=MM`
    Month,
    /// `dd` / `day=dd`
    Day,
}

impl DatePart {
    fn hive_key(self) -> &'static str {
        match self {
            DatePart::Year => "year",
            DatePart::Month => "month",
            DatePart::Day => "day",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "111122223333_vpcflowlogs_eu-west-1_fl-0abc_20240116T2355Z_deadbeef.log.gz";

    #[test]
    fn all_four_shapes() {
        let shapes = [
            (
                format!("111122223333/vpcflowlogs/eu-west-1/2024/01/16/{NAME}"),
                Grammar::Positional,
                None,
            ),
            (
                format!("111122223333/vpcflowlogs/eu-west-1/2024/01/16/23/{NAME}"),
                Grammar::Positional,
                Some(23),
            ),
            (
                format!(
                    "aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=eu-west-1/year=2024/month=01/day=16/{NAME}"
                ),
                Grammar::Hive,
                None,
            ),
            (
                format!(
                    "aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=eu-west-1/year=2024/month=01/day=16/hour=23/{NAME}"
                ),
                Grammar::Hive,
                Some(23),
            ),
        ];
        for (key, grammar, hour) in shapes {
            let facts = parse_key(&key).unwrap_or_else(|| panic!("{key}"));
            assert_eq!(facts.grammar, grammar);
            assert_eq!(facts.hour, hour);
            assert_eq!(facts.account, "111122223333");
            assert_eq!(facts.region, "eu-west-1");
            assert_eq!(facts.date, NaiveDate::from_ymd_opt(2024, 1, 16).unwrap());
            assert_eq!(facts.flow_log_id, "fl-0abc");
            assert_eq!(facts.file_time.to_string(), "2024-01-16 23:55:00");
        }
    }

    #[test]
    fn non_flow_log_keys_are_skipped() {
        for key in [
            format!(
                "111122223333/vpcflowlogs/eu-west-1/2024/01/16/{}",
                NAME.replace(".log.gz", ".parquet")
            ),
            "111122223333/vpcflowlogs/eu-west-1/2024/01/16/notes.txt".to_string(),
            format!("111122223333/vpcflowlogs/eu-west-1/2024/13/16/{NAME}"),
            format!("111122223333/vpcflowlogs/eu-west-1/2024/01/16/24/{NAME}"),
            format!("111122223333/vpcflowlogs/eu-west-1/2024/01/{NAME}"),
            format!("111122223333/CloudTrail/eu-west-1/2024/01/16/{NAME}"),
            format!(
                "aws-account-id=1/aws-service=vpcflowlogs/eu-west-1/year=2024/month=01/day=16/{NAME}"
            ),
            "111122223333_vpcflowlogs_eu-west-1_fl-0abc_20240116T2355Z.log.gz".to_string(),
        ] {
            assert!(parse_key(&key).is_none(), "{key}");
        }
    }

    #[test]
    fn folders_round_trip() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap();
        let positional = AccountFolder::from_folder_name("111122223333").unwrap();
        assert_eq!(
            positional.day_folder("us-east-1", date),
            "111122223333/vpcflowlogs/us-east-1/2024/03/05"
        );
        let hive = AccountFolder::from_folder_name("aws-account-id=111122223333").unwrap();
        assert_eq!(
            hive.day_folder("us-east-1", date),
            "aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=us-east-1/year=2024/month=03/day=05"
        );
        assert_eq!(
            hive.region_from_folder_name("aws-region=us-east-1")
                .as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            hive.date_part_from_folder_name(DatePart::Month, "month=03"),
            Some(3)
        );
        assert_eq!(
            positional.date_part_from_folder_name(DatePart::Year, "2024"),
            Some(2024)
        );
    }

    #[test]
    fn parse_key_example() {
        use crate::table::layout::{Grammar, parse_key};
        let facts = parse_key(
            "123456789012/vpcflowlogs/us-east-1/2018/06/20/\
             123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T1620Z_fe123456.log.gz",
        )
        .unwrap();
        assert_eq!(facts.grammar, Grammar::Positional);
        assert_eq!(facts.region, "us-east-1");
        assert_eq!(facts.flow_log_id, "fl-1234abcd");
        assert_eq!(facts.hour, None);
        assert!(
            parse_key("123456789012/elasticloadbalancing/us-east-1/2018/06/20/x.log.gz").is_none()
        );
    }

    #[test]
    fn parse_file_name_example() {
        let (id, time, format) = crate::table::layout::parse_file_name(
            "123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T1620Z_fe123456.log.gz",
        )
        .unwrap();
        assert_eq!(id, "fl-1234abcd");
        assert_eq!(time.to_string(), "2018-06-20 16:20:00");
        assert_eq!(format, ObjectFormat::Text);
        let (_, _, format) = crate::table::layout::parse_file_name(
            "123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T1620Z_fe123456.log.parquet",
        )
        .unwrap();
        assert_eq!(format, ObjectFormat::Parquet);
    }
}
