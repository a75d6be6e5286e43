//! The expression rewrites that give Trino's meaning to what DataFusion
//! plans differently. They run first in the analyzer, on every expression
//! of every plan (subqueries included), before type coercion:
//!
//! - `CAST(text AS IPADDRESS)` parses addresses (Arrow's cast would copy
//!   bytes); `TRY_CAST` gives NULL for a malformed one; `CAST(ip AS
//!   VARCHAR)` prints it.
//! - `try(x)`: inside `x`, casts become `TRY_CAST`, integer division and
//!   modulo by zero give NULL, and flowsql's parsing functions their
//!   lenient twins; then `try` itself goes.
//! - `count_if`, `max_by`, `min_by`, `arbitrary` become DataFusion's
//!   aggregates ([`super::aggregate::rewrite`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::functions::core::expr_fn::nullif;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TryCast, Volatility, lit,
};

use super::ipaddress::{IpAddressToText, ToIpAddress, is_ipaddress};

/// Every function of this family (`try`).
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(Try {
        signature: Signature::any(1, Volatility::Immutable),
    })]
}

/// The analyzer pass; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct TrinoRewrites;

impl FunctionRewrite for TrinoRewrites {
    fn name(&self) -> &str {
        "flowsql_trino_rewrites"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> Result<Transformed<Expr>> {
        match expr {
            Expr::Cast(Cast { expr: inner, field }) => {
                Ok(
                    rewrite_cast(*inner, field.data_type(), true, schema).unwrap_or_else(|inner| {
                        Transformed::no(Expr::Cast(Cast::new_from_field(Box::new(inner), field)))
                    }),
                )
            }
            Expr::TryCast(TryCast { expr: inner, field }) => {
                Ok(
                    rewrite_cast(*inner, field.data_type(), false, schema).unwrap_or_else(
                        |inner| {
                            Transformed::no(Expr::TryCast(TryCast::new_from_field(
                                Box::new(inner),
                                field,
                            )))
                        },
                    ),
                )
            }
            Expr::ScalarFunction(call) if call.func.inner().downcast_ref::<Try>().is_some() => {
                let argument = call
                    .args
                    .into_iter()
                    .next()
                    .expect("try takes one argument");
                Ok(Transformed::yes(lenient(argument, schema)?))
            }
            Expr::AggregateFunction(call) => match super::aggregate::rewrite(&call) {
                Some(rewritten) => Ok(Transformed::yes(rewritten)),
                None => Ok(Transformed::no(Expr::AggregateFunction(call))),
            },
            other => Ok(Transformed::no(other)),
        }
    }
}

/// A cast to or from IPADDRESS as a function call; the untouched input
/// when the cast is neither.
fn rewrite_cast(
    inner: Expr,
    target: &DataType,
    strict: bool,
    schema: &DFSchema,
) -> std::result::Result<Transformed<Expr>, Expr> {
    let Ok(source) = inner.get_type(schema) else {
        return Err(inner);
    };
    if is_ipaddress(target) && !is_ipaddress(&source) {
        let udf = ScalarUDF::new_from_impl(ToIpAddress::new(strict));
        return Ok(Transformed::yes(udf.call(vec![inner])));
    }
    if is_ipaddress(&source) && target.is_string() {
        let text = ScalarUDF::new_from_impl(IpAddressToText::new()).call(vec![inner]);
        let text = if *target == DataType::Utf8 {
            text
        } else {
            Expr::Cast(Cast::new(Box::new(text), target.clone()))
        };
        return Ok(Transformed::yes(text));
    }
    Err(inner)
}

/// `x` with every failure `try` turns into NULL made lenient.
fn lenient(expr: Expr, schema: &DFSchema) -> Result<Expr> {
    Ok(expr
        .transform_up(|e| {
            Ok(match e {
                Expr::Cast(Cast { expr, field }) => {
                    Transformed::yes(Expr::TryCast(TryCast::new_from_field(expr, field)))
                }
                Expr::ScalarFunction(call) => match lenient_twin(&call.func) {
                    Some(twin) => Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                        Arc::new(twin),
                        call.args,
                    ))),
                    None => Transformed::no(Expr::ScalarFunction(call)),
                },
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(op, Operator::Divide | Operator::Modulo)
                        && right.get_type(schema).is_ok_and(|t| t.is_integer()) =>
                {
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        left,
                        op,
                        Box::new(nullif(*right, lit(0i64))),
                    )))
                }
                other => Transformed::no(other),
            })
        })?
        .data)
}

fn lenient_twin(udf: &ScalarUDF) -> Option<ScalarUDF> {
    if let Some(cast) = udf.inner().downcast_ref::<ToIpAddress>() {
        return cast
            .is_strict()
            .then(|| ScalarUDF::new_from_impl(ToIpAddress::new(false)));
    }
    super::temporal::lenient_twin(udf)
}

/// `try(x)`: NULL where evaluating `x` would fail with a cast, parse or
/// division-by-zero error. Planned as a function so names and types
/// resolve, then removed by [`TrinoRewrites`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Try {
    signature: Signature,
}

impl ScalarUDFImpl for Try {
    fn name(&self) -> &str {
        "try"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    /// Only reached where the analyzer did not run; the argument has then
    /// already been evaluated, so it passes through.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args
            .args
            .into_iter()
            .next()
            .expect("try takes one argument"))
    }
}
