//! What a request costs against a quota: total, input or output tokens, or a weighted sum.

use crate::tokens::usage::Usage;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CountMode {
    /// input + output tokens (cached input included).
    #[default]
    Total,
    /// Input (prompt) tokens only, cached ones included.
    Input,
    /// Output (completion) tokens only, reasoning included.
    Output,
    /// `(input - cached) × input + cached × cached_input + output × output`, with per-model
    /// weights, rounded up to a whole token.
    Weighted,
}

/// A count mode with its weights in thousandths (1000 = ×1), so the arithmetic is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    pub mode: CountMode,
    pub input_milli: u64,
    pub output_milli: u64,
    pub cached_input_milli: u64,
}

impl Meter {
    pub fn new(mode: CountMode) -> Meter {
        Meter {
            mode,
            input_milli: 1000,
            output_milli: 1000,
            cached_input_milli: 1000,
        }
    }

    pub fn weighted(input_milli: u64, output_milli: u64, cached_input_milli: u64) -> Meter {
        Meter {
            mode: CountMode::Weighted,
            input_milli,
            output_milli,
            cached_input_milli,
        }
    }

    /// Tokens charged for `input` prompt tokens of which `cached` were read from the
    /// provider's cache, and `output` completion tokens.
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> u64 {
        match self.mode {
            CountMode::Total => input.saturating_add(output),
            CountMode::Input => input,
            CountMode::Output => output,
            CountMode::Weighted => {
                let cached = cached.min(input);
                let milli = u128::from(input - cached) * u128::from(self.input_milli)
                    + u128::from(cached) * u128::from(self.cached_input_milli)
                    + u128::from(output) * u128::from(self.output_milli);
                u64::try_from(milli.div_ceil(1000)).unwrap_or(u64::MAX)
            }
        }
    }

    /// The cost of a finished request.
    pub fn usage_cost(&self, u: &Usage) -> u64 {
        self.cost(u.input, u.cached_input, u.output)
    }
}

/// A rough, deliberately generous estimate of a request's input tokens from its body
/// size: one token per 4 bytes of JSON, rounded up. Used only for the reservation; the
/// reported usage replaces it when the response arrives.
pub fn estimate_input_tokens(body_len: usize) -> u64 {
    (body_len as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Meter::new(CountMode::Total).cost(10, 4, 5), 15);
        assert_eq!(Meter::new(CountMode::Input).cost(10, 4, 5), 10);
        assert_eq!(Meter::new(CountMode::Output).cost(10, 4, 5), 5);
        // Weighted with weights 1: cached tokens count like input.
        assert_eq!(Meter::new(CountMode::Weighted).cost(10, 4, 5), 15);
        assert_eq!(Meter::new(CountMode::Total).cost(u64::MAX, 0, 5), u64::MAX);
    }

    #[test]
    fn weighted_output_x4_cached_discounted_rounds_up() {
        let m = Meter::weighted(1000, 4000, 250);
        // 6 uncached + 4 cached × 0.25 + 5 output × 4 = 6 + 1 + 20
        assert_eq!(m.cost(10, 4, 5), 27);
        // 1 cached × 0.25 → 0.25 → rounds up to 1.
        assert_eq!(m.cost(1, 1, 0), 1);
        // cached > input is clamped (bad provider data never underflows).
        assert_eq!(m.cost(2, 9, 0), 1);
        assert_eq!(
            Meter::weighted(1000, 1000, 1000).cost(u64::MAX, 0, u64::MAX),
            u64::MAX
        );
    }

    #[test]
    fn usage_cost_reads_the_record() {
        let u = Usage {
            input: 100,
            output: 50,
            cached_input: 40,
            ..Usage::default()
        };
        assert_eq!(Meter::new(CountMode::Total).usage_cost(&u), 150);
        assert_eq!(
            Meter::weighted(1000, 2000, 500).usage_cost(&u),
            60 + 20 + 100
        );
    }

    #[test]
    fn estimate() {
        assert_eq!(estimate_input_tokens(0), 0);
        assert_eq!(estimate_input_tokens(1), 1);
        assert_eq!(estimate_input_tokens(400), 100);
    }
}
