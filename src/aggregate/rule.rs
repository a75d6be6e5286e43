//! The physical optimizer rule that finishes grouped aggregations with a
//! [`BucketedAggregateExec`], wherever one can take the place of an
//! aggregate and its repartition.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

use super::by_view::PartialAggregateByViewExec;
use super::exec::BucketedAggregateExec;
use super::keep_top::KeepTop;
use super::{Bucketing, RECOMPUTE};
use crate::scan::FlowLogScanExec;

/// The physical optimizer rule that finishes eligible grouped aggregations
/// with a [`BucketedAggregateExec`].
#[derive(Debug, Clone)]
pub(crate) struct BucketFinalAggregation {
    bucketing: Bucketing,
}

impl BucketFinalAggregation {
    /// A rule that splits with `bucketing`.
    pub(crate) fn new(bucketing: Bucketing) -> Self {
        Self { bucketing }
    }
}

impl PhysicalOptimizerRule for BucketFinalAggregation {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Only a node of two or more inputs (a join, a union) pairs one
        // input's partitions with another's; with none, a partition need not
        // be the one the repartition's hash of the text picks.
        let mut pairs_partitions = false;
        plan.apply(|node| {
            pairs_partitions |= node.children().len() > 1;
            Ok(TreeNodeRecursion::Continue)
        })?;
        // Children first: a TopK is reached after the aggregate under it
        // has become a bucketed one.
        plan.transform_up(|node| {
            if let Some(bucketed) = BucketedAggregateExec::try_new(&node, self.bucketing) {
                let bucketed = bucketed.with_code_routing(!pairs_partitions);
                let input = coded_by_scan(
                    bucketed.input(),
                    bucketed.packed_columns(),
                    bucketed.routes_by_code(),
                )?;
                let bucketed = Arc::new(bucketed) as Arc<dyn ExecutionPlan>;
                return Ok(Transformed::yes(match input {
                    Some(input) => bucketed.replace_children(vec![input], RECOMPUTE)?,
                    None => bucketed,
                }));
            }
            Ok(match keeping_top_under(&node) {
                Some(bucketed) => {
                    Transformed::yes(node.replace_children(vec![bucketed], RECOMPUTE)?)
                }
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "bucket_final_aggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The physical optimizer rule that runs eligible partial aggregations by
/// one text key as a [`PartialAggregateByViewExec`].
#[derive(Debug, Clone, Default)]
pub(crate) struct PartialAggregationByView;

impl PhysicalOptimizerRule for PartialAggregationByView {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match PartialAggregateByViewExec::try_new(&node) {
                Some(by_view) => Transformed::yes(Arc::new(by_view) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "partial_aggregation_by_view"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with the scan under it making the codes of `columns` (of
/// `plan`'s output) as it reads them, where the scan's arrays of them reach
/// `plan`'s output unchanged: through a partial aggregate (once it stops
/// aggregating, it passes its keys on; one by view hands decoded text,
/// whose views do not repeat, to such an aggregate after reading its first
/// batch's views) and projections. The grouping above
/// then recalls those codes instead of packing the text again; `None`
/// where no scan is reached so.
///
/// `text_unread`: the grouping above reads no text of rows whose keys have
/// codes. If no node on the way reads it either, but the partial
/// aggregate while it aggregates, the scan leaves out the text of coded
/// values once a batch is passed on (see
/// [`crate::text_codes::PassedOn`]).
fn coded_by_scan(
    plan: &Arc<dyn ExecutionPlan>,
    columns: Vec<String>,
    mut text_unread: bool,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if columns.is_empty() {
        return Ok(None);
    }
    if let Some(scan) = plan.downcast_ref::<FlowLogScanExec>() {
        return Ok(Some(Arc::new(
            scan.with_coded_columns(columns, text_unread)?,
        )));
    }
    // Each column's name in the node's input, where it is an input column
    // passed on.
    let from_input = |exprs: Vec<(&Arc<dyn PhysicalExpr>, &str)>| -> Option<Vec<String>> {
        columns
            .iter()
            .map(|name| {
                let (expr, _) = exprs.iter().find(|(_, alias)| alias == name)?;
                Some(expr.downcast_ref::<Column>()?.name().to_string())
            })
            .collect()
    };
    let partial = plan.downcast_ref::<AggregateExec>().or_else(|| {
        plan.downcast_ref::<PartialAggregateByViewExec>()
            .map(PartialAggregateByViewExec::aggregate)
    });
    let below = if let Some(aggregate) = partial {
        if *aggregate.mode() != AggregateMode::Partial || !aggregate.group_expr().is_single() {
            return Ok(None);
        }
        let group_by = aggregate.group_expr().expr();
        let below = from_input(
            group_by
                .iter()
                .map(|(expr, alias)| (expr, alias.as_str()))
                .collect(),
        );
        if let Some(below) = &below {
            // Once it passes batches on, it still evaluates its arguments,
            // filters and orderings.
            let arguments = aggregate.aggr_expr().iter().flat_map(|aggregate| {
                let ordering = aggregate.order_bys().iter().map(|sort| &sort.expr);
                aggregate.expressions().into_iter().chain(ordering.cloned())
            });
            let filters = aggregate.filter_expr().iter().flatten().cloned();
            let keys = group_by.iter().map(|(expr, alias)| (expr, alias.as_str()));
            text_unread &= !arguments.chain(filters).any(|expr| reads(&expr, below))
                && !read_otherwise(keys, below, &columns);
        }
        below
    } else if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let exprs = projection.expr();
        let below = from_input(
            exprs
                .iter()
                .map(|projected| (&projected.expr, projected.alias.as_str()))
                .collect(),
        );
        if let Some(below) = &below {
            let projected = exprs
                .iter()
                .map(|projected| (&projected.expr, projected.alias.as_str()));
            text_unread &= !read_otherwise(projected, below, &columns);
        }
        below
    } else {
        None
    };
    let children = plan.children();
    let (Some(below), [input]) = (below, children.as_slice()) else {
        return Ok(None);
    };
    Ok(match coded_by_scan(input, below, text_unread)? {
        Some(input) => Some(Arc::clone(plan).replace_children(vec![input], RECOMPUTE)?),
        None => None,
    })
}

/// Whether `expr` reads one of the input columns named `columns`.
fn reads(expr: &Arc<dyn PhysicalExpr>, columns: &[String]) -> bool {
    collect_columns(expr)
        .iter()
        .any(|column| columns.iter().any(|name| name == column.name()))
}

/// Whether one of a node's outputs (`exprs` with their names) reads one of
/// the input columns named `inputs` other than as one of the coded outputs
/// `coded`, each of which passes such a column on as it is: an expression
/// of it, or the same column under another name, which the nodes above
/// may read as text.
fn read_otherwise<'a>(
    exprs: impl IntoIterator<Item = (&'a Arc<dyn PhysicalExpr>, &'a str)>,
    inputs: &[String],
    coded: &[String],
) -> bool {
    exprs.into_iter().any(|(expr, name)| {
        let passed_on = expr.downcast_ref::<Column>().is_some() && coded.iter().any(|c| c == name);
        !passed_on && reads(expr, inputs)
    })
}

/// Where `node` is a TopK (a sort with a fetch) whose first key is a column
/// of the bucketed aggregate directly under it, that aggregate keeping only
/// the groups the TopK can choose ([`super::keep_top`]). The aggregate then
/// depends on that TopK staying its parent with no larger fetch: sound
/// because this rule runs after DataFusion's own (the session appends it),
/// so none moves or widens the sort afterwards.
fn keeping_top_under(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let sort = node.downcast_ref::<SortExec>()?;
    let fetch = sort.fetch()?;
    let first = sort.expr().first();
    let column = first.expr.downcast_ref::<Column>()?;
    let bucketed = sort.input().downcast_ref::<BucketedAggregateExec>()?;
    let keep = KeepTop {
        column: column.index(),
        descending: first.options.descending,
        fetch,
    };
    Some(Arc::new(bucketed.keeping_top(keep)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_installs_in_a_session_state() {
        use crate::aggregate::{BucketFinalAggregation, Bucketing};
        use datafusion::execution::session_state::SessionStateBuilder;
        use std::sync::Arc;

        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(BucketFinalAggregation::new(
                Bucketing::default(),
            )))
            .build();
        assert!(
            state
                .physical_optimizers()
                .iter()
                .any(|rule| rule.name() == "bucket_final_aggregation")
        );
    }
}
