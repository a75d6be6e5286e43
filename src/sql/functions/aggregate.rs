//! Trino's aggregate functions that DataFusion lacks or types differently.
//!
//! | function | becomes |
//! |---|---|
//! | `count_if(b)` | `count(1) FILTER (WHERE b)` |
//! | `max_by(x, y)`, `min_by(x, y)` | `first_value(x ORDER BY y DESC/ASC) FILTER (WHERE y IS NOT NULL)` |
//! | `arbitrary(x)` | `any_value(x)` (a non-null value) |
//! | `approx_percentile(x, p)` | DataFusion's t-digest `approx_percentile_cont`, in `x`'s type |
//! | `approx_distinct(x)` | DataFusion's HyperLogLog, as BIGINT |
//!
//! The first four are planned under their Trino names and rewritten into
//! DataFusion's aggregates before execution ([`rewrite`], called by
//! [`crate::sql::functions::rewrite`]), so the optimizer sees ordinary
//! aggregates. They are aggregates only, not window functions.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::any_value::any_value_udaf;
use datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf;
use datafusion::functions_aggregate::approx_percentile_cont::approx_percentile_cont_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, SortExpr, Volatility, lit,
};

/// Every function of this family.
pub(crate) fn functions() -> Vec<AggregateUDF> {
    let any = |n| Signature::any(n, Volatility::Immutable);
    vec![
        AggregateUDF::new_from_impl(Renamed {
            kind: RenamedKind::CountIf,
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable),
        }),
        AggregateUDF::new_from_impl(Renamed {
            kind: RenamedKind::MaxBy,
            signature: any(2),
        }),
        AggregateUDF::new_from_impl(Renamed {
            kind: RenamedKind::MinBy,
            signature: any(2),
        }),
        AggregateUDF::new_from_impl(Renamed {
            kind: RenamedKind::Arbitrary,
            signature: any(1),
        }),
        AggregateUDF::new_from_impl(Retyped::approx_percentile()),
        AggregateUDF::new_from_impl(Retyped::approx_distinct()),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RenamedKind {
    CountIf,
    MaxBy,
    MinBy,
    Arbitrary,
}

/// A Trino aggregate that is one of DataFusion's under another name and
/// shape; see [`rewrite`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Renamed {
    kind: RenamedKind,
    signature: Signature,
}

impl AggregateUDFImpl for Renamed {
    fn name(&self) -> &str {
        match self.kind {
            RenamedKind::CountIf => "count_if",
            RenamedKind::MaxBy => "max_by",
            RenamedKind::MinBy => "min_by",
            RenamedKind::Arbitrary => "arbitrary",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            RenamedKind::CountIf => DataType::Int64,
            _ => arg_types[0].clone(),
        })
    }

    fn is_nullable(&self) -> bool {
        self.kind != RenamedKind::CountIf
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        match self.kind {
            RenamedKind::CountIf => Ok(ScalarValue::Int64(Some(0))),
            _ => ScalarValue::try_from(data_type),
        }
    }

    /// Reached only where the plan was not rewritten, which is a window
    /// (`OVER (..)`) use.
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        plan_err!(
            "{} works as an aggregate (with GROUP BY), not as a window function",
            self.name()
        )
    }
}

