//! Ready analyses shipped in `queries/`: each file opens with comment lines
//! giving its title, the question it answers and its parameters:
//!
//! ```text
//! -- title: Traffic from a source address
//! -- question: Where did one source address send traffic?
//! -- param: src_addr = 10.0.0.1 : the source address
//! SELECT ... WHERE srcaddr = '${src_addr}' ...
//! ```
//!
//! A parameter is written `${name}` in the SQL and has a default; a value's
//! single quotes are doubled, so it cannot end a string literal early.

use datafusion::common::{DataFusionError, Result};

include!(concat!(env!("OUT_DIR"), "/saved_queries.rs"));

/// One parameter of a saved query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameter {
    /// The name used in `${name}`.
    pub(crate) name: String,
    /// The value used when none is given.
    pub(crate) default: String,
    /// What the value means.
    pub(crate) description: String,
}

/// One saved query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedQuery {
    /// The file stem (`top_talkers`).
    pub(crate) name: String,
    /// One-line title.
    pub(crate) title: String,
    /// The question the query answers.
    pub(crate) question: String,
    /// Its parameters.
    pub(crate) parameters: Vec<Parameter>,
    /// The SQL, comments included, with `${name}` placeholders.
    pub(crate) sql: String,
}

impl SavedQuery {
    /// Parses a saved query file.
    pub(crate) fn parse(name: &str, text: &str) -> Result<Self> {
        let mut query = SavedQuery {
            name: name.to_string(),
            title: String::new(),
            question: String::new(),
            parameters: Vec::new(),
            sql: text.to_string(),
        };
        for line in text.lines().take_while(|l| l.starts_with("--")) {
            let line = line.trim_start_matches('-').trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "title" => query.title = value.to_string(),
                "question" => query.question = value.to_string(),
                "param" => {
                    let (name, rest) = value.split_once('=').ok_or_else(|| {
                        DataFusionError::Configuration(format!(
                            "saved query {name}: `param: {value}` has no `= default`"
                        ))
                    })?;
                    let (default, description) = rest.split_once(" : ").unwrap_or((rest, ""));
                    query.parameters.push(Parameter {
                        name: name.trim().to_string(),
                        default: default.trim().to_string(),
                        description: description.trim().to_string(),
                    });
                }
                _ => {}
            }
        }
        if query.title.is_empty() {
            return Err(DataFusionError::Configuration(format!(
                "saved query {name} has no `-- title:` line"
            )));
        }
        Ok(query)
    }

    /// The SQL with every parameter replaced by its given value or default.
    pub(crate) fn render(&self, values: &[(String, String)]) -> Result<String> {
        for (name, _) in values {
            if !self.parameters.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(DataFusionError::Configuration(format!(
                    "saved query {} has no parameter `{name}` (it has: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let mut sql = self.sql.clone();
        for parameter in &self.parameters {
            let value = values
                .iter()
                .rev()
                .find(|(n, _)| n == &parameter.name)
                .map_or(parameter.default.as_str(), |(_, v)| v.as_str());
            sql = sql.replace(
                &format!("${{{}}}", parameter.name),
                &value.replace('\'', "''"),
            );
        }
        Ok(sql)
    }
}

/// Every saved query, by name.
pub(crate) fn all() -> Vec<SavedQuery> {
    SAVED_QUERY_FILES
        .iter()
        .filter_map(|(name, text)| SavedQuery::parse(name, text).ok())
        .collect()
}

/// The saved query called `name`.
pub(crate) fn find(name: &str) -> Result<SavedQuery> {
    let (name, text) = SAVED_QUERY_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "no saved query named `{name}`; the saved queries are: {}",
                SAVED_QUERY_FILES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    SavedQuery::parse(name, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_parses_with_title_and_question() {
        assert!(SAVED_QUERY_FILES.len() >= 20);
        for (name, text) in SAVED_QUERY_FILES {
            let q = SavedQuery::parse(name, text).unwrap();
            assert!(!q.question.is_empty(), "{name}");
            let rendered = q.render(&[]).unwrap();
            assert!(!rendered.contains("${"), "{name}: unreplaced parameter");
        }
    }

    #[test]
    fn values_cannot_close_the_string_literal() {
        let q = find("traffic_to_destination").unwrap();
        let sql = q
            .render(&[("dst_addr".into(), "x' OR '1'='1".into())])
            .unwrap();
        assert!(sql.contains("dstaddr = 'x'' OR ''1''=''1'"), "{sql}");
    }

    #[test]
    fn render_example() {
        let q = find("traffic_from_source").unwrap();
        let sql = q
            .render(&[("src_addr".to_string(), "10.1.2.3".to_string())])
            .unwrap();
        assert!(sql.contains("srcaddr = '10.1.2.3'"));
        assert!(q.render(&[("nope".to_string(), "1".to_string())]).is_err());
    }
}
