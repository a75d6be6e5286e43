//! The physical optimizer rule that finishes grouped aggregations with a
//! [`BucketedAggregateExec`], wherever one can take the place of an
//! aggregate and its repartition.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::expressions::Column;
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
                let input = coded_by_scan(bucketed.input(), bucketed.packed_columns())?;
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
/// `plan`'s output unchanged, in the same poll: through a partial
/// aggregate (once it stops aggregating, it passes its keys on) and
/// projections. The grouping above then recalls those codes instead of
/// packing the text again; `None` where no scan is reached so.
fn coded_by_scan(
    plan: &Arc<dyn ExecutionPlan>,
    columns: Vec<String>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if columns.is_empty() {
        return Ok(None);
    }
    if let Some(scan) = plan.downcast_ref::<FlowLogScanExec>() {
        return Ok(Some(Arc::new(scan.with_coded_columns(columns)?)));
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
    let below = if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        if *aggregate.mode() != AggregateMode::Partial || !aggregate.group_expr().is_single() {
            return Ok(None);
        }
        from_input(
            aggregate
                .group_expr()
                .expr()
                .iter()
                .map(|(expr, alias)| (expr, alias.as_str()))
                .collect(),
        )
    } else if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        from_input(
            projection
                .expr()
                .iter()
                .map(|projected| (&projected.expr, projected.alias.as_str()))
                .collect(),
        )
    } else {
        None
    };
    let children = plan.children();
    let (Some(below), [input]) = (below, children.as_slice()) else {
        return Ok(None);
    };
    Ok(match coded_by_scan(input, below)? {
        Some(input) => Some(Arc::clone(plan).replace_children(vec![input], RECOMPUTE)?),
        None => None,
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
