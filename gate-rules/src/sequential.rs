//! Anytime-valid sequential test for "the train's error rate exceeds the baseline's by more than
//! a margin", re-evaluated at every look without inflating the false-alarm rate.
//!
//! A fixed-horizon test ([`crate::stats`]) re-tested at every evaluation of a train rejects a
//! healthy train far more often than its `alpha` promises, because every look is a new chance
//! for noise to cross the threshold. This module replaces it with an *e-process*: a running
//! product of likelihood ratios whose expectation under the null hypothesis never exceeds 1, so
//! by Ville's inequality the chance that it *ever* reaches `1/alpha` — at any look, however many
//! looks, skipped looks or traffic ramps — is at most `alpha`. The formulas, their sources and
//! the simulation that measures calibration and power are in `docs/statistics.md`.
//!
//! # The test
//!
//! Errors of the train and of the baseline are modelled as Poisson counts with rates
//! proportional to their traffic; `ρ` is the train's error rate divided by the baseline's. The
//! null hypothesis is `ρ ≤ ρ₀` with `ρ₀ = 1 + min_effect`. At look `k` the caller passes the
//! cumulative counts of both sides; the test makes them monotone (`C_k = max(C_{k−1},
//! round(raw_k))`, since Prometheus' `increase()` extrapolates) and takes the increments `Δe₁`
//! of `Δn₁` train events and `Δe₂` of `Δn₂` baseline events, `Δm = Δe₁ + Δe₂`. For each
//! alternative `ρ₀·c` of a fixed grid of `c > 1` ([`ALTERNATIVES`]) the look adds the log
//! likelihood ratio of the conditional binomial (the train's share of the look's errors):
//!
//! ```text
//! ℓ_k(c) = Δe₁·ln c − Δm·ln[(ρ₀·c·Δn₁ + Δn₂) / (ρ₀·Δn₁ + Δn₂)]
//! S_c   += min(η_k·ℓ_k(c), MAX_NATS_PER_LOOK)
//! ln E   = logsumexp_c(S_c + ln w_c)                   (fixed weights WEIGHTS, Σ w_c = 1)
//! ```
//!
//! `exp(ℓ_k(c))` has expectation at most 1 for every rate ratio `ρ ≤ ρ₀` and every baseline
//! rate, so each `exp(S_c)` and their average `E` are test supermartingales.
//!
//! # Overdispersion guard
//!
//! Real errors come in bursts, which Poisson noise does not model; a baseline from another time
//! window (`before_start`, a previous train) does not cancel them. Two guards keep a burst from
//! passing for a regression, and neither breaks validity:
//!
//! * **tempering**: each look's `ℓ` is multiplied by `η_k = 1 / max(1, D_k − DISPERSION_SLACK)`
//!   where `D_k` is the
//!   Pearson dispersion of the increments of both sides, each around its own error ratio (so a
//!   steady regression does not inflate it), over the looks *before* `k`, shrunk towards 1 by
//!   [`DISPERSION_PRIOR_DF`] pseudo degrees of freedom so that two or three looks cannot swing
//!   it. `η_k` is known before look `k`'s errors are seen, and `E[X^η] ≤ E[X]^η ≤ 1`
//!   for `η ∈ (0, 1]` (Jensen), so the product stays a supermartingale. Under Poisson noise
//!   `D ≈ 1` and little changes; with dispersion 3 a look counts a third.
//! * **a cap**: no look adds more than [`MAX_NATS_PER_LOOK`] to any `S_c`
//!   (`exp(min(x, cap)) ≤ exp(x)`), so at least `ln(1/α)` looks' worth of consistent evidence
//!   is needed: a single burst cannot roll a train back.
//!
//! The dispersion is reported in every [`Verdict`] so the evidence shows when it was tempered.
//!
//! # The lower confidence bound
//!
//! `ratio_lower` is the largest candidate ratio `ρ'` of a fixed grid ([`CANDIDATE_RATIOS`] and
//! `ρ₀`) whose own e-process — the same construction with `ρ₀` replaced by `ρ'` — has ever
//! reached `1/alpha`. Each `ℓ_k(c)` decreases as the null ratio grows (the fraction
//! `(ρ'cΔn₁+Δn₂)/(ρ'Δn₁+Δn₂)` increases with `ρ'` for `c > 1`), tempering is the same for all
//! `ρ'` and the cap is monotone, so the e-value decreases in `ρ'` at every look. Hence if the
//! true ratio is `ρ*` and a candidate `ρ' ≥ ρ*` was ever rejected, the e-process at `ρ*` itself
//! (on or off the grid) reached `1/alpha` too, which happens with probability at most `alpha`:
//! `P(∃k: ratio_lower_k ≥ ρ*) ≤ alpha`. The bound never decreases from look to look. It is 0
//! (no bound) until the smallest candidate is rejected. By construction `significant` holds
//! exactly when `ratio_lower ≥ ρ₀`.
//!
//! # State
//!
//! [`SequentialState`] is everything that must persist between looks (per SLO of a train): the
//! `S` vectors of every candidate null, the last cumulative counts, the best evidence so far,
//! the look count and the dispersion accumulator. It is `serde`-serializable so the daemon can
//! store it; replaying the same looks into a fresh state gives the same state. A look with no
//! new traffic on either side is not a look: its counts merge into the next one. A look with a
//! NaN, infinite or negative count changes nothing, so bad data can never make a train
//! significant.

