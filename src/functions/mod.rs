//! SQL functions flowsql adds to DataFusion's: one file per family.

pub mod datetime;
pub mod flowlog;

use datafusion::prelude::SessionContext;

/// Registers every flowsql function in `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for udf in flowlog::functions()
        .into_iter()
        .chain(datetime::functions())
    {
        ctx.register_udf(udf);
    }
}
