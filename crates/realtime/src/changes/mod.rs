//! postgres_changes: the replication reader, the pure pgoutput decoder, subscriptions and
//! their filters, the batch authorizer and the delivery pipeline.

mod assemble;
pub(crate) mod authorizer;
pub(crate) mod catalog;
pub(crate) mod filter;
pub(crate) mod payload;
pub(crate) mod pgoutput;
pub(crate) mod pipeline;
pub(crate) mod registry;
pub(crate) mod replication;
pub(crate) mod source;
pub(crate) mod subscribe;
pub(crate) mod value;