use serde::{Deserialize, Serialize};

use crate::vocab::Counts;

/// The grid of alternatives: the train's rate is `ρ₀·c` times the baseline's. Dense near 1 for
/// high-traffic services (where small effects are detectable), up to 10× for outright breakage.
pub const ALTERNATIVES: [f64; 10] = [1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 2.0, 3.0, 5.0, 10.0];

/// The mixing weights of [`ALTERNATIVES`] (relative; they are normalised to sum to 1). Most
/// weight on 1.35–3 (a 1.4× to 3× regression at `ρ₀ = 1.05`), where evidence is scarcest at
/// ordinary traffic; the ends are detected fast anyway (many events, or a large effect), so a
/// smaller weight there costs little time. Any fixed weights keep the test valid.
pub const WEIGHTS: [f64; 10] = [0.5, 0.5, 1.0, 2.0, 4.0, 4.0, 3.0, 1.5, 0.5, 0.5];

/// Candidate null ratios for `ratio_lower` (`ρ₀ = 1 + min_effect` is always added).
pub const CANDIDATE_RATIOS: [f64; 13] = [
    1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0,
];

/// Dispersion up to `1 + DISPERSION_SLACK` is not tempered: under Poisson noise the estimate
/// scatters that much around 1 (about 1.5 standard errors after 30 looks), and tempering
/// healthy noise would only cost power.
pub const DISPERSION_SLACK: f64 = 0.25;

/// The most one look can add to any log e-value (nats). With `alpha = 0.01` no fewer than four
/// looks can reach `ln(1/alpha)` = 4.6 nats.
pub const MAX_NATS_PER_LOOK: f64 = 1.5;

/// Pseudo degrees of freedom at dispersion 1 that the Pearson dispersion is shrunk with: after
/// `J` looks, `D = (DISPERSION_PRIOR_DF + X²) / (DISPERSION_PRIOR_DF + 2·(J − 1))`.
pub const DISPERSION_PRIOR_DF: f64 = 10.0;

/// Why a test or a stored state was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SequentialError {
    /// `alpha` must lie strictly between 0 and 1.
    #[error("alpha must be between 0 and 1 (exclusive), got {0}")]
    Alpha(f64),
    /// `min_effect` must be finite and at least 0.
    #[error("min_effect must be a finite number ≥ 0, got {0}")]
    MinEffect(f64),
    /// A deserialized state does not fit this version of the test.
    #[error("invalid sequential test state: {0}")]
    State(String),
}

/// The test's parameters: false-alarm bound and margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialTest {
    alpha: f64,
    min_effect: f64,
}

