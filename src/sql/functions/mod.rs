//! SQL functions flowsql adds to DataFusion's, one file per family, and
//! the rewrites that give Trino's meaning to what DataFusion plans
//! differently. Where Trino and DataFusion share a name and differ, the
//! Trino function replaces DataFusion's.

pub(crate) mod aggregate;
pub(crate) mod datetime;
pub(crate) mod display;
pub(crate) mod flowlog;
pub(crate) mod ipaddress;
pub(crate) mod mysql_format;
pub(crate) mod rewrite;
pub(crate) mod temporal;
pub(crate) mod text;
pub(crate) mod types;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

/// Registers every flowsql function and rewrite in `ctx`. The `IPADDRESS`
/// type name needs [`ipaddress::IpAddressTypePlanner`] in the session
/// state as well, which [`crate::new_context`] installs.
pub(crate) fn register_all(ctx: &SessionContext) -> Result<()> {
    for udf in flowlog::functions()
        .into_iter()
        .chain(datetime::functions())
        .chain(display::functions())
        .chain(temporal::functions())
        .chain(ipaddress::functions())
        .chain(text::functions())
        .chain(types::functions())
        .chain(rewrite::functions())
    {
        ctx.register_udf(udf);
    }
    for udaf in aggregate::functions() {
        ctx.register_udaf(udaf);
    }
    ctx.clone()
        .register_function_rewrite(Arc::new(rewrite::TrinoRewrites))?;
    Ok(())
}
