//! Consumers, model access and token quotas (host-free logic).
//!
//! The filter calls, per request (see docs/quotas.md for the whole flow):
//!
//! 1. request headers — [`Policy::identify`] (401) ;
//! 2. request body — [`Policy::check_model`] (403), [`Quotas::plan`], then
//!    * local mode: [`local::reserve`] over a [`local::SharedStore`] (429 / 503),
//!    * global mode: [`rls::admission_request`] → `dispatch_grpc_call` →
//!      [`rls::decide`] (429 / 503 / admit);
//! 3. response headers — `x-ratelimit-*` from [`local::Reservation::info`] or the
//!    [`rls::Decision::Admit`] info ([`headers::RateLimitInfo::headers`]);
//! 4. `on_log` (always, also after a client disconnect) —
//!    [`local::Reservation::settle`] (idempotent) or [`rls::correction`], queued in an
//!    [`outbox::Outbox`] that the root context empties on its tick.

pub mod config;
pub mod errors;
pub mod headers;
pub mod identity;
pub mod local;
pub mod meter;
pub mod outbox;
pub mod plan;
pub mod proto;
pub mod rls;
pub mod window;

// Runs the workers on real threads, which wasm32-wasip1 does not have.
#[cfg(all(test, not(target_os = "wasi")))]
mod interleave;

pub use config::{
    ConsumersConfig, IdentityConfig, Policy, QuotaConfig, QuotaMode, Quotas, Sections,
};
pub use headers::RateLimitInfo;
pub use identity::Caller;
pub use local::{Admission, CasMismatch, Outcome, Reservation, SharedStore};
pub use plan::{Plan, RequestFacts};
