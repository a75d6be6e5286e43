//! Athena's SQL on top of DataFusion's: what has to happen before and
//! around planning for Athena statements to run unchanged.
//!
//! - `IPADDRESS '10.0.0.1'` literals (which the parser would read as a
//!   column named `ipaddress`) become `CAST('10.0.0.1' AS IPADDRESS)`.
//! - Select-list items DataFusion would name alike (a column and a cast of
//!   it, or the same expression twice) get Trino's `_colN` names instead of
//!   failing.
//! - `SHOW PARTITIONS t`, `MSCK REPAIR TABLE t` and `SET SESSION k = v`,
//!   which DataFusion does not plan, run here.
//!
//! Every front end (the command line, the shell, library users through
//! [`sql`]) goes through [`parse_statements`] and [`execute_statement`].

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    self, ContextModifier, Expr as SqlExpr, Ident, Select, SelectItem, Set, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::table::FlowLogTable;

/// Parses SQL text into statements, with Athena's literals and naming.
///
/// ```
/// let statements = flowsql::parse_statements(
///     "SELECT CAST(srcport AS varchar), srcport FROM t WHERE CAST(srcaddr AS IPADDRESS) = IPADDRESS '10.0.0.1'",
/// )
/// .unwrap();
/// assert_eq!(
///     statements[0].to_string(),
///     "SELECT CAST(srcport AS VARCHAR) AS _col0, srcport FROM t WHERE CAST(srcaddr AS IPADDRESS) = CAST('10.0.0.1' AS IPADDRESS)"
/// );
/// ```
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
    let sql = rewrite_ipaddress_literals(sql)?;
    let mut statements: Vec<Statement> =
        DFParser::parse_sql_with_dialect(&sql, &GenericDialect {})?
            .into_iter()
            .collect();
    for statement in &mut statements {
        if let Statement::Statement(sql) = statement {
            let _ = sql.visit(&mut DistinctNames);
        }
    }
    Ok(statements)
}

/// What running a statement gave: the result, and a note for the user when
/// the statement was accepted but had nothing (or something else) to do.
pub struct Executed {
    /// The statement's result (no columns for `SET SESSION` and `MSCK`).
    pub dataframe: DataFrame,
    /// Said to the user, for example on stderr.
    pub note: Option<String>,
}

/// Plans one statement, running Athena's own statements directly.
pub async fn execute_statement(ctx: &SessionContext, statement: Statement) -> Result<Executed> {
    let plain = |dataframe| Executed {
        dataframe,
        note: None,
    };
    if let Statement::CopyTo(copy) = &statement
        && let Some(conversion) = crate::convert::copy_statement(ctx, copy).await?
    {
        return Ok(plain(conversion));
    }
    let Statement::Statement(sql) = &statement else {
        let plan = ctx.state().statement_to_plan(statement).await?;
        return Ok(plain(ctx.execute_logical_plan(plan).await?));
    };
    match sql.as_ref() {
        ast::Statement::ShowVariable { variable }
            if variable.len() >= 2 && variable[0].value.eq_ignore_ascii_case("partitions") =>
        {
            let name = variable[1..]
                .iter()
                .map(|i| i.value.as_str())
                .filter(|v| !v.eq_ignore_ascii_case("from") && !v.eq_ignore_ascii_case("in"))
                .collect::<Vec<_>>()
                .join(".");
            let provider = ctx.table_provider(name.as_str()).await?;
            let any: &dyn std::any::Any = provider.as_ref();
            let table = any.downcast_ref::<FlowLogTable>().ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "SHOW PARTITIONS works on flow-log tables; `{name}` is not one"
                ))
            })?;
            Ok(plain(ctx.read_batch(table.partitions().await?)?))
        }
        ast::Statement::Msck(msck) => {
            ctx.table_provider(msck.table_name.to_string().as_str())
                .await?;
            Ok(Executed {
                dataframe: ctx.read_empty()?,
                note: Some(
                    "MSCK REPAIR TABLE has nothing to do: flowsql finds partitions by listing the tree at query time"
                        .into(),
                ),
            })
        }
        ast::Statement::Set(Set::SingleAssignment {
            scope: Some(ContextModifier::Session),
            variable,
            values,
            ..
        }) => {
            let key = variable.to_string();
            let note = if key.starts_with("datafusion.") {
                let value = values
                    .iter()
                    .map(|v| v.to_string().trim_matches('\'').to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                ctx.state_ref()
                    .write()
                    .config_mut()
                    .options_mut()
                    .set(&key, &value)?;
                None
            } else {
                Some(format!(
                    "SET SESSION {key} accepted; flowsql has no such setting, so it has no effect"
                ))
            };
            Ok(Executed {
                dataframe: ctx.read_empty()?,
                note,
            })
        }
        _ => {
            let plan = ctx.state().statement_to_plan(statement).await?;
            Ok(plain(ctx.execute_logical_plan(plan).await?))
        }
    }
}

