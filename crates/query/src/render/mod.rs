//! Rendering plans into statements.

mod call;
mod expr;
mod mutate;
mod read;

pub use call::render_call;
pub use mutate::{WriteOutput, render_write};
pub use read::{
    BodyKind, Count, RootSource, SelectOptions, null_extras, render_count_plan, render_read,
    render_select,
};
