//! Filters: decide whether a document stays, each naming the reason when it does not.

pub mod basic;
pub mod c4;
pub mod decontaminate;
pub mod fineweb;
pub mod gopher;
pub mod text;