impl SequentialTest {
    /// A test that flags a train whose error rate exceeds `1 + min_effect` times the
    /// baseline's, with probability at most `alpha` of ever flagging one that does not.
    pub fn new(alpha: f64, min_effect: f64) -> Result<Self, SequentialError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(SequentialError::Alpha(alpha));
        }
        if !(min_effect.is_finite() && min_effect >= 0.0) {
            return Err(SequentialError::MinEffect(min_effect));
        }
        Ok(Self { alpha, min_effect })
    }

    /// The false-alarm bound.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The relative margin: rate ratios up to `1 + min_effect` count as healthy.
    pub fn min_effect(&self) -> f64 {
        self.min_effect
    }

    /// `ρ₀ = 1 + min_effect`, the largest rate ratio of the null hypothesis.
    pub fn null_ratio(&self) -> f64 {
        1.0 + self.min_effect
    }

    /// The candidate null ratios, ascending, and the index of `ρ₀` among them.
    fn nulls(&self) -> (Vec<f64>, usize) {
        let rho0 = self.null_ratio();
        let below = CANDIDATE_RATIOS.iter().copied().filter(|r| *r < rho0);
        let above = CANDIDATE_RATIOS.iter().copied().filter(|r| *r > rho0);
        let main = below.clone().count();
        (below.chain([rho0]).chain(above).collect(), main)
    }

    /// A fresh state: no looks yet.
    pub fn start(&self) -> SequentialState {
        let s = vec![[0.0; ALTERNATIVES.len()]; self.nulls().0.len()];
        SequentialState {
            test: *self,
            s,
            train: Cumulative::default(),
            baseline: Cumulative::default(),
            looks: 0,
            max_ln_e: 0.0,
            ratio_lower: 0.0,
            train_sq: 0.0,
            baseline_sq: 0.0,
        }
    }
}

/// What the test says after a look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// The e-value at this look for "rate ratio > ρ₀" (1 before any look).
    pub e_value: f64,
    /// Anytime-valid p-value: the minimum over looks of `1/E`, at most 1.
    pub p_value: f64,
    /// `p_value < alpha`. Once true it stays true.
    pub significant: bool,
    /// Anytime-valid lower confidence bound (level `1 − alpha`) on train rate ÷ baseline rate;
    /// 0 when no candidate ratio has been rejected yet. Never decreases.
    pub ratio_lower: f64,
    /// Looks that carried new traffic on both sides.
    pub looks: u64,
    /// The baseline's estimated dispersion (variance ÷ Poisson variance, shrunk towards 1)
    /// after this look; the next look is tempered by `1 / max(1, dispersion)`.
    pub dispersion: f64,
}

/// Monotone cumulative counts of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cumulative {
    /// Errors so far (never above `total`).
    errors: u64,
    /// Events so far.
    total: u64,
}

impl Cumulative {
    /// The next monotone cumulative counts from raw (float) counts; `None` for NaN, infinite,
    /// negative or out-of-range counts.
    fn advance(self, raw: Counts) -> Option<Cumulative> {
        let count = |x: f64| -> Option<u64> {
            let r = x.round();
            // Below 2^53: exact in f64 and far from overflowing the sums below.
            (0.0..9.0e15).contains(&r).then_some(r as u64)
        };
        let total = self.total.max(count(raw.total)?);
        let errors = self.errors.max(count(raw.errors)?.min(total));
        Some(Cumulative { errors, total })
    }
}

/// Everything that persists between looks, for one SLO of one train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StateFields")]
pub struct SequentialState {
    test: SequentialTest,
    /// Per candidate null ([`CANDIDATE_RATIOS`] and `ρ₀`, ascending), the log e-value `S_c` of every alternative in [`ALTERNATIVES`].
    s: Vec<[f64; ALTERNATIVES.len()]>,
    /// The train's cumulative counts at the last look.
    train: Cumulative,
    /// The baseline's cumulative counts at the last look.
    baseline: Cumulative,
    looks: u64,
    /// The largest `ln E` at `ρ₀` seen at any look (0 before any evidence).
    max_ln_e: f64,
    /// The largest candidate rejected so far (0: none).
    ratio_lower: f64,
    /// `Σ Δe₁² / Δn₁` over the looks: with the cumulative counts, the train's Pearson statistic.
    train_sq: f64,
    /// `Σ Δe₂² / Δn₂` over the looks, the same for the baseline.
    baseline_sq: f64,
}

/// The serialized shape of [`SequentialState`], checked before it becomes one.
#[derive(Deserialize)]
struct StateFields {
    test: SequentialTest,
    s: Vec<[f64; ALTERNATIVES.len()]>,
    train: Cumulative,
    baseline: Cumulative,
    looks: u64,
    max_ln_e: f64,
    ratio_lower: f64,
    train_sq: f64,
    baseline_sq: f64,
}

impl TryFrom<StateFields> for SequentialState {
    type Error = SequentialError;

