//! Which row groups of a Parquet object may hold rows that pass a query's
//! filters, judged from the footer's statistics.
//!
//! DataFusion's Parquet reader can do this itself, but it builds its
//! pruning predicate (and a second, inverted one) for every object: with
//! AWS's 5-minute objects that is most of the cost of opening one. The
//! objects of a delivery share a few column layouts, and the predicate
//! reads record columns only ([`crate::table`] leaves path columns to the
//! listing), so here it is built once per layout and kept.

use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{Fields, Schema, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use datafusion::parquet::schema::types::SchemaDescriptor;
use datafusion::physical_expr::PhysicalExprSimplifier;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapterFactory,
};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::PhysicalExpr;

/// Layouts whose predicates are kept; a scan past it builds the rest
/// per object.
const MAX_LAYOUTS: usize = 32;

/// A scan's row-group predicate, built once per column layout.
#[derive(Debug)]
pub(crate) struct RowGroupPruning {
    /// Over the table's record columns (see [`crate::table`]'s choice of
    /// filters).
    predicate: Arc<dyn PhysicalExpr>,
    /// The table's record columns.
    record_columns: SchemaRef,
    /// Each layout seen (an object's columns as read) and its predicate,
    /// `None` where the statistics cannot judge it.
    layouts: Mutex<Vec<(Fields, Option<Arc<PruningPredicate>>)>>,
}

impl RowGroupPruning {
    pub(crate) fn new(predicate: Arc<dyn PhysicalExpr>, record_columns: SchemaRef) -> Self {
        Self {
            predicate,
            record_columns,
            layouts: Mutex::default(),
        }
    }

    /// The predicate, for plan display.
    pub(crate) fn predicate(&self) -> &Arc<dyn PhysicalExpr> {
        &self.predicate
    }

    /// For each row group of the object `metadata` describes, whether it may
    /// hold a row that passes; `None` when its statistics cannot tell (every
    /// row group is read).
    pub(crate) fn row_groups(&self, metadata: &ParquetMetaData) -> Option<Vec<bool>> {
        let file = metadata.file_metadata();
        // As DataFusion's reader reads the columns (its
        // `schema_force_view_types`): text as views, so the statistics
        // compare with the table's `Utf8View` literals.
        let read_as = Arc::new(transform_schema_to_view(
            &parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()?,
        ));
        let predicate = self.for_layout(&read_as)?;
        let statistics = RowGroupStatistics {
            parquet_schema: file.schema_descr(),
            row_groups: metadata.row_groups(),
            arrow_schema: &read_as,
        };
        predicate.prune(&statistics).ok()
    }

    fn for_layout(&self, read_as: &SchemaRef) -> Option<Arc<PruningPredicate>> {
        let mut layouts = self.layouts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, built)) = layouts.iter().find(|(f, _)| f == read_as.fields()) {
            return built.clone();
        }
        let built = self.build(read_as);
        if layouts.len() < MAX_LAYOUTS {
            layouts.push((read_as.fields().clone(), built.clone()));
        }
        built
    }

    /// The predicate over an object whose columns are `read_as`, as
    /// DataFusion's reader would build it: bound by name (a missing column
    /// is NULL), casts moved to the literals where they can be.
    fn build(&self, read_as: &SchemaRef) -> Option<Arc<PruningPredicate>> {
        let adapter = DefaultPhysicalExprAdapterFactory
            .create(Arc::clone(&self.record_columns), Arc::clone(read_as))
            .ok()?;
        let bound = adapter.rewrite(Arc::clone(&self.predicate)).ok()?;
        let simplified = PhysicalExprSimplifier::new(read_as).simplify(bound).ok()?;
        let predicate = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(read_as))
            .try_build(simplified)
            .ok()?;
        (!predicate.always_true()).then(|| Arc::new(predicate))
    }
}

/// One object's row-group statistics, as DataFusion's reader presents them
/// to a pruning predicate.
struct RowGroupStatistics<'a> {
    parquet_schema: &'a SchemaDescriptor,
    row_groups: &'a [RowGroupMetaData],
    arrow_schema: &'a Schema,
}

impl RowGroupStatistics<'_> {
    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'_>> {
        StatisticsConverter::try_new(&column.name, self.arrow_schema, self.parquet_schema)
            .ok()
            .map(|c| c.with_missing_null_counts_as_zero(true))
    }
}

impl PruningStatistics for RowGroupStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?.row_group_mins(self.row_groups).ok()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_maxes(self.row_groups)
            .ok()
    }

    fn num_containers(&self) -> usize {
        self.row_groups.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts = self
            .converter(column)?
            .row_group_null_counts(self.row_groups)
            .ok()?;
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .row_groups
            .iter()
            .map(|g| Some(g.num_rows() as u64))
            .collect();
        Some(Arc::new(counts))
    }

    fn contained(
        &self,
        _: &Column,
        _: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}