/// Runs one statement of Athena SQL: [`parse_statements`] then [`execute_statement`]. Notes are
/// dropped; use those two for them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::common::Result<()> {
/// let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bucket");
/// let ctx = flowsql::new_context(&[location], &flowsql::SessionOptions::default()).await?;
/// let partitions = flowsql::sql(&ctx, "SHOW PARTITIONS vpc_flow_logs").await?;
/// assert!(partitions.count().await? > 0);
/// # Ok(())
/// # }
/// ```
pub async fn sql(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let mut statements = parse_statements(sql)?;
    if statements.len() != 1 {
        return Err(DataFusionError::Plan(format!(
            "expected one statement, found {}",
            statements.len()
        )));
    }
    Ok(execute_statement(ctx, statements.remove(0))
        .await?
        .dataframe)
}

/// Turns `IPADDRESS '…'` into `CAST('…' AS IPADDRESS)`, leaving string
/// literals, quoted identifiers and comments alone.
fn rewrite_ipaddress_literals(sql: &str) -> Result<String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(e.into()), None))?;
    let significant: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut starts = Vec::new();
    for pair in significant.windows(2) {
        if let (Token::Word(word), Token::SingleQuotedString(_)) = (&pair[0].token, &pair[1].token)
            && word.quote_style.is_none()
            && word.value.eq_ignore_ascii_case("ipaddress")
        {
            starts.push(pair[0].span.start);
        }
    }
    if starts.is_empty() {
        return Ok(sql.to_string());
    }
    // Line and column (1-based, in characters) to byte offsets.
    let mut offsets = HashMap::new();
    let (mut line, mut column) = (1u64, 1u64);
    for (offset, c) in sql.char_indices() {
        offsets.insert((line, column), offset);
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    let mut out = String::with_capacity(sql.len() + 16 * starts.len());
    let mut copied = 0;
    for start in starts {
        let Some(&word) = offsets.get(&(start.line, start.column)) else {
            continue;
        };
        let after_word = word + "ipaddress".len();
        let quote = after_word + sql[after_word..].find('\'').expect("a string follows");
        // The literal ends at the first quote not doubled.
        let mut end = quote + 1;
        let bytes = sql.as_bytes();
        loop {
            match bytes[end..].iter().position(|&b| b == b'\'') {
                Some(p) if bytes.get(end + p + 1) == Some(&b'\'') => end += p + 2,
                Some(p) => {
                    end += p + 1;
                    break;
                }
                None => return Ok(sql.to_string()),
            }
        }
        out.push_str(&sql[copied..word]);
        out.push_str("CAST(");
        out.push_str(&sql[quote..end]);
        out.push_str(" AS IPADDRESS)");
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Names select-list items that DataFusion would name alike `_colN` (N the
/// item's position, as Athena names unaliased columns). A cast is named
/// after what it casts, so `srcport, CAST(srcport AS varchar)` collide.
struct DistinctNames;

impl VisitorMut for DistinctNames {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let has_wildcard = select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        let keys: Vec<Option<(String, bool)>> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(expr) => {
                    let (inner, is_cast) = strip_casts(expr);
                    Some((name_key(&inner), is_cast))
                }
                SelectItem::ExprWithAlias { alias, .. } => {
                    Some((alias.value.to_lowercase(), false))
                }
                _ => None,
            })
            .collect();
        let mut first_plain: HashMap<&str, usize> = HashMap::new();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some((key, is_cast)) = key {
                *count.entry(key).or_default() += 1;
                if !is_cast {
                    first_plain.entry(key).or_insert(i);
                }
            }
        }
        for (i, item) in select.projection.iter_mut().enumerate() {
            let SelectItem::UnnamedExpr(expr) = item else {
                continue;
            };
            let Some((key, is_cast)) = &keys[i] else {
                continue;
            };
            let bare_column = matches!(
                strip_casts(expr).0,
                SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
            );
            let collides = count[key.as_str()] > 1 || (*is_cast && has_wildcard && bare_column);
            let keeps_name = !is_cast && first_plain.get(key.as_str()) == Some(&i);
            if collides && !keeps_name {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::new(format!("_col{i}")),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// The expression with every cast removed (DataFusion names a cast after
/// what it casts, at any depth), and whether there were any.
fn strip_casts(expr: &SqlExpr) -> (SqlExpr, bool) {
    let mut stripped = expr.clone();
    let mut found = false;
    let _ = ast::visit_expressions_mut(&mut stripped, |e: &mut SqlExpr| {
        loop {
            let inner = match e {
                SqlExpr::Cast { expr: inner, .. } => {
                    found = true;
                    inner.as_ref().clone()
                }
                SqlExpr::Nested(inner) => inner.as_ref().clone(),
                _ => break,
            };
            *e = inner;
        }
        ControlFlow::<()>::Continue(())
    });
    (stripped, found)
}

/// How DataFusion would name an expression, near enough to find
/// collisions: unquoted identifiers fold to lower case, and a qualified
/// column is named by its last part.
fn name_key(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Identifier(ident) => fold(ident),
        SqlExpr::CompoundIdentifier(parts) => parts.last().map(fold).unwrap_or_default(),
        other => other.to_string().to_lowercase(),
    }
}

fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        parse_statements(sql).unwrap()[0].to_string()
    }

    #[test]
    fn ipaddress_literals_become_casts_only_outside_strings_and_comments() {
        assert_eq!(
            rewrite_ipaddress_literals(
                "SELECT ipaddress  '::1', 'ipaddress ''x''' -- ipaddress 'y'\n, \"ipaddress\" 'z'"
            )
            .unwrap(),
            "SELECT CAST('::1' AS IPADDRESS), 'ipaddress ''x''' -- ipaddress 'y'\n, \"ipaddress\" 'z'"
        );
        assert_eq!(
            rewrite_ipaddress_literals("SELECT\n  IPADDRESS 'it''s'").unwrap(),
            "SELECT\n  CAST('it''s' AS IPADDRESS)"
        );
    }

    #[test]
    fn only_colliding_items_are_renamed() {
        assert_eq!(
            rewritten("SELECT CAST(bytes AS varchar), CAST(bytes AS double), packets FROM t"),
            "SELECT CAST(bytes AS VARCHAR) AS _col0, CAST(bytes AS DOUBLE) AS _col1, packets FROM t"
        );
        assert_eq!(
            rewritten("SELECT count(*), count(*), t.a, a AS b FROM t"),
            "SELECT count(*), count(*) AS _col1, t.a, a AS b FROM t"
        );
        assert_eq!(
            rewritten("SELECT *, CAST(srcport AS varchar) FROM t"),
            "SELECT *, CAST(srcport AS VARCHAR) AS _col1 FROM t"
        );
        assert_eq!(
            rewritten("SELECT sum(x), sum(CAST(x AS double)), sum(y) FROM t"),
            "SELECT sum(x), sum(CAST(x AS DOUBLE)) AS _col1, sum(y) FROM t"
        );
        assert_eq!(
            rewritten("SELECT a FROM (SELECT a, CAST(a AS int) FROM t)"),
            "SELECT a FROM (SELECT a, CAST(a AS INT) AS _col1 FROM t)"
        );
    }
}