    fn try_from(f: StateFields) -> Result<Self, SequentialError> {
        let test = SequentialTest::new(f.test.alpha, f.test.min_effect)?;
        let bad = |what: &str| Err(SequentialError::State(what.to_owned()));
        if f.s.len() != test.nulls().0.len() {
            return bad("one S vector per candidate null ratio is needed");
        }
        let finite = f.s.iter().flatten().all(|x| x.is_finite())
            && f.max_ln_e.is_finite()
            && f.ratio_lower.is_finite()
            && f.train_sq.is_finite()
            && f.baseline_sq.is_finite();
        if !finite {
            return bad("a number is not finite");
        }
        if f.train.errors > f.train.total || f.baseline.errors > f.baseline.total {
            return bad("errors above total");
        }
        Ok(SequentialState {
            test,
            s: f.s,
            train: f.train,
            baseline: f.baseline,
            looks: f.looks,
            max_ln_e: f.max_ln_e,
            ratio_lower: f.ratio_lower,
            train_sq: f.train_sq,
            baseline_sq: f.baseline_sq,
        })
    }
}

impl SequentialState {
    /// The test this state belongs to.
    pub fn test(&self) -> SequentialTest {
        self.test
    }

    /// One look: the cumulative counts of the train since its start and of its baseline.
    ///
    /// Counts may be fractional (they are rounded) and may dip (they are made monotone). A NaN,
    /// infinite or negative count leaves the state unchanged; so does a look without new
    /// traffic on either side (its counts merge into the next look). Either way the verdict of
    /// the state as it stands is returned.
    pub fn observe(&mut self, train: Counts, baseline: Counts) -> Verdict {
        let (Some(t), Some(b)) = (self.train.advance(train), self.baseline.advance(baseline))
        else {
            return self.verdict();
        };
        let (de1, dn1) = (
            (t.errors - self.train.errors) as f64,
            (t.total - self.train.total) as f64,
        );
        let (de2, dn2) = (
            (b.errors - self.baseline.errors) as f64,
            (b.total - self.baseline.total) as f64,
        );
        if dn1 == 0.0 || dn2 == 0.0 {
            return self.verdict();
        }
        let eta = 1.0 / (self.dispersion() - DISPERSION_SLACK).max(1.0);
        let dm = de1 + de2;
        let (nulls, main) = self.test.nulls();
        for (null, s) in nulls.iter().zip(&mut self.s) {
            for (c, s_c) in ALTERNATIVES.iter().zip(s.iter_mut()) {
                // ln[(ρ₀cΔn₁ + Δn₂)/(ρ₀Δn₁ + Δn₂)] as ln(1 + x), accurate for c near 1.
                let x = null * (c - 1.0) * dn1 / (null * dn1 + dn2);
                let ell = de1 * c.ln() - dm * x.ln_1p();
                *s_c += (eta * ell).min(MAX_NATS_PER_LOOK);
            }
        }
        self.train_sq += de1 * de1 / dn1;
        self.baseline_sq += de2 * de2 / dn2;
        self.train = t;
        self.baseline = b;
        self.looks += 1;

        for (i, (null, s)) in nulls.iter().zip(&self.s).enumerate() {
            let ln_e = ln_mixture(s);
            if i == main {
                self.max_ln_e = self.max_ln_e.max(ln_e);
            }
            // The same comparison as `p_value < alpha`, so that `significant` holds exactly
            // when `ratio_lower ≥ ρ₀`.
            if (-ln_e).exp() < self.test.alpha {
                self.ratio_lower = self.ratio_lower.max(*null);
            }
        }
        self.verdict()
    }

    /// The verdict as of the last look (the state's starting verdict before any look).
    pub fn verdict(&self) -> Verdict {
        let ln_e = ln_mixture(&self.s[self.test.nulls().1]);
        let p_value = (-self.max_ln_e).exp().min(1.0);
        Verdict {
            e_value: ln_e.exp().min(f64::MAX),
            p_value,
            significant: p_value < self.test.alpha,
            ratio_lower: self.ratio_lower,
            looks: self.looks,
            dispersion: self.dispersion(),
        }
    }

    /// The Pearson dispersion of both sides' increments over the looks so far, each side around
    /// its own error ratio, shrunk towards 1:
    /// `(DISPERSION_PRIOR_DF + X²₁ + X²₂) / (DISPERSION_PRIOR_DF + 2·(J − 1))`.
    fn dispersion(&self) -> f64 {
        let df = 2.0 * self.looks.saturating_sub(1) as f64;
        let x2 = pearson(self.train, self.train_sq) + pearson(self.baseline, self.baseline_sq);
        (DISPERSION_PRIOR_DF + x2) / (DISPERSION_PRIOR_DF + df)
    }
}