/// Rewrites a call of one of the renamed aggregates into DataFusion's own;
/// `None` for any other aggregate.
pub(crate) fn rewrite(call: &AggregateFunction) -> Option<Expr> {
    let renamed = call.func.inner().downcast_ref::<Renamed>()?;
    let params = &call.params;
    let and_filter = |condition: Expr| -> Option<Box<Expr>> {
        Some(Box::new(match &params.filter {
            Some(existing) => existing.as_ref().clone().and(condition),
            None => condition,
        }))
    };
    let call = match renamed.kind {
        RenamedKind::CountIf => AggregateFunction::new_udf(
            count_udaf(),
            vec![lit(1i64)],
            false,
            and_filter(params.args[0].clone()),
            vec![],
            None,
        ),
        RenamedKind::MaxBy | RenamedKind::MinBy => AggregateFunction::new_udf(
            first_value_udaf(),
            vec![params.args[0].clone()],
            false,
            and_filter(params.args[1].clone().is_not_null()),
            vec![SortExpr::new(
                params.args[1].clone(),
                renamed.kind == RenamedKind::MinBy,
                false,
            )],
            None,
        ),
        RenamedKind::Arbitrary => AggregateFunction::new_udf(
            any_value_udaf(),
            params.args.clone(),
            false,
            params.filter.clone(),
            vec![],
            None,
        ),
    };
    Some(Expr::AggregateFunction(call))
}

/// One of DataFusion's aggregates with Trino's argument and result types:
/// the first argument is cast to `input` (when set) before it reaches the
/// inner accumulator, and the result is cast to `output` (or to the first
/// argument's type).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Retyped {
    name: &'static str,
    inner: Arc<AggregateUDF>,
    input: Option<DataType>,
    output: Option<DataType>,
    signature: Signature,
}

impl Retyped {
    /// `approx_percentile(x, p)`: a value of `x`'s type.
    fn approx_percentile() -> Self {
        Self {
            name: "approx_percentile",
            inner: approx_percentile_cont_udaf(),
            input: Some(DataType::Float64),
            output: None,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// `approx_distinct(x)`: BIGINT, as Trino counts.
    fn approx_distinct() -> Self {
        Self {
            name: "approx_distinct",
            inner: approx_distinct_udaf(),
            input: None,
            output: Some(DataType::Int64),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// The inner aggregate's argument fields.
    fn inner_fields(&self, fields: &[FieldRef]) -> Vec<FieldRef> {
        let mut fields = fields.to_vec();
        if let (Some(input), Some(first)) = (&self.input, fields.first_mut()) {
            *first = Arc::new(Field::new(first.name(), input.clone(), true));
        }
        fields
    }

    fn inner_return_field(&self, fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(&self.inner_fields(fields))
    }
}

impl AggregateUDFImpl for Retyped {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [x, _] if x.is_numeric() => Ok(vec![x.clone(), DataType::Float64]),
            [x, _] => plan_err!("{} takes a number, not {x}", self.name),
            _ => plan_err!("{} takes (value, percentage)", self.name),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone().unwrap_or_else(|| arg_types[0].clone()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let input_fields = self.inner_fields(args.input_fields);
        self.inner.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: &input_fields,
            return_field: self.inner_return_field(args.input_fields)?,
            ordering_fields: args.ordering_fields,
            is_distinct: args.is_distinct,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let expr_fields = self.inner_fields(args.expr_fields);
        let inner = self.inner.accumulator(AccumulatorArgs {
            return_field: self.inner_return_field(args.expr_fields)?,
            expr_fields: &expr_fields,
            ..args.clone()
        })?;
        Ok(Box::new(RetypedAccumulator {
            inner,
            input: self.input.clone(),
            output: args.return_field.data_type().clone(),
        }))
    }
}

#[derive(Debug)]
struct RetypedAccumulator {
    inner: Box<dyn Accumulator>,
    input: Option<DataType>,
    output: DataType,
}

impl Accumulator for RetypedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match &self.input {
            Some(input) => {
                let mut values = values.to_vec();
                values[0] = cast(&values[0], input)?;
                self.inner.update_batch(&values)
            }
            None => self.inner.update_batch(values),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = self.inner.evaluate()?;
        // Integers round to the nearest value rather than truncate.
        let value = match (&value, self.output.is_integer()) {
            (ScalarValue::Float64(Some(v)), true) => ScalarValue::Float64(Some(v.round())),
            _ => value,
        };
        value.cast_to(&self.output)
    }

    fn size(&self) -> usize {
        self.inner.size() + std::mem::size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}
