//! Token usage: what each provider reports and where ([`usage`]), and estimates for the
//! answers that report none ([`estimate`]).

pub mod estimate;
pub mod usage;
