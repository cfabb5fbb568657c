
pub mod prometheus;
pub mod store;