/// Pearson's X² of one side's increments around its cumulative error ratio `p̂ = E/N`:
/// `Σ (Δe − p̂Δn)² / (p̂Δn) = N·Σ(Δe²/Δn)/E − E` (0 without errors).
fn pearson(side: Cumulative, sum_sq: f64) -> f64 {
    let (e, n) = (side.errors as f64, side.total as f64);
    if e > 0.0 {
        (n * sum_sq / e - e).max(0.0)
    } else {
        0.0
    }
}

/// `ln Σ w_c exp(S_c)` with the normalised [`WEIGHTS`], computed without overflow.
fn ln_mixture(s: &[f64; ALTERNATIVES.len()]) -> f64 {
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = WEIGHTS.iter().sum();
    let sum: f64 = s
        .iter()
        .zip(WEIGHTS)
        .map(|(x, w)| w * (x - max).exp())
        .sum();
    max + (sum / total).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(errors: f64, total: f64) -> Counts {
        Counts { errors, total }
    }

    fn test() -> SequentialTest {
        SequentialTest::new(0.01, 0.05).unwrap()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1e-300)
    }

    /// The worked example of `docs/statistics.md`: 100 req/s on each side, a look every 30 s,
    /// cumulative counts. Reference values from this independent Python 3 implementation of the
    /// formulas in the module docs (standard library only):
    ///
    /// ```text
    /// import math
    /// ALT=[1.02,1.05,1.1,1.2,1.35,1.5,2.0,3.0,5.0,10.0]
    /// W=[0.5,0.5,1,2,4,4,3,1.5,0.5,0.5]
    /// CAND=[1.0,1.1,1.2,1.3,1.5,1.7,2.0,2.5,3.0,4.0,5.0,7.0,10.0]
    /// def x2(e,n,sq): return n*sq/e-e if e>0 else 0.0
    /// def run(looks, alpha=0.01, min_effect=0.05, prior=10.0, cap=1.5):
    ///     rho0=1+min_effect
    ///     nulls=sorted([r for r in CAND if r!=rho0]+[rho0])
    ///     S={r:[0.0]*len(ALT) for r in nulls}
    ///     te=tn=be=bn=0; sq1=sq2=0.0; J=0; maxlne=0.0; lower=0.0
    ///     out=[]
    ///     for (e1,n1,e2,n2) in looks:
    ///         d1,dn1,d2,dn2=e1-te,n1-tn,e2-be,n2-bn
    ///         D=(prior+x2(te,tn,sq1)+x2(be,bn,sq2))/(prior+2*max(J-1,0))
    ///         eta=1/max(1,D)
    ///         for r in nulls:
    ///             for i,c in enumerate(ALT):
    ///                 ell=d1*math.log(c)-(d1+d2)*math.log((r*c*dn1+dn2)/(r*dn1+dn2))
    ///                 S[r][i]+=min(eta*ell,cap)
    ///         sq1+=d1*d1/dn1; sq2+=d2*d2/dn2; J+=1
    ///         te,tn,be,bn=e1,n1,e2,n2
    ///         for r in nulls:
    ///             lne=math.log(sum(w/sum(W)*math.exp(s) for s,w in zip(S[r],W)))
    ///             if r==rho0: maxlne=max(maxlne,lne); e=math.exp(lne)
    ///             if math.exp(-lne)<alpha: lower=max(lower,r)
    ///         D=(prior+x2(te,tn,sq1)+x2(be,bn,sq2))/(prior+2*(J-1))
    ///         p=min(1,math.exp(-maxlne))
    ///         out.append((J,e,p,p<alpha,lower,D))
    ///     return out
    /// tr=[7,12,20,26,35,42,50,56,63,71]
    /// ba=[3,5,9,12,14,17,20,24,27,30]
    /// looks=[(tr[k],3000*(k+1),ba[k],3000*(k+1)) for k in range(len(tr))]
    /// for row in run(looks): print(row)
    /// ```
    #[test]
    fn worked_example_matches_independent_computation() {
        let train = [7, 12, 20, 26, 35, 42, 50, 56, 63, 71];
        let base = [3, 5, 9, 12, 14, 17, 20, 24, 27, 30];
        // (E, p, significant, ratio_lower, dispersion) after each look, from the script above.
        #[rustfmt::skip]
        let want = [
            (1.5959080426633483, 0.6266025192348422, false, 0.0, 1.0),
            (2.407405620277704, 0.41538492374402863, false, 0.0, 0.8777777777777777),
            (3.741987141388844, 0.26723769008699705, false, 0.0, 0.8119047619047618),
            (5.290346762848867, 0.18902352621239085, false, 0.0, 0.7147435897435898),
            (18.0760423463017, 0.055321844286595, false, 0.0, 0.6904761904761902),
            (33.36061286248731, 0.02997546849999451, false, 0.0, 0.6214285714285716),
            (80.56787800075675, 0.012411894477233313, false, 1.0, 0.5690909090909092),
            (81.22833086167327, 0.012310975609026572, false, 1.0, 0.5436507936507934),
            (153.92389182122486, 0.006496717229326891, true, 1.05, 0.5018315018315016),
            (381.72737189106255, 0.002619670669792525, true, 1.1, 0.4696512407780012),
        ];
        let mut state = test().start();
        for (k, want) in want.iter().enumerate() {
            let n = 3000.0 * (k + 1) as f64;
            let v = state.observe(counts(train[k] as f64, n), counts(base[k] as f64, n));
            let (e, p, significant, lower, dispersion) = *want;
            assert!(
                close(v.e_value, e),
                "look {}: E {} want {e}",
                k + 1,
                v.e_value
            );
            assert!(
                close(v.p_value, p),
                "look {}: p {} want {p}",
                k + 1,
                v.p_value
            );
            assert_eq!(v.significant, significant, "look {}", k + 1);
            assert_eq!(v.ratio_lower, lower, "look {}", k + 1);
            assert!(close(v.dispersion, dispersion), "look {}: {v:?}", k + 1);
            assert_eq!(v.looks, k as u64 + 1);
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(SequentialTest::new(0.01, 0.05).is_ok());
        assert!(SequentialTest::new(0.01, 0.0).is_ok());
        for alpha in [0.0, 1.0, -0.1, f64::NAN] {
            assert_eq!(
                SequentialTest::new(alpha, 0.05)
                    .map_err(|e| matches!(e, SequentialError::Alpha(_))),
                Err(true),
                "alpha {alpha}"
            );
        }
        for m in [-0.01, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                SequentialTest::new(0.01, m),
                Err(SequentialError::MinEffect(_))
            ));
        }
    }

    #[test]
    fn a_fresh_state_says_nothing() {
        let v = test().start().verdict();
        assert_eq!(
            v,
            Verdict {
                e_value: 1.0,
                p_value: 1.0,
                significant: false,
                ratio_lower: 0.0,
                looks: 0,
                dispersion: 1.0,
            }
        );
    }

    #[test]
    fn bad_counts_change_nothing_and_never_flag() {
        let mut state = test().start();
        state.observe(counts(5.0, 3000.0), counts(3.0, 3000.0));
        let before = state.clone();
        let bad = [
            (counts(f64::NAN, 6000.0), counts(6.0, 6000.0)),
            (counts(10.0, f64::NAN), counts(6.0, 6000.0)),
            (counts(1e9, 6000.0), counts(-1.0, 6000.0)),
            (counts(1e9, 6000.0), counts(6.0, f64::INFINITY)),
            (counts(1e9, 6000.0), counts(6.0, -6000.0)),
            (counts(f64::INFINITY, 6000.0), counts(6.0, 6000.0)),
        ];
        for (t, b) in bad {
            let v = state.observe(t, b);
            assert_eq!(state, before, "{t:?} {b:?}");
            assert!(!v.significant);
            assert_eq!(v.looks, 1);
        }
    }

    #[test]
    fn a_look_without_new_traffic_merges_into_the_next() {
        // Skipping the look at 6000 gives the same state as seeing it without new baseline
        // traffic (the look is not used, its counts arrive with the next one).
        let mut skipped = test().start();
        skipped.observe(counts(5.0, 3000.0), counts(3.0, 3000.0));
        skipped.observe(counts(20.0, 9000.0), counts(9.0, 9000.0));
        let mut stalled = test().start();
        stalled.observe(counts(5.0, 3000.0), counts(3.0, 3000.0));
        let v = stalled.observe(counts(12.0, 6000.0), counts(3.0, 3000.0));
        assert_eq!(v.looks, 1, "no new baseline traffic: not a look");
        stalled.observe(counts(20.0, 9000.0), counts(9.0, 9000.0));
        assert_eq!(skipped, stalled);
        assert_eq!(stalled.verdict().looks, 2);
    }

    #[test]
    fn counts_are_rounded_and_made_monotone() {
        let mut exact = test().start();
        exact.observe(counts(5.0, 3000.0), counts(3.0, 3000.0));
        exact.observe(counts(12.0, 6000.0), counts(6.0, 6000.0));
        let mut fuzzy = test().start();
        fuzzy.observe(counts(4.6, 3000.2), counts(3.4, 2999.7));
        // A dip (extrapolation) is held at the previous value, then the counts move on.
        let dip = fuzzy.observe(counts(4.0, 2900.0), counts(2.0, 2000.0));
        assert_eq!(dip.looks, 1, "a dip is no new traffic");
        fuzzy.observe(counts(12.3, 6000.0), counts(5.8, 6000.4));
        assert_eq!(exact, fuzzy);
        // Errors above the total are clamped to it.
        let mut clamped = test().start();
        let v = clamped.observe(counts(50.0, 40.0), counts(1.0, 3000.0));
        assert_eq!(
            clamped.train,
            Cumulative {
                errors: 40,
                total: 40
            }
        );
        assert_eq!(v.looks, 1);
    }

    #[test]
    fn the_same_error_rate_gives_no_evidence() {
        // Equal traffic and equal errors on both sides, look after look: S falls for every
        // alternative (more errors on the baseline's side than ρ₀ predicts for the train), so
        // E stays below 1 and nothing is rejected.
        let mut state = test().start();
        for k in 1..=240 {
            let n = 3000.0 * k as f64;
            let v = state.observe(counts(3.0 * k as f64, n), counts(3.0 * k as f64, n));
            assert!(v.e_value < 1.0, "look {k}: {v:?}");
            assert!(!v.significant);
            assert_eq!(v.ratio_lower, 0.0);
        }
    }

    #[test]
    fn the_bound_brackets_the_true_ratio_on_clean_data() {
        // The train errs exactly 3× as often as the baseline, 10,000 events a look each side.
        let mut state = test().start();
        let mut v = state.verdict();
        for k in 1..=120 {
            let n = 10_000.0 * k as f64;
            v = state.observe(counts(30.0 * k as f64, n), counts(10.0 * k as f64, n));
        }
        assert!(v.significant, "{v:?}");
        assert!(v.ratio_lower >= 2.0 && v.ratio_lower < 3.0, "{v:?}");
    }

    #[test]
    fn each_look_adds_at_most_the_cap() {
        // A single burst of 500 train errors in one look: at most MAX_NATS_PER_LOOK of evidence.
        let mut state = test().start();
        let v = state.observe(counts(500.0, 3000.0), counts(3.0, 3000.0));
        assert!(
            v.e_value <= MAX_NATS_PER_LOOK.exp() * (1.0 + 1e-12),
            "{v:?}"
        );
        assert!(v.e_value > 2.0, "the cap is reached: {v:?}");
        // ln(1/α) = 4.6 nats cannot be reached in 3 looks (3 × 1.5 nats), whatever the counts.
        for k in 2..=3 {
            let v = state.observe(
                counts(500.0 * k as f64, 3000.0 * k as f64),
                counts(3.0, 3000.0 * k as f64),
            );
            assert!(!v.significant, "look {k}: {v:?}");
        }
    }

    #[test]
    fn overdispersed_baseline_tempers_later_looks() {
        // A baseline alternating 0 and 12 errors per look (Poisson would give ~6 ± 2.4).
        let mut state = test().start();
        let mut base = 0.0;
        let mut v = state.verdict();
        for k in 1..=40 {
            base += if k % 2 == 0 { 12.0 } else { 0.0 };
            let n = 3000.0 * k as f64;
            v = state.observe(counts(6.0 * k as f64, n), counts(base, n));
        }
        // Baseline X² over 40 looks = Σ (e − 6)²/6 = 40·36/6 = 240, the train's 0 (always 6
        // errors), df 2·39: (10 + 240)/(10 + 78).
        assert!(close(v.dispersion, 250.0 / 88.0), "{v:?}");
        // The next look's ℓ is multiplied by 1/dispersion; against a state whose baseline
        // looks Poisson (X² = 0, no tempering) each S_c moves by exactly η = 1/(D − slack).
        let mut tempered = state.clone();
        let mut plain = state.clone();
        plain.baseline_sq = (plain.baseline.errors as f64).powi(2) / plain.baseline.total as f64;
        assert!(plain.verdict().dispersion < 1.0);
        let (n, b) = (3000.0 * 41.0, base + 6.0);
        // 9 train errors against 6: every ℓ stays below the cap.
        tempered.observe(counts(6.0 * 40.0 + 9.0, n), counts(b, n));
        plain.observe(counts(6.0 * 40.0 + 9.0, n), counts(b, n));
        let mut moved = 0;
        for ((t, p), s) in tempered.s.iter().zip(&plain.s).zip(&state.s) {
            for i in 0..ALTERNATIVES.len() {
                let (dt, dp) = (t[i] - s[i], p[i] - s[i]);
                let eta = 1.0 / (v.dispersion - DISPERSION_SLACK);
                assert!((dt - dp * eta).abs() < 1e-9, "{dt} vs {dp}");
                moved += usize::from(dp.abs() > 1e-3);
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn more_train_errors_never_lower_the_evidence() {
        let mut last = 0.0;
        for errors in [0.0, 3.0, 6.0, 9.0, 15.0, 30.0] {
            let mut state = test().start();
            let v = state.observe(counts(errors, 3000.0), counts(3.0, 3000.0));
            assert!(v.e_value >= last, "{errors}: {v:?}");
            last = v.e_value;
        }
    }

    #[test]
    fn the_e_value_decreases_in_the_null_ratio() {
        // The monotonicity the ratio_lower construction rests on, at every look.
        let mut state = test().start();
        for k in 1..=30 {
            let n = 3000.0 * k as f64;
            state.observe(
                counts(7.0 * k as f64 + (k % 3) as f64, n),
                counts(3.0 * k as f64, n),
            );
            for pair in state.s.windows(2) {
                assert!(ln_mixture(&pair[0]) >= ln_mixture(&pair[1]), "look {k}");
            }
        }
    }

    #[test]
    fn significant_is_latched_and_matches_ratio_lower() {
        let mut state = test().start();
        let mut seen = false;
        for k in 1..=60u32 {
            let n = 3000.0 * f64::from(k);
            // 3× for 20 looks, then the train recovers to exactly the baseline's rate.
            let e = if k <= 20 {
                9.0 * f64::from(k)
            } else {
                180.0 + 3.0 * f64::from(k - 20)
            };
            let v = state.observe(counts(e, n), counts(3.0 * f64::from(k), n));
            seen |= v.significant;
            assert_eq!(v.significant, seen, "look {k}");
            assert_eq!(v.significant, v.ratio_lower >= 1.05, "look {k}: {v:?}");
        }
        assert!(seen);
    }

    #[test]
    fn state_round_trips_through_json_and_replays_alike() {
        let mut a = test().start();
        for k in 1..=10 {
            let n = 3000.0 * k as f64;
            a.observe(counts(4.0 * k as f64, n), counts(3.0 * k as f64, n));
        }
        let json = serde_json::to_string(&a).unwrap();
        let mut b: SequentialState = serde_json::from_str(&json).unwrap();
        // serde_json without its `float_roundtrip` feature may parse a float 1 ulp off.
        let same = |x: Verdict, y: Verdict| {
            close(x.e_value, y.e_value)
                && close(x.p_value, y.p_value)
                && (x.significant, x.ratio_lower, x.looks)
                    == (y.significant, y.ratio_lower, y.looks)
                && close(x.dispersion, y.dispersion)
        };
        assert!(same(a.verdict(), b.verdict()));
        let look = (counts(55.0, 33_000.0), counts(33.0, 33_000.0));
        let (x, y) = (a.observe(look.0, look.1), b.observe(look.0, look.1));
        assert!(same(x, y), "{x:?} vs {y:?}");
        assert_eq!(x.looks, 11);
    }

    #[test]
    fn a_corrupt_state_is_refused() {
        let json = serde_json::to_value(test().start()).unwrap();
        let mut short = json.clone();
        short["s"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<SequentialState>(short).is_err());
        let mut bad_alpha = json.clone();
        bad_alpha["test"]["alpha"] = 2.0.into();
        assert!(serde_json::from_value::<SequentialState>(bad_alpha).is_err());
        let mut over = json.clone();
        over["train"] = serde_json::json!({"errors": 5, "total": 4});
        assert!(serde_json::from_value::<SequentialState>(over).is_err());
        assert!(serde_json::from_value::<SequentialState>(json).is_ok());
    }
}
